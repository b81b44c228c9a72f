"""The demo city: grids, departments, users and ~8 months of case history, placed like Qujing's
Qilin district (county code 530302, centre about 25.50 N 103.80 E, WGS84).

Theory of operation
-------------------
``load_demo`` runs once per database: under an advisory lock and in one transaction it checks
``settings_kv['demo_loaded']``, loads the reference data (``storage.reference``), inserts the
organisation (5 street grids, 462 unit grids, 10 departments, users for every role), generates the
cases in Python and writes them with ``COPY``, then sets ``demo_loaded``. A second call is a no-op.

Every case history is produced by driving the real workflow machine (``hub.core.workflow.create`` /
``apply``) with the actor a real deployment would have (seat, dispatcher, the department's user, a
supervisor of the case's grid), so every stored event is a legal move, and the row columns are the
fold of the outcomes' ``changes``. Deadlines come from the working calendar (``calendar.add``) and
the category's time limit (24 working hours when none). Case ids, attachment ids and the per-day
case numbers are assigned in Python (offset from what is already in the tables).

The mix follows the figures in ``/work/shared/domain/README.md`` (see ``docs/demo.md``): sources
(supervisors the majority, video patrol about 28 %, 12319 hotline about 12 %), the Qujing video
category mix, quick handling about 20 % of reports (Chongqing: 36,557 of 181,983), about 94 %
registered and about 91 % of registered cases closed, with returns, extensions, rework, deferrals
and escalations along the way. The newest cases are left open in every open state, some overdue.

``grid_lattice`` is pure (tests check it); so is the history generator given its inputs.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import functools
import itertools
import logging
import math
import operator
import random
import struct
import time as _time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, Final

import asyncpg
import orjson

from hub.cases.facts import case_facts
from hub.cases.reference import ensure_reference_data
from hub.core import workflow as wf
from hub.core.passwords import hash_password
from hub.core.workcal import WorkCalendar
from storage.attachments import AttachmentStore, StoredBlob
from storage.cases import CASE_COLUMNS
from storage.db import advisory_lock, map_pg_errors
from storage.errors import StorageError
from storage.search import document_terms

log = logging.getLogger("cityhub.storage.demo")

S = wf.CaseState
A = wf.Action
R = wf.Role
CaseState = wf.CaseState

#: Advisory-lock key of the demo loader ("cityDEMO" in ASCII).
DEMO_LOCK_KEY: Final = 0x6369747944454D4F
DEMO_FLAG: Final = "demo_loaded"

# --------------------------------------------------------------------------------------------------
# Grids

COUNTY_CODE: Final = "530302"  # 曲靖市麒麟区
CENTER_LON: Final = 103.80
CENTER_LAT: Final = 25.50
CELL_M: Final = 300.0
COLUMNS: Final = 22
ROWS: Final = 21
ROWS_PER_COMMUNITY: Final = 7
#: (street code, name, width in lattice columns), west to east; widths sum to COLUMNS.
STREETS: Final[tuple[tuple[str, str, int], ...]] = (
    ("001", "南宁街道", 5),
    ("002", "白石江街道", 5),
    ("003", "建宁街道", 4),
    ("004", "寥廓街道", 4),
    ("005", "益宁街道", 4),
)


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``lat`` (WGS84 ellipsoid series)."""
    phi = math.radians(lat)
    m_lat = (
        111132.92
        - 559.82 * math.cos(2 * phi)
        + 1.175 * math.cos(4 * phi)
        - 0.0023 * math.cos(6 * phi)
    )
    m_lon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    return m_lon, m_lat


@dataclasses.dataclass(frozen=True, slots=True)
class GridCell:
    """A demo grid: a lon/lat rectangle (first level: a street; second level: a unit grid)."""

    code: str
    name: str
    level: int
    parent_code: str | None
    street: str
    west: float
    south: float
    east: float
    north: float
    area_m2: float

    @property
    def boundary(self) -> str:
        """PostgreSQL polygon text, x = longitude, y = latitude (floats round-trip exactly)."""
        w, s, e, n = (repr(v) for v in (self.west, self.south, self.east, self.north))
        return f"(({w},{s}),({e},{s}),({e},{n}),({w},{n}))"

    def contains(self, lon: float, lat: float) -> bool:
        return self.west <= lon <= self.east and self.south <= lat <= self.north


def _area(west: float, south: float, east: float, north: float) -> float:
    m_lon, m_lat = metres_per_degree((south + north) / 2)
    return (east - west) * m_lon * (north - south) * m_lat


def grid_lattice() -> list[GridCell]:
    """The 5 street grids (level 1) then the 22 x 21 lattice of ~300 m unit grids (level 2), each
    street a contiguous band of columns, three communities of 7 rows each per street."""
    m_lon, m_lat = metres_per_degree(CENTER_LAT)
    dlon, dlat = CELL_M / m_lon, CELL_M / m_lat
    lon0, lat0 = CENTER_LON - COLUMNS * dlon / 2, CENTER_LAT - ROWS * dlat / 2
    lons = [lon0 + i * dlon for i in range(COLUMNS + 1)]
    lats = [lat0 + j * dlat for j in range(ROWS + 1)]
    streets: list[GridCell] = []
    cells: list[GridCell] = []
    col = 0
    for street, name, width in STREETS:
        code1 = COUNTY_CODE + street
        w, e, s, n = lons[col], lons[col + width], lats[0], lats[ROWS]
        streets.append(GridCell(code1, name, 1, None, street, w, s, e, n, _area(w, s, e, n)))
        number = 0
        for row in range(ROWS):
            community, row_in = divmod(row, ROWS_PER_COMMUNITY)
            for c in range(width):
                number += 1
                seq = row_in * width + c + 1
                w, e = lons[col + c], lons[col + c + 1]
                s, n = lats[row], lats[row + 1]
                cells.append(
                    GridCell(
                        f"{code1}{community + 1:03d}{seq:03d}",
                        f"{name}第{number:03d}网格",
                        2,
                        code1,
                        street,
                        w,
                        s,
                        e,
                        n,
                        _area(w, s, e, n),
                    )
                )
        col += width
    return streets + cells


# --------------------------------------------------------------------------------------------------
# Departments and users

#: (code, name, is_coordinating, phone)
DEPARTMENTS: Final[tuple[tuple[str, str, bool, str], ...]] = (
    ("CGZF", "城管执法局", False, "0874-3121001"),
    ("SZSS", "市政设施管理处", False, "0874-3121002"),
    ("HJWS", "环境卫生管理处", False, "0874-3121003"),
    ("YLLH", "园林绿化管理处", False, "0874-3121004"),
    ("ZJJ", "住房和城乡建设局", False, "0874-3121005"),
    ("JJDD", "交警大队", False, "0874-3121006"),
    ("GPS", "供排水公司", False, "0874-3121007"),
    ("GDJ", "供电局", False, "0874-3121008"),
    ("TXYY", "通信运营商联合办", False, "0874-3121009"),
    ("XTB", "数字城管协调办公室", True, "0874-3121010"),
)
COORDINATING: Final = "XTB"
#: Default department per (kind, major class), then overrides per minor class.
MAJOR_DEPARTMENT: Final[Mapping[tuple[str, str], str]] = {
    ("event", "市容环境"): "HJWS",
    ("event", "宣传广告"): "CGZF",
    ("event", "施工管理"): "ZJJ",
    ("event", "突发事件"): "SZSS",
    ("event", "街面秩序"): "CGZF",
    ("component", "公用设施"): "SZSS",
    ("component", "道路交通"): "SZSS",
    ("component", "市容环境"): "HJWS",
    ("component", "园林绿化"): "YLLH",
    ("component", "房屋土地"): "ZJJ",
    ("component", "其他设施"): "ZJJ",
}
MINOR_DEPARTMENT: Final[Mapping[str, str]] = {
    "私搭乱建": "CGZF",
    "建筑垃圾/渣土": "CGZF",
    "绿地保洁": "YLLH",
    "绿地养护": "YLLH",
    "管道破裂": "GPS",
    "道路积水": "GPS",
    "有害气体超标(危险源监控报警)": "GPS",
    "机动车侵占人行道": "JJDD",
    "上水井盖": "GPS",
    "污水井盖": "GPS",
    "雨水井盖": "GPS",
    "消防栓": "GPS",
    "监控电子眼": "JJDD",
    "交通标志牌": "JJDD",
    "交通信号灯": "JJDD",
    "广告牌匾": "CGZF",
    "宣传栏": "CGZF",
}
#: Where a wrongly dispatched case first went (it is returned, then re-dispatched correctly).
WRONG_DEPARTMENT: Final[Mapping[str, tuple[str, ...]]] = {
    "CGZF": ("HJWS", "JJDD"),
    "SZSS": ("GDJ", "TXYY", "GPS"),
    "HJWS": ("CGZF", "YLLH"),
    "YLLH": ("HJWS", "SZSS"),
    "ZJJ": ("CGZF", "SZSS"),
    "JJDD": ("CGZF",),
    "GPS": ("SZSS", "TXYY"),
    "GDJ": ("SZSS",),
    "TXYY": ("GDJ",),
    "XTB": ("CGZF", "SZSS"),
}

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶"
_GIVEN = (
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "建华", "文", "华", "红", "建国", "志强", "海燕", "晓东",
    "玉兰", "春梅", "子涵", "雨桐", "浩然", "思远", "欣怡", "俊杰", "嘉怡", "宇航",
)  # fmt: skip

_ROLE_PASSWORDS: Final[Mapping[str, str]] = {
    "admin": "Admin#2026",
    "seat": "Seat#2026",
    "dispatcher": "Dispatch#2026",
    "department": "Dept#2026",
    "supervisor": "Super#2026",
    "agent": "Agent#2026",
    "viewer": "Viewer#2026",
}


def _demo_users() -> dict[str, tuple[str, str]]:
    users: dict[str, tuple[str, str]] = {"admin": ("admin", _ROLE_PASSWORDS["admin"])}
    for prefix, role, n in (("seat", "seat", 3), ("dispatch", "dispatcher", 2)):
        users.update({f"{prefix}{i}": (role, _ROLE_PASSWORDS[role]) for i in range(1, n + 1)})
    for i in range(1, len(DEPARTMENTS) + 1):
        users[f"dept{i:02d}"] = ("department", _ROLE_PASSWORDS["department"])
    for i in range(1, 2 * len(STREETS) + 1):
        users[f"sup{i:02d}"] = ("supervisor", _ROLE_PASSWORDS["supervisor"])
    users.update({f"agent{i}": ("agent", _ROLE_PASSWORDS["agent"]) for i in range(1, 4)})
    users["bigscreen"] = ("viewer", _ROLE_PASSWORDS["viewer"])
    return users


#: username -> (role, password) of every demo account (deptNN belongs to DEPARTMENTS[NN-1];
#: supervisors sup01/sup02 cover STREETS[0], sup03/sup04 STREETS[1], ...).
DEMO_USERS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(_demo_users())


def _person(i: int) -> str:
    return _SURNAMES[(i * 5 + 3) % len(_SURNAMES)] + _GIVEN[(i * 11) % len(_GIVEN)]


def _display_name(username: str, index: int) -> str:
    if username == "admin":
        return "系统管理员"
    if username == "bigscreen":
        return "指挥大屏"
    if username.startswith("dept"):
        return f"{_person(index)}（{DEPARTMENTS[int(username[4:]) - 1][1]}）"
    return _person(index)


# --------------------------------------------------------------------------------------------------
# Categories, places and texts

#: Category mix per report source, by minor class name (weights; unknown names are skipped).
VIDEO_MIX: Final[Mapping[str, float]] = {
    # Qujing, ~8 months of video patrol: 31,263 / 9,786 / 910 / 138 / other 1,084 of 43,151.
    "占道经营/流动兜售": 72.4,
    "机动车侵占人行道": 22.7,
    "张贴、散发宣传资料": 2.1,
    "非机动车乱停放": 0.32,
    "店外经营": 1.0,
    "暴露垃圾": 0.6,
    "露天烧烤": 0.4,
    "违规户外广告": 0.3,
    "施工占道": 0.2,
}
SUPERVISOR_MIX: Final[Mapping[str, float]] = {
    "暴露垃圾": 10, "道路保洁/积水": 6, "非法小广告": 8, "占道经营/流动兜售": 8, "店外经营": 7,
    "机动车侵占人行道": 4, "非机动车乱停放": 5, "私搭乱建": 3, "建筑垃圾/渣土": 3, "绿地保洁": 3,
    "绿地养护": 2, "施工占道": 2, "工地扬尘": 2, "施工废弃料": 1, "违规户外广告": 2, "悬挂横幅": 2,
    "街头散发广告": 1, "无照经营": 2, "露天烧烤": 1, "焚烧垃圾树叶": 1, "上水井盖": 2,
    "污水井盖": 3, "雨水井盖": 3, "消防栓": 1, "路灯": 4, "护栏": 2, "交通标志牌": 1, "路名牌": 1,
    "公交站亭": 1, "垃圾箱/果皮箱": 4, "公共厕所": 1, "广告牌匾": 2, "行道树": 3, "绿地": 1,
    "街头座椅": 1, "宣传栏": 1, "报刊亭": 0.5, "监控电子眼": 0.5, "交通信号灯": 0.5, "化粪池": 0.5,
    "古树名木": 0.2, "人防工事": 0.2, "液化气站": 0.2, "路面塌陷": 0.5, "管道破裂": 0.5,
}  # fmt: skip
QUICK_MIX: Final[Mapping[str, float]] = {
    "非法小广告": 30, "暴露垃圾": 20, "非机动车乱停放": 15, "店外经营": 12,
    "占道经营/流动兜售": 10, "街头散发广告": 5, "绿地保洁": 4, "道路保洁/积水": 4,
}  # fmt: skip
HOTLINE_MIX: Final[Mapping[str, float]] = {
    "施工扰民": 15, "露天烧烤": 8, "暴露垃圾": 8, "占道经营/流动兜售": 8, "店外经营": 6,
    "工地扬尘": 6, "私搭乱建": 6, "路灯": 8, "污水井盖": 4, "雨水井盖": 3, "道路积水": 5,
    "管道破裂": 5, "机动车侵占人行道": 4, "公共厕所": 2, "垃圾箱/果皮箱": 3, "行道树": 3,
}  # fmt: skip
PUBLIC_MIX: Final[Mapping[str, float]] = {
    "暴露垃圾": 12, "占道经营/流动兜售": 10, "机动车侵占人行道": 8, "非机动车乱停放": 8, "路灯": 8,
    "污水井盖": 5, "雨水井盖": 5, "护栏": 4, "道路积水": 5, "私搭乱建": 5, "非法小广告": 6,
    "工地扬尘": 4, "行道树": 4, "公交站亭": 3,
}  # fmt: skip
SENSOR_MIX: Final[Mapping[str, float]] = {
    "有害气体超标(危险源监控报警)": 55,
    "道路积水": 25,
    "路灯": 20,
}
#: Report sources (supervisors the majority, video patrol large, hotline ~12 %, sensors and the
#: public small) and the share of all reports that are quick handling (Chongqing: 20.1 %).
SOURCE_MIX: Final[Mapping[str, float]] = {
    "supervisor": 0.52,
    "video": 0.28,
    "hotline": 0.12,
    "sensor": 0.03,
    "public": 0.05,
}
QUICK_SHARE: Final = 0.20
HISTORY_DAYS: Final = 240
DEFAULT_LIMIT: Final[tuple[int, str]] = (24, "hours")

_DESCRIPTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "私搭乱建": ("临街商户在人行道上私自搭建彩钢棚", "居民在楼顶违规加盖简易房"),
    "暴露垃圾": ("路边有成堆生活垃圾未及时清运，散发异味", "垃圾收集点周边垃圾散落一地"),
    "建筑垃圾/渣土": ("道路旁倾倒建筑垃圾约两立方米", "渣土车沿途抛洒，路面污染"),
    "道路保洁/积水": ("路面有大面积油污，保洁不到位", "人行道低洼处积水，行人通行不便"),
    "绿地保洁": ("绿化带内有塑料袋、饮料瓶等垃圾",),
    "绿地养护": ("绿化带苗木枯死，黄土裸露", "草坪杂草丛生，长期未修剪"),
    "焚烧垃圾树叶": ("有人在空地焚烧垃圾和落叶，浓烟较大",),
    "非法小广告": ("电线杆和墙面张贴大量小广告", "配电箱上喷涂办证电话小广告"),
    "街头散发广告": ("路口有人向行人散发楼盘宣传单",),
    "违规户外广告": ("商铺未经审批设置落地广告牌", "楼顶广告牌破损，存在安全隐患"),
    "悬挂横幅": ("行道树之间私拉横幅宣传促销活动",),
    "施工扰民": ("工地夜间施工噪音大，影响居民休息", "晚上十点后仍有机械作业"),
    "施工占道": ("施工围挡占用人行道，未设置警示标志",),
    "工地扬尘": ("工地裸土未覆盖，刮风时扬尘严重", "工地出入口车辆未冲洗带泥上路"),
    "施工废弃料": ("施工废料堆放在路边未清理",),
    "管道破裂": ("供水管道破裂，路面大量冒水", "污水管破裂外溢，气味难闻"),
    "路面塌陷": ("机动车道出现约一米见方的塌陷坑",),
    "道路积水": ("降雨后路口积水深约二十厘米，车辆通行困难", "下穿通道积水严重"),
    "有害气体超标(危险源监控报警)": (
        "污水井有害气体浓度超过报警阈值",
        "化粪池附近可燃气体监测报警",
    ),
    "无照经营": ("临街门面无证无照经营小餐饮",),
    "占道经营/流动兜售": (
        "流动商贩推车占用人行道兜售水果",
        "早市摊点占道经营，堵塞通行",
        "三轮车沿街流动叫卖",
    ),
    "店外经营": ("商铺将货物摆放到门外人行道上经营", "餐馆在店外摆放桌椅经营"),
    "机动车侵占人行道": ("多辆小汽车停放在人行道上，阻碍行人通行", "货车长时间停放占用人行道"),
    "非机动车乱停放": ("共享单车在公交站旁大量堆放", "电动车无序停放占用盲道"),
    "露天烧烤": ("夜间店外露天烧烤，油烟扰民",),
    "张贴、散发宣传资料": ("公交站亭张贴宣传资料", "墙面张贴大量宣传单"),
    "上水井盖": ("上水井盖破损，存在安全隐患",),
    "污水井盖": ("污水井盖缺失，仅用树枝遮挡", "污水井盖松动，车辆经过有响声"),
    "雨水井盖": ("雨水井盖破损下陷", "雨水篦子被垃圾堵塞"),
    "消防栓": ("消防栓被撞倒漏水", "消防栓被杂物遮挡"),
    "路灯": ("路灯夜间不亮，连续多盏", "路灯白天常亮"),
    "报刊亭": ("报刊亭外立面破损",),
    "监控电子眼": ("监控立杆倾斜，设备外壳脱落",),
    "公交站亭": ("公交站亭玻璃破碎",),
    "交通标志牌": ("交通标志牌被树枝遮挡", "交通标志牌倾斜"),
    "交通信号灯": ("路口信号灯故障，黄灯常闪",),
    "护栏": ("道路护栏被撞变形", "隔离护栏缺失一段"),
    "路名牌": ("路名牌字迹褪色难以辨认",),
    "公共厕所": ("公厕卫生差，洗手池堵塞", "公厕夜间未开放"),
    "垃圾箱/果皮箱": ("果皮箱破损，垃圾外溢", "垃圾箱满溢未及时清理"),
    "广告牌匾": ("店招牌匾松动，存在坠落风险",),
    "化粪池": ("化粪池满溢，污水流至路面",),
    "古树名木": ("古树枝干枯损，需要修剪加固",),
    "行道树": ("行道树倒伏，压住路边车辆", "行道树枝叶遮挡路灯和标志"),
    "绿地": ("绿地被踩踏出小路，草皮破坏",),
    "街头座椅": ("街头座椅损坏，木条断裂",),
    "人防工事": ("人防工事出入口堆放杂物",),
    "宣传栏": ("宣传栏玻璃破损，内容过期",),
    "液化气站": ("液化气供应点周边堆放杂物",),
}
_SOURCE_PREFIX: Final[Mapping[str, str]] = {
    "supervisor": "",
    "video": "视频巡查发现：",
    "hotline": "市民来电反映：",
    "sensor": "传感器报警：",
    "public": "市民随手拍上报：",
}
_REPORT_NOTES: Final[Mapping[str, str]] = {
    "supervisor": "监督员巡查上报",
    "video": "视频巡查发现",
    "hotline": "12319热线来电",
    "sensor": "监测设备自动报警，坐席确认上报",
    "public": "公众上报，坐席受理",
}
_ROADS: Final[Mapping[str, tuple[str, ...]]] = {
    "001": ("南宁北路", "南宁西路", "麒麟南路", "文昌街"),
    "002": ("白石江东路", "白石江西路", "子午路", "麒麟北路"),
    "003": ("建宁东路", "建宁西路", "紫云路", "太和路"),
    "004": ("寥廓南路", "寥廓北路", "文化路", "麒麟东路"),
    "005": ("益宁路", "珠江源大道", "沿江路", "瑞和西路"),
}
_STREET_NAMES: Final[Mapping[str, str]] = {code: name for code, name, _w in STREETS}
_SPOTS: Final = ("", "", "门前", "附近", "路口", "对面", "旁")
_FEEDBACK_EVENT: Final = ("已清理完毕，恢复原状", "已现场劝离并规范经营秩序", "已安排人员处置完毕")
_FEEDBACK_COMPONENT: Final = ("已修复", "已更换新件", "已联系产权单位维修完毕")


# --------------------------------------------------------------------------------------------------
# Demo photos: small real PNGs, made without imaging libraries


def _png(width: int, height: int, rows: Iterator[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


_PHOTO_THEMES: Final = (
    ((128, 128, 120), (180, 60, 40)),  # asphalt, red
    ((96, 140, 72), (60, 96, 48)),  # green belt
    ((150, 170, 190), (70, 90, 120)),  # sky, building
    ((190, 180, 160), (120, 100, 80)),  # pavement
    ((60, 60, 70), (230, 200, 60)),  # night, lamp
    ((200, 200, 200), (40, 120, 200)),  # wall, poster
    ((110, 90, 70), (160, 140, 110)),  # soil, debris
    ((80, 110, 140), (200, 220, 230)),  # water
)


def demo_photos(width: int = 160, height: int = 120) -> list[bytes]:
    """Eight small PNG images: a ground colour with a horizon, diagonal stripes and a frame."""
    photos: list[bytes] = []
    for k, (ground, accent) in enumerate(_PHOTO_THEMES):
        sky = bytes(min(255, c + 60) for c in ground)
        g, a = bytes(ground), bytes(accent)
        horizon = height * (3 + k % 3) // 8

        def rows(
            g: bytes = g, a: bytes = a, sky: bytes = sky, horizon: int = horizon
        ) -> Iterator[bytes]:
            for y in range(height):
                if y < 3 or y >= height - 3:
                    yield a * width
                    continue
                base = sky if y < horizon else g
                line = bytearray(base * width)
                for x in range(width):
                    if x < 3 or x >= width - 3 or (y >= horizon and (x + y) // 12 % 4 == 0):
                        line[3 * x : 3 * x + 3] = a
                yield bytes(line)

        photos.append(_png(width, height, rows()))
    return photos


# --------------------------------------------------------------------------------------------------
# History generation (pure: no I/O)


@dataclasses.dataclass(frozen=True, slots=True)
class CategoryInfo:
    id: int
    kind: str
    minor_name: str
    urgency: int
    limit: tuple[int, str]
    department_code: str


@dataclasses.dataclass(slots=True)
class _Plan:
    quick: bool = False
    reject: wf.RejectReason | None = None
    void: bool = False
    wrong_first: bool = False
    return_after_accept: bool = False
    coordinating: bool = False
    defer: str | None = None  # "resume" | "stay"
    extension: str | None = None  # "approve" | "deny"
    escalate: bool = False
    stuck: CaseState | None = None
    late: bool = False
    rework: str | None = None  # "verify_fail" | "seat"
    target: CaseState | None = None


class _Stop(Exception):
    """The history ends here (the next move would be after ``now``, or the target state is reached)."""


@dataclasses.dataclass(slots=True)
class _History:
    case_id: int
    t: datetime
    target: CaseState | None
    row: dict[str, Any]
    events: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    attachments: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    version: int = 0

    def facts(self) -> wf.CaseFacts:
        return case_facts({**self.row, "version": self.version})


EVENT_COLUMNS: Final = (
    "case_id",
    "version",
    "action",
    "actor_id",
    "at",
    "from_state",
    "to_state",
    "note",
    "data",
    "attachment_ids",
)
ATTACHMENT_COLUMNS: Final = (
    "id",
    "sha256",
    "media_type",
    "size",
    "kind",
    "original_name",
    "case_id",
    "uploaded_by",
    "created_at",
)
_ROW_DEFAULTS: Final[Mapping[str, Any]] = {
    "department_id": None,
    "deadline": None,
    "pending_extension_until": None,
    "reject_reason": None,
    "duplicate_of": None,
    "rework_count": 0,
    "extension_count": 0,
    "escalation_count": 0,
    "registered_at": None,
    "dispatched_at": None,
    "accepted_at": None,
    "handled_at": None,
    "verified_at": None,
    "closed_at": None,
}
#: Target states of the newest cases (cycled), so that every open state is on the board.
_NORMAL_TARGETS: Final = (
    S.REPORTED, S.DISPATCHED, S.HANDLING, S.REGISTERED, S.FEEDBACK, S.HANDLING, S.VERIFYING,
    S.RETURNED, S.DEFERRED, S.VERIFIED, S.DISPATCHED, S.HANDLING, S.REPORTED, S.CLOSED,
)  # fmt: skip
_QUICK_TARGETS: Final = (S.QUICK_HANDLING, S.FEEDBACK, S.VERIFYING, S.VERIFIED, S.CLOSED)
_MIN_STEP: Final = timedelta(seconds=30)


@dataclasses.dataclass(frozen=True, slots=True)
class DemoOrg:
    """The organisation the history is generated against (ids from the database)."""

    cells: Sequence[tuple[int, GridCell]]  # (grid id, cell), second level only
    categories: Sequence[CategoryInfo]
    departments: Mapping[str, int]  # code -> id
    users: Mapping[str, wf.Actor]  # username -> actor
    street_supervisors: Mapping[str, Sequence[str]]  # street code -> usernames


@dataclasses.dataclass(slots=True)
class DemoChunk:
    """Rows ready to COPY: ``cases`` and ``attachments`` of a run of cases, and the ``events`` (of
    these or earlier cases) that come next in global order."""

    cases: list[tuple[Any, ...]]
    attachments: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]


#: Global order of events: (at, case_id, version).
_event_key: Final = operator.itemgetter(4, 0, 1)


class HistoryGenerator:
    """Generates case histories by driving ``hub.core.workflow``; deterministic for a given seed."""

    def __init__(
        self,
        org: DemoOrg,
        calendar: WorkCalendar,
        photos: Sequence[StoredBlob],
        now: datetime,
        seed: int,
        *,
        first_case_id: int = 1,
        first_attachment_id: int = 1,
        counters: Mapping[date, int] | None = None,
    ) -> None:
        self.org = org
        self.cal = calendar
        self.tz = calendar.tz
        self.photos = photos
        self.now = now.astimezone(UTC)
        self.rng = random.Random(seed)
        self.next_case_id = first_case_id
        self.next_attachment_id = first_attachment_id
        self.counters: dict[date, int] = dict(counters or {})
        self.f = 1.0  # time compression of the current history (1 = realistic pace)
        self.by_name = {c.minor_name: c for c in org.categories}
        self.mixes = {
            source: self._mix(mix)
            for source, mix in (
                ("video", VIDEO_MIX),
                ("supervisor", SUPERVISOR_MIX),
                ("quick", QUICK_MIX),
                ("hotline", HOTLINE_MIX),
                ("public", PUBLIC_MIX),
                ("sensor", SENSOR_MIX),
            )
        }
        u = org.users
        self.seats = [a for n, a in u.items() if a.role is R.SEAT]
        self.dispatchers = [a for n, a in u.items() if a.role is R.DISPATCHER]
        self.agents = [a for n, a in u.items() if a.role is R.AGENT]
        self.dept_actor = {a.department_id: a for a in u.values() if a.role is R.DEPARTMENT}
        self.sups = {st: [u[n] for n in names] for st, names in org.street_supervisors.items()}

    def _mix(self, weights: Mapping[str, float]) -> tuple[list[CategoryInfo], list[float]]:
        cats = [self.by_name[n] for n in weights if n in self.by_name]
        if not cats:
            cats = list(self.org.categories)
            return cats, list(itertools.accumulate(1.0 for _ in cats))
        return cats, list(itertools.accumulate(weights[c.minor_name] for c in cats))

    def _pick(self, source: str) -> CategoryInfo:
        cats, cum = self.mixes[source]
        return cats[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    # -- skeletons ---------------------------------------------------------------------------

    def _report_time(self, source: str) -> datetime:
        """A report instant in the last HISTORY_DAYS days, with a daily rhythm per source."""
        r = self.rng
        now_local = self.now.astimezone(self.tz)
        while True:
            day = now_local.date() - timedelta(days=r.randrange(HISTORY_DAYS))
            if source == "supervisor" and day.weekday() >= 5 and r.random() < 0.4:
                continue  # fewer patrols at weekends
            if source == "sensor":
                hour = r.uniform(0, 24)
            elif source == "supervisor":
                hour = r.triangular(7.5, 19.0, 10.5)
            elif source == "video":
                hour = r.triangular(7.0, 22.0, 11.0)
            else:
                hour = r.triangular(6.5, 23.5, 15.0)
            local = datetime.combine(day, time(0), self.tz) + timedelta(hours=hour)
            at = local.astimezone(UTC)
            if at < self.now - timedelta(minutes=5):
                return at.replace(microsecond=0)

    def skeletons(self, n: int) -> list[tuple[datetime, str, bool]]:
        r = self.rng
        sources, cum = list(SOURCE_MIX), list(itertools.accumulate(SOURCE_MIX.values()))
        quick_given_supervisor = QUICK_SHARE / SOURCE_MIX["supervisor"]
        out = []
        for _ in range(n):
            source = sources[bisect.bisect_right(cum, r.random() * cum[-1])]
            quick = source == "supervisor" and r.random() < quick_given_supervisor
            out.append((self._report_time(source), source, quick))
        out.sort(key=lambda s: s[0])
        return out

    def _plan(self, quick: bool, target: CaseState | None) -> _Plan:
        r = self.rng
        p = _Plan(quick=quick, target=target)
        if quick:
            v = r.random()
            p.rework = "verify_fail" if v < 0.015 else "seat" if v < 0.025 else None
            return p
        forced = target is not None
        if not forced:
            x = r.random()
            if x < 0.075:  # ~6 % of all reports (quick ones included) are not registered
                p.reject = (
                    wf.RejectReason.INVALID if r.random() < 0.62 else wf.RejectReason.DUPLICATE
                )
                return p
            p.void = r.random() < 0.012
            y = r.random()
            p.stuck = S.DISPATCHED if y < 0.006 else S.HANDLING if y < 0.06 else None
            z = r.random()
            p.defer = "stay" if z < 0.018 else "resume" if z < 0.028 else None
        p.wrong_first = r.random() < 0.035 or target is S.RETURNED
        p.return_after_accept = r.random() < 0.3
        p.coordinating = r.random() < 0.02
        if target is S.DEFERRED:
            p.defer = "stay"
        w = r.random()
        p.extension = "approve" if w < 0.04 else "deny" if w < 0.05 else None
        p.escalate = r.random() < (0.3 if p.stuck else 0.03)
        p.late = r.random() < 0.07
        v = r.random()
        p.rework = "verify_fail" if v < 0.045 else "seat" if v < 0.075 else None
        return p

    # -- one history -------------------------------------------------------------------------

    def _at(self, h: _History, minutes: float, hours: tuple[float, float, bool] | None) -> datetime:
        """The next move's instant: ``minutes`` after the previous (compressed by ``self.f``),
        moved into the actor's working hours (start, end, workdays only) at realistic pace."""
        at = h.t + max(_MIN_STEP, timedelta(minutes=minutes * self.f))
        if hours is not None and self.f == 1.0:
            at = self._shift(at, *hours)
        if at > self.now:
            raise _Stop
        return at

    def _shift(self, at: datetime, start: float, end: float, workdays: bool) -> datetime:
        local = at.astimezone(self.tz)
        hour = local.hour + local.minute / 60
        day = local.date()
        if start <= hour < end and (not workdays or self.cal.is_workday(day)):
            return at
        if hour >= end:
            day += timedelta(days=1)
        while workdays and not self.cal.is_workday(day):
            day += timedelta(days=1)
        begin = datetime.combine(day, time(0), self.tz) + timedelta(
            hours=start, minutes=self.rng.uniform(5, 90)
        )
        return begin.astimezone(UTC).replace(microsecond=0)

    _SEAT = (7.0, 22.0, False)
    _OFFICE = (8.0, 18.5, True)
    _FIELD = (7.5, 19.0, False)

    def _deadline(self, cat: CategoryInfo, at: datetime) -> datetime:
        value, unit = cat.limit
        return self.cal.add(at, value, "hours" if unit == "hours" else "days").astimezone(UTC)

    def _photos(self, h: _History, actor: wf.Actor, at: datetime, n: int) -> tuple[int, ...]:
        ids = []
        local = at.astimezone(self.tz)
        for k in range(n):
            blob = self.photos[self.rng.randrange(len(self.photos))]
            aid = self.next_attachment_id
            self.next_attachment_id += 1
            ids.append(aid)
            h.attachments.append(
                (
                    aid,
                    blob.sha256,
                    blob.media_type,
                    blob.size,
                    "photo",
                    f"IMG_{local:%Y%m%d_%H%M%S}_{k + 1}.png",
                    h.case_id,
                    actor.user_id,
                    at - timedelta(seconds=20 + 10 * k),
                )
            )
        return tuple(ids)

    def _record(
        self, h: _History, out: wf.Outcome, actor: wf.Actor, at: datetime, cmd: wf.Command
    ) -> None:
        row = h.row
        for key, value in out.changes.items():
            row[key] = value
        h.version += 1
        h.t = at
        h.events.append(
            (
                h.case_id,
                h.version,
                out.action._value_,
                actor.user_id,
                at,
                None if out.from_state is None else out.from_state._value_,
                out.to_state._value_,
                cmd.note,
                out.event_data,
                list(cmd.attachment_ids),
            )
        )
        if h.target is not None and out.to_state is h.target:
            raise _Stop

    def _do(
        self,
        h: _History,
        actor: wf.Actor,
        action: wf.Action,
        at: datetime,
        *,
        photos: int = 0,
        **kwargs: Any,
    ) -> None:
        ids = self._photos(h, actor, at, photos) if photos else ()
        cmd = wf.Command(action, attachment_ids=ids, **kwargs)
        self._record(h, wf.apply(h.facts(), actor, cmd, at), actor, at, cmd)

    def _history(
        self, case: dict[str, Any], cat: CategoryInfo, plan: _Plan, reporter: wf.Actor
    ) -> _History:
        r = self.rng
        row = dict(_ROW_DEFAULTS)
        row.update(state=None, is_quick=False, grid_id=case["grid_id"])
        h = _History(case["id"], case["reported_at"], plan.target, row)
        street_sups = self.sups[case["street"]]
        dep = self.org.departments
        try:
            # 1. report (or quick report: the supervisor fixes it on the spot)
            at = case["reported_at"]
            if plan.quick:
                ids = self._photos(h, reporter, at, 1)
                cmd = wf.Command(A.QUICK_REPORT, note="快速处置上报", attachment_ids=ids)
            else:
                source = case["source"]
                n = 0  # hotline and sensor reports come without photos
                if source == "supervisor":
                    n = 1 + (r.random() < 0.2)
                elif source == "video" or (source == "public" and r.random() < 0.6):
                    n = 1  # a snapshot of the feed, or the citizen's photo
                ids = self._photos(h, reporter, at, n)
                cmd = wf.Command(A.REPORT, note=_REPORT_NOTES[case["source"]], attachment_ids=ids)
            self._record(h, wf.create(reporter, cmd, case["grid_id"], at), reporter, at, cmd)
            if plan.quick:
                self._quick_complete(h, reporter, r.uniform(5, 40))
                # Reworked, the case goes back to the supervisor who handled it on the spot.
                redo = functools.partial(self._quick_complete, h, reporter, r.uniform(20, 240))
                self._verify_and_close(h, plan, cat, street_sups, redo)
                return h
            # 2. registration (立案) or rejection
            seat = r.choice(self.seats)
            at = self._at(h, r.uniform(3, 30), self._SEAT)
            if plan.reject is wf.RejectReason.DUPLICATE:
                orig = case["duplicate_of"]
                self._do(
                    h, seat, A.REJECT, at, reject_reason=plan.reject, duplicate_of=orig[0],
                    note=f"与案件{orig[1]}重复，合并处理",
                )  # fmt: skip
                return h
            if plan.reject is wf.RejectReason.INVALID:
                note = r.choice(
                    ("经视频核实现场无此问题", "不属于数字城管受理范围", "信息不全，无法核实")
                )
                self._do(h, seat, A.REJECT, at, reject_reason=plan.reject, note=note)
                return h
            self._do(h, seat, A.REGISTER, at, note="符合立案标准")
            if plan.void:
                at = self._at(h, r.uniform(10, 120), self._SEAT)
                self._do(h, seat, A.VOID, at, note="上报信息有误，经核实作废")
                return h
            # 3. dispatch (派遣), possibly first to the wrong department, which returns it
            final = dep[COORDINATING if plan.coordinating else cat.department_code]
            first = final
            if plan.wrong_first:
                first = dep[r.choice(WRONG_DEPARTMENT.get(cat.department_code, (COORDINATING,)))]
                if first == final:
                    first = dep[COORDINATING] if final != dep[COORDINATING] else dep["CGZF"]
            dispatcher = r.choice(self.dispatchers)
            at = self._at(h, r.uniform(5, 45), self._SEAT)
            self._do(
                h, dispatcher, A.DISPATCH, at, department_id=first,
                deadline=self._deadline(cat, at),
            )  # fmt: skip
            if plan.stuck is S.DISPATCHED:
                self._maybe_escalate(h, plan, dispatcher)
                return h
            if plan.wrong_first:
                wrong = self.dept_actor[first]
                if plan.return_after_accept:
                    self._do(h, wrong, A.ACCEPT, self._at(h, r.uniform(10, 120), self._OFFICE))
                at = self._at(h, r.uniform(20, 240), self._OFFICE)
                self._do(h, wrong, A.RETURN, at, note="经核实不属于本部门职责范围，申请回退")
                at = self._at(h, r.uniform(10, 60), self._SEAT)
                self._do(
                    h, dispatcher, A.DISPATCH, at, department_id=final,
                    deadline=self._deadline(cat, at), note="重新派遣至责任部门",
                )  # fmt: skip
            # 4. handling (处置) by the department
            staff = self.dept_actor[final]
            office = None if cat.urgency == 1 else self._OFFICE
            self._do(h, staff, A.ACCEPT, self._at(h, r.uniform(10, 150), office))
            if plan.defer is not None:
                at = self._at(h, r.uniform(120, 2880), self._OFFICE)
                note = r.choice(("涉及多部门协调，需列入专项整治计划", "需申请专项资金，暂缓办理"))
                self._do(h, dispatcher, A.DEFER, at, note=note)
                if plan.defer == "stay":
                    return h
                at = self._at(h, r.uniform(5, 40) * 1440, self._OFFICE)
                self._do(
                    h, dispatcher, A.RESUME, at, deadline=self._deadline(cat, at),
                    note="专项资金已落实，恢复办理",
                )  # fmt: skip
            if plan.extension is not None:
                self._extension(h, plan, cat, staff, dispatcher)
            if plan.escalate:
                self._maybe_escalate(h, plan, r.choice((dispatcher, seat)))
            if plan.stuck is S.HANDLING:
                return h
            self._feedback(h, plan, cat, staff, office)
            # 5. verification (核查) and closing (结案), with rework if it fails
            redo = functools.partial(self._feedback, h, plan, cat, staff, office)
            self._verify_and_close(h, plan, cat, street_sups, redo)
        except _Stop:
            pass
        return h

    def _maybe_escalate(self, h: _History, plan: _Plan, actor: wf.Actor) -> None:
        deadline = h.row["deadline"]
        if not plan.escalate or deadline is None:
            return
        at = max(h.t + _MIN_STEP, deadline + timedelta(hours=self.rng.uniform(-2, 30) * self.f))
        if at > self.now:
            raise _Stop
        self._do(h, actor, A.ESCALATE, at, note="超时未处置，请加快办理（督办）")

    def _extension(
        self, h: _History, plan: _Plan, cat: CategoryInfo, staff: wf.Actor, dispatcher: wf.Actor
    ) -> None:
        r = self.rng
        deadline = h.row["deadline"]
        span = max(0.0, (deadline - h.t).total_seconds() / 60) if deadline else 60.0
        at = self._at(h, span * r.uniform(0.3, 0.7), None)
        value, unit = cat.limit
        until = self.cal.add(max(at, deadline or at), value, "hours" if unit == "hours" else "days")
        self._do(
            h, staff, A.REQUEST_EXTENSION, at, extension_until=until.astimezone(UTC),
            note=r.choice(("需协调施工队伍和材料，申请延期", "涉及产权单位确认，申请延期")),
        )  # fmt: skip
        at = self._at(h, r.uniform(10, 120), None)
        if plan.extension == "approve" and at < h.row["pending_extension_until"]:
            self._do(h, dispatcher, A.APPROVE_EXTENSION, at, note="同意延期")
        else:  # an extension may not be approved once the date asked for has passed
            self._do(h, dispatcher, A.DENY_EXTENSION, at, note="延期理由不充分，请按期处置")

    def _feedback(
        self,
        h: _History,
        plan: _Plan,
        cat: CategoryInfo,
        staff: wf.Actor,
        office: tuple[float, float, bool] | None,
    ) -> None:
        r = self.rng
        deadline = h.row["deadline"]
        span = max(1.0, (deadline - h.t).total_seconds() / 60) if deadline else 240.0
        if plan.late:
            minutes = span + r.uniform(60, 72 * 60)
            plan.late = False  # late once at most
        else:
            minutes = span * r.uniform(0.1, 0.85)
        at = self._at(h, minutes, office)
        notes = _FEEDBACK_COMPONENT if cat.kind == "component" else _FEEDBACK_EVENT
        self._do(h, staff, A.FEEDBACK, at, note=r.choice(notes), photos=1 + (r.random() < 0.3))

    def _quick_complete(self, h: _History, sup: wf.Actor, minutes: float) -> None:
        at = self._at(h, minutes, None if minutes < 60 else self._FIELD)
        photos = 1 + (self.rng.random() < 0.3)
        self._do(h, sup, A.QUICK_COMPLETE, at, note="已现场处置完毕", photos=photos)

    def _verify_and_close(
        self,
        h: _History,
        plan: _Plan,
        cat: CategoryInfo,
        street_sups: Sequence[wf.Actor],
        redo: Callable[[], None],
    ) -> None:
        """Send to verification, verify on site, close; a rework (by the seat, or a failed
        verification) sends the case back and ``redo`` hands it in again."""
        r = self.rng
        seat = r.choice(self.seats)
        while True:
            at = self._at(h, r.uniform(5, 40), self._SEAT)
            if plan.rework == "seat":
                plan.rework = None
                self._do(
                    h, seat, A.REWORK, at, deadline=self._deadline(cat, at),
                    note="反馈照片未体现处置结果，返工",
                )  # fmt: skip
                redo()
                continue
            self._do(h, seat, A.REQUEST_VERIFY, at)
            sup = r.choice(street_sups)
            at = self._at(h, r.uniform(30, 360), self._FIELD)
            if plan.rework == "verify_fail":
                plan.rework = None
                self._do(
                    h, sup, A.VERIFY_FAIL, at, deadline=self._deadline(cat, at), photos=1,
                    note="现场核查问题仍然存在，返工",
                )  # fmt: skip
                redo()
                continue
            self._do(
                h, sup, A.VERIFY_PASS, at, note="现场核查已处置到位", photos=int(r.random() < 0.5)
            )
            break
        self._do(h, seat, A.CLOSE, self._at(h, r.uniform(5, 45), self._SEAT), note="结案")

    # -- all cases ---------------------------------------------------------------------------

    def stream(self, n: int, chunk: int = 500, tick: int = 4) -> Iterator[DemoChunk | None]:
        """Generate ``n`` cases in report order, yielding a ``DemoChunk`` every ``chunk`` cases and
        ``None`` every ``tick`` cases (a point where the caller may let other tasks run).

        Events are released in their global order (time, case id, version), so that a writer can
        append them as they come and ``case_events.seq`` still follows time: an event is released
        once every case still to come is reported after it."""
        skeletons = self.skeletons(n)
        forced_from = n - min(n, max(60, n // 100))
        normal_targets = itertools.cycle(_NORMAL_TARGETS)
        quick_targets = itertools.cycle(_QUICK_TARGETS)
        out = DemoChunk([], [], [])
        pending: list[tuple[Any, ...]] = []
        recent: list[dict[str, Any]] = []  # earlier registered cases, for duplicates
        for index, (reported_at, source, quick) in enumerate(skeletons):
            target = None
            if index >= forced_from:
                target = next(quick_targets) if quick else next(normal_targets)
            case, h = self._one(reported_at, source, quick, target, recent)
            pending.extend(h.events)
            out.attachments.extend(h.attachments)
            out.cases.append(case)
            if (index + 1) % tick == 0:
                yield None
            if (index + 1) % chunk == 0 and index + 1 < n:
                pending.sort(key=_event_key)
                cut = bisect.bisect_left(
                    pending, (skeletons[index + 1][0], self.next_case_id, 0), key=_event_key
                )
                out.events, pending = pending[:cut], pending[cut:]
                yield out
                out = DemoChunk([], [], [])
        pending.sort(key=_event_key)
        out.events = pending
        yield out

    def generate(self, n: int) -> DemoChunk:
        """All ``n`` cases at once (events in global order)."""
        whole = DemoChunk([], [], [])
        for part in self.stream(n):
            if part is not None:
                whole.cases.extend(part.cases)
                whole.attachments.extend(part.attachments)
                whole.events.extend(part.events)
        return whole

    def _one(
        self,
        reported_at: datetime,
        source: str,
        quick: bool,
        target: CaseState | None,
        recent: list[dict[str, Any]],
    ) -> tuple[tuple[Any, ...], _History]:
        case_id = self.next_case_id
        self.next_case_id += 1
        plan0 = self._plan(quick, target)
        if plan0.reject is wf.RejectReason.DUPLICATE and not recent:
            plan0.reject = wf.RejectReason.INVALID
        case = self._case(case_id, reported_at, source, plan0, recent)
        cat = case["category"]
        reporter = self._reporter(source, case["street"])
        if target is None:
            h = self._history(case, cat, plan0, reporter)
        else:
            # The newest cases must reach their target state before ``now``: if the realistic
            # pace does not get there, replay the same history faster.
            checkpoint = (self.next_attachment_id, self.rng.getstate())
            for f in (1.0, 0.25, 0.05, 0.01, 0.002):
                self.f = f
                self.next_attachment_id = checkpoint[0]
                self.rng.setstate(checkpoint[1])
                h = self._history(case, cat, dataclasses.replace(plan0), reporter)
                if h.row["state"] is target:
                    break
            self.f = 1.0
        if not quick and plan0.reject is None:
            recent.append(case)
            if len(recent) > 40:
                recent.pop(0)
        return self._case_row(case, h, reporter), h

    def _reporter(self, source: str, street: str) -> wf.Actor:
        r = self.rng
        if source == "supervisor":
            return r.choice(self.sups[street])
        if source == "hotline":
            return r.choice(self.agents)
        return r.choice(self.seats)

    def _case(
        self,
        case_id: int,
        reported_at: datetime,
        source: str,
        plan: _Plan,
        recent: list[dict[str, Any]],
    ) -> dict[str, Any]:
        r = self.rng
        local_day = reported_at.astimezone(self.tz).date()
        counter = self.counters.get(local_day, 0) + 1
        self.counters[local_day] = counter
        case_no = f"{local_day:%Y%m%d}-{counter:05d}"
        case: dict[str, Any] = {"id": case_id, "case_no": case_no, "source": source}
        case["reported_at"] = reported_at
        if plan.reject is wf.RejectReason.DUPLICATE:
            orig = r.choice(recent)
            case.update(
                category=orig["category"],
                grid_id=orig["grid_id"],
                cell=orig["cell"],
                street=orig["street"],
                address=orig["address"],
                text=orig["text"],
                duplicate_of=(orig["id"], orig["case_no"]),
            )
        else:
            cat = self._pick("quick" if plan.quick else source)
            gid, cell = self.org.cells[r.randrange(len(self.org.cells))]
            road = r.choice(_ROADS.get(cell.street, ("麒麟南路",)))
            texts = _DESCRIPTIONS.get(cat.minor_name, (f"发现{cat.minor_name}问题，请处置",))
            case.update(
                category=cat,
                grid_id=gid,
                cell=cell,
                street=cell.street,
                address=f"{_STREET_NAMES.get(cell.street, '')}{road}{r.randint(1, 399)}号"
                + r.choice(_SPOTS),
                text=r.choice(texts),
            )
        case["description"] = _SOURCE_PREFIX[source] + case["text"]
        cell = case["cell"]
        case["lon"] = cell.west + (cell.east - cell.west) * r.uniform(0.03, 0.97)
        case["lat"] = cell.south + (cell.north - cell.south) * r.uniform(0.03, 0.97)
        name = phone = ""
        if source == "hotline" or (source == "public" and r.random() < 0.6):
            name = r.choice(_SURNAMES) + r.choice(("先生", "女士", r.choice(_GIVEN)))
            phone = (
                f"1{r.choice('35789')}{r.randrange(10)}-"
                f"{r.randrange(10000):04d}-{r.randrange(10000):04d}"
            )
        case["contact_name"], case["contact_phone"] = name, phone
        return case

    def _case_row(self, case: dict[str, Any], h: _History, reporter: wf.Actor) -> tuple[Any, ...]:
        """The case as a record for COPY, in the order of ``storage.cases.CASE_COLUMNS``."""
        row = h.row
        cat: CategoryInfo = case["category"]
        reason = row["reject_reason"]
        values: dict[str, Any] = {k: row[k] for k in _ROW_DEFAULTS}
        values.update(
            id=case["id"],
            case_no=case["case_no"],
            source=case["source"],
            category_id=cat.id,
            state=row["state"].value,
            version=h.version,
            lon=case["lon"],
            lat=case["lat"],
            address=case["address"],
            grid_id=case["grid_id"],
            component_id=None,
            description=case["description"],
            reporter_id=reporter.user_id,
            contact_name=case["contact_name"],
            contact_phone=case["contact_phone"],
            is_quick=row["is_quick"],
            urgency=cat.urgency,
            reject_reason=None if reason is None else reason.value,
            reported_at=case["reported_at"],
            updated_at=h.t,
            search=document_terms(case["case_no"], case["description"], case["address"]),
        )
        return tuple(values[c] for c in CASE_COLUMNS)


# --------------------------------------------------------------------------------------------------
# Loading


@dataclasses.dataclass(frozen=True, slots=True)
class DemoSummary:
    """What ``load_demo`` inserted (all zero with ``loaded=False`` when the demo was already there)."""

    loaded: bool
    grids: int = 0
    departments: int = 0
    users: int = 0
    cases: int = 0
    components: int = 0
    events: int = 0
    attachments: int = 0
    seconds: float = 0.0


async def load_demo(
    pool: asyncpg.Pool,
    *,
    attachments: AttachmentStore,
    calendar: WorkCalendar,
    now: datetime,
    n_cases: int = 10_000,
    seed: int = 20261123,
) -> DemoSummary:
    """Load the demo city once (see the module docstring); a no-op when it is already loaded."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    started = _time.perf_counter()
    with map_pg_errors():
        async with advisory_lock(pool, DEMO_LOCK_KEY) as conn, conn.transaction():
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM settings_kv WHERE key = $1)", DEMO_FLAG
            ):
                log.info("demo city already loaded")
                return DemoSummary(loaded=False)
            hashes_task = asyncio.ensure_future(_hash_passwords())
            photos_task = asyncio.ensure_future(asyncio.to_thread(_store_photos, attachments))
            try:
                await ensure_reference_data(conn)
                await conn.execute("LOCK TABLE cases, case_events, attachments IN EXCLUSIVE MODE")
                departments = await _insert_departments(conn)
                categories = await _categories(conn, departments)
                cells = await _insert_grids(conn)
                users = await _insert_users(conn, await hashes_task, departments, cells, now)
                photos = await photos_task
            finally:
                for task in (hashes_task, photos_task):
                    if not task.done():
                        task.cancel()
            level2 = [(gid, c) for gid, c in cells if c.level == 2]
            supervisors: dict[str, list[str]] = {}
            for i, (street, _name, _w) in enumerate(STREETS):
                supervisors[street] = [f"sup{2 * i + 1:02d}", f"sup{2 * i + 2:02d}"]
            from hub.demo.components import insert_components

            components = await insert_components(conn, cells, departments, seed)
            org = DemoOrg(level2, categories, departments, users, supervisors)
            counts = await _write_history(conn, org, calendar, photos, now, seed, n_cases)
            await conn.execute(
                "INSERT INTO settings_kv (key, value) VALUES ($1, $2::text::jsonb)",
                DEMO_FLAG,
                orjson.dumps(
                    {"at": now.astimezone(UTC).isoformat(), "cases": n_cases, "seed": seed}
                ).decode(),
            )
    summary = DemoSummary(
        loaded=True,
        grids=len(cells),
        departments=len(departments),
        users=len(users),
        cases=counts[0],
        components=components,
        events=counts[2],
        attachments=counts[1],
        seconds=round(_time.perf_counter() - started, 3),
    )
    log.info("demo city loaded: %s", summary)
    return summary


async def _hash_passwords() -> dict[str, str]:
    """One argon2 hash per distinct demo password (hashing is slow on purpose), in threads."""
    roles = list(_ROLE_PASSWORDS)
    hashes = await asyncio.gather(
        *(asyncio.to_thread(hash_password, _ROLE_PASSWORDS[role]) for role in roles)
    )
    return dict(zip(roles, hashes, strict=True))


def _store_photos(store: AttachmentStore) -> list[StoredBlob]:
    return [store.put(data, kind="photo") for data in demo_photos()]


async def _insert_departments(conn: asyncpg.Connection) -> dict[str, int]:
    codes = [d[0] for d in DEPARTMENTS]
    taken = await conn.fetch(
        "SELECT code FROM departments WHERE code = ANY($1::text[]) OR is_coordinating", codes
    )
    if taken:
        raise StorageError(
            "演示数据与现有部门冲突 (demo departments clash with existing ones)",
            details={"codes": sorted(r["code"] for r in taken)},
        )
    rows = await conn.fetch(
        "INSERT INTO departments (code, name, is_coordinating, phone)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[])"
        " RETURNING id, code",
        codes,
        [d[1] for d in DEPARTMENTS],
        [d[2] for d in DEPARTMENTS],
        [d[3] for d in DEPARTMENTS],
    )
    return {r["code"]: r["id"] for r in rows}


async def _categories(
    conn: asyncpg.Connection, departments: Mapping[str, int]
) -> list[CategoryInfo]:
    """Set missing default departments sensibly; return the active categories for the demo."""
    rows = await conn.fetch(
        "SELECT id, kind, major_name, minor_name, urgency, time_limit_value, time_limit_unit,"
        " default_department_id FROM categories WHERE active ORDER BY id"
    )
    code_of = {v: k for k, v in departments.items()}
    updates: list[tuple[int, int]] = []
    out: list[CategoryInfo] = []
    for r in rows:
        dep_id = r["default_department_id"]
        if dep_id is None:
            code = MINOR_DEPARTMENT.get(
                r["minor_name"], MAJOR_DEPARTMENT.get((r["kind"], r["major_name"]), COORDINATING)
            )
            dep_id = departments[code]
            updates.append((r["id"], dep_id))
        value, unit = r["time_limit_value"], r["time_limit_unit"]
        out.append(
            CategoryInfo(
                id=r["id"],
                kind=r["kind"],
                minor_name=r["minor_name"],
                urgency=r["urgency"],
                limit=(value, unit) if value and unit in ("hours", "days") else DEFAULT_LIMIT,
                department_code=code_of.get(dep_id, COORDINATING),
            )
        )
    if updates:
        await conn.execute(
            "UPDATE categories c SET default_department_id = u.dep"
            " FROM unnest($1::int[], $2::int[]) AS u(id, dep) WHERE c.id = u.id",
            [u[0] for u in updates],
            [u[1] for u in updates],
        )
    if not out:
        raise StorageError("没有可用的案件类别 (no active categories)")
    return out


async def _insert_grids(conn: asyncpg.Connection) -> list[tuple[int, GridCell]]:
    cells = grid_lattice()
    taken = await conn.fetch(
        "SELECT code FROM grids WHERE code = ANY($1::text[]) LIMIT 5", [c.code for c in cells]
    )
    if taken:
        raise StorageError(
            "演示网格与现有网格编码冲突 (demo grid codes clash with existing grids)",
            details={"codes": [r["code"] for r in taken]},
        )
    ids: dict[str, int] = {}
    for level in (1, 2):
        chosen = [c for c in cells if c.level == level]
        rows = await conn.fetch(
            "INSERT INTO grids (code, name, level, parent_id, boundary, area_m2)"
            " SELECT u.code, u.name, $3::smallint, p.id, u.boundary::polygon, u.area"
            " FROM unnest($1::text[], $2::text[], $4::text[], $5::text[], $6::float8[])"
            "   AS u(code, name, parent, boundary, area)"
            " LEFT JOIN grids p ON p.code = u.parent"
            " RETURNING id, code",
            [c.code for c in chosen],
            [c.name for c in chosen],
            level,
            [c.parent_code for c in chosen],
            [c.boundary for c in chosen],
            [c.area_m2 for c in chosen],
        )
        ids.update((r["code"], r["id"]) for r in rows)
    return [(ids[c.code], c) for c in cells]


async def _insert_users(
    conn: asyncpg.Connection,
    hashes: Mapping[str, str],
    departments: Mapping[str, int],
    cells: Sequence[tuple[int, GridCell]],
    now: datetime,
) -> dict[str, wf.Actor]:
    """Insert the demo accounts (an existing account of the same name and role is kept as it is,
    password included); return the actors, supervisors with their second-level grids."""
    dep_ids = [departments[d[0]] for d in DEPARTMENTS]
    names, displays, roles, deps, pw = [], [], [], [], []
    for index, (username, (role, _password)) in enumerate(DEMO_USERS.items()):
        names.append(username)
        displays.append(_display_name(username, index))
        roles.append(role)
        deps.append(dep_ids[int(username[4:]) - 1] if role == "department" else None)
        pw.append(hashes[role])
    await conn.execute(
        "INSERT INTO users (username, display_name, password_hash, role, department_id, created_at)"
        " SELECT u.*, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) AS u"
        " ON CONFLICT (username) DO NOTHING",
        names,
        displays,
        pw,
        roles,
        deps,
        now - timedelta(days=HISTORY_DAYS + 10),
    )
    rows = await conn.fetch(
        "SELECT id, username, role, department_id FROM users WHERE username = ANY($1::text[])",
        names,
    )
    found = {r["username"]: r for r in rows}
    for username, role, dep in zip(names, roles, deps, strict=True):
        rec = found[username]
        if rec["role"] != role or rec["department_id"] != dep:
            raise StorageError(
                "演示账号与现有账号冲突 (a demo username exists with another role)",
                details={"username": username, "role": rec["role"]},
            )
    street_grid = {c.street: gid for gid, c in cells if c.level == 1}
    street_cells: dict[str, frozenset[int]] = {}
    for gid, c in cells:
        if c.level == 2:
            street_cells[c.street] = street_cells.get(c.street, frozenset()) | {gid}
    actors: dict[str, wf.Actor] = {}
    pairs: list[tuple[int, int]] = []
    for username, role, dep in zip(names, roles, deps, strict=True):
        uid = found[username]["id"]
        grid_ids: frozenset[int] = frozenset()
        if role == "supervisor":
            street = STREETS[(int(username[3:]) - 1) // 2][0]
            grid_ids = street_cells[street]
            pairs.append((uid, street_grid[street]))
        actors[username] = wf.Actor(uid, R(role), dep, grid_ids)
    await conn.execute(
        "INSERT INTO user_grids (user_id, grid_id) SELECT * FROM unnest($1::int[], $2::int[])"
        " ON CONFLICT DO NOTHING",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return actors


async def _write_history(
    conn: asyncpg.Connection,
    org: DemoOrg,
    calendar: WorkCalendar,
    photos: Sequence[StoredBlob],
    now: datetime,
    seed: int,
    n_cases: int,
) -> tuple[int, int, int]:
    """Generate the cases and COPY them chunk by chunk: a writer task copies one chunk while the
    generator (yielding to the loop every few cases) makes the next, so that PostgreSQL's work
    (constraint checks, index updates) overlaps Python's. Returns (cases, attachments, events)."""
    first_case = await _next_id(conn, "cases", "id")
    first_attachment = await _next_id(conn, "attachments", "id")
    counters = {
        r["day"]: r["last"]
        for r in await conn.fetch(
            "SELECT day, last FROM case_counters WHERE day >= $1",
            now.astimezone(calendar.tz).date() - timedelta(days=HISTORY_DAYS + 1),
        )
    }
    gen = HistoryGenerator(
        org,
        calendar,
        photos,
        now,
        seed,
        first_case_id=first_case,
        first_attachment_id=first_attachment,
        counters=counters,
    )
    # A connection without storage.db's jsonb codec takes JSON text.
    json_text = not isinstance(await conn.fetchval("SELECT '{}'::jsonb"), dict)
    # tsvector has no binary COPY format in asyncpg: stage the case rows with the text, then cast.
    await conn.execute(
        "CREATE TEMP TABLE demo_cases_stage ON COMMIT DROP AS SELECT * FROM cases WITH NO DATA;"
        " ALTER TABLE demo_cases_stage ALTER COLUMN search TYPE text"
    )
    queue: asyncio.Queue[DemoChunk | None] = asyncio.Queue()
    counts = [0, 0, 0]

    async def writer() -> None:
        select = ", ".join("search::tsvector" if c == "search" else c for c in CASE_COLUMNS)
        insert = (
            f"INSERT INTO cases ({', '.join(CASE_COLUMNS)}) SELECT {select}"
            " FROM demo_cases_stage ORDER BY id"
        )
        while (chunk := await queue.get()) is not None:
            if chunk.cases:
                await conn.copy_records_to_table(
                    "demo_cases_stage", records=chunk.cases, columns=CASE_COLUMNS
                )
                await conn.execute(insert)
                await conn.execute("TRUNCATE demo_cases_stage")
            if chunk.attachments:
                await conn.copy_records_to_table(
                    "attachments", records=chunk.attachments, columns=ATTACHMENT_COLUMNS
                )
            events = chunk.events
            if json_text:
                events = [(*e[:8], orjson.dumps(e[8]).decode(), e[9]) for e in events]
            if events:
                await conn.copy_records_to_table(
                    "case_events", records=events, columns=EVENT_COLUMNS
                )
            counts[0] += len(chunk.cases)
            counts[1] += len(chunk.attachments)
            counts[2] += len(chunk.events)

    task = asyncio.ensure_future(writer())
    try:
        for item in gen.stream(n_cases):
            if task.done():
                break  # the writer failed: its error is raised below
            if item is None:
                await asyncio.sleep(0)
            else:
                queue.put_nowait(item)
        queue.put_nowait(None)
        await task
    finally:
        if not task.done():
            task.cancel()
    for table in ("cases", "attachments"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 1),"
            f" max(id) IS NOT NULL) FROM {table}"
        )
    await conn.execute(
        "INSERT INTO case_counters (day, last) SELECT * FROM unnest($1::date[], $2::int[])"
        " ON CONFLICT (day) DO UPDATE SET last = greatest(case_counters.last, EXCLUDED.last)",
        list(gen.counters),
        list(gen.counters.values()),
    )
    return counts[0], counts[1], counts[2]


async def _next_id(conn: asyncpg.Connection, table: str, column: str) -> int:
    """The first free id: past both the table's max and its sequence's last value."""
    seq = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table, column)
    last = await conn.fetchval(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq}")
    top = await conn.fetchval(f"SELECT coalesce(max({column}), 0) FROM {table}")
    return int(max(last, top)) + 1
