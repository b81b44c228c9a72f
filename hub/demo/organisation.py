"""The organisation of the demo city: ten departments (one of them the coordinating office), which
department each category goes to (and where a wrongly dispatched case goes first), and an account
for every role (``DEMO_USERS``: username -> (role, password), with display names).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from hub.demo.geography import STREETS
from hub.demo.text import GIVEN_NAMES, SURNAMES

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


ROLE_PASSWORDS: Final[Mapping[str, str]] = {
    "admin": "Admin#2026",
    "seat": "Seat#2026",
    "dispatcher": "Dispatch#2026",
    "department": "Dept#2026",
    "supervisor": "Super#2026",
    "agent": "Agent#2026",
    "viewer": "Viewer#2026",
}


def _demo_users() -> dict[str, tuple[str, str]]:
    users: dict[str, tuple[str, str]] = {"admin": ("admin", ROLE_PASSWORDS["admin"])}
    for prefix, role, n in (("seat", "seat", 3), ("dispatch", "dispatcher", 2)):
        users.update({f"{prefix}{i}": (role, ROLE_PASSWORDS[role]) for i in range(1, n + 1)})
    for i in range(1, len(DEPARTMENTS) + 1):
        users[f"dept{i:02d}"] = ("department", ROLE_PASSWORDS["department"])
    for i in range(1, 2 * len(STREETS) + 1):
        users[f"sup{i:02d}"] = ("supervisor", ROLE_PASSWORDS["supervisor"])
    users.update({f"agent{i}": ("agent", ROLE_PASSWORDS["agent"]) for i in range(1, 4)})
    users["bigscreen"] = ("viewer", ROLE_PASSWORDS["viewer"])
    return users


#: username -> (role, password) of every demo account (deptNN belongs to DEPARTMENTS[NN-1];
#: supervisors sup01/sup02 cover STREETS[0], sup03/sup04 STREETS[1], ...).
DEMO_USERS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(_demo_users())


def _person(i: int) -> str:
    return SURNAMES[(i * 5 + 3) % len(SURNAMES)] + GIVEN_NAMES[(i * 11) % len(GIVEN_NAMES)]


def display_name(username: str, index: int) -> str:
    if username == "admin":
        return "系统管理员"
    if username == "bigscreen":
        return "指挥大屏"
    if username.startswith("dept"):
        return f"{_person(index)}（{DEPARTMENTS[int(username[4:]) - 1][1]}）"
    return _person(index)
