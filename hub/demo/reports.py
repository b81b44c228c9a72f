"""What the demo city reports, before any workflow move: when (a daily rhythm per source over the
last ``HISTORY_DAYS``), from which source (``SOURCE_MIX``), in which category (the mixes follow the
figures in ``/work/shared/domain/README.md``, see ``docs/demo.md``), where and in which words, and
the fate drawn for each case (``plan_case``: sent to 核实, rejected, voided, returned, deferred,
extended, escalated, late, reworked ...; ``plan_urgency``: marked 紧急 when, and un-marked).

Pure: every draw comes from the ``random.Random`` passed in, in a fixed order, so one seed always
gives the same city.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final

from hub.core import workflow as wf
from hub.demo.geography import GridCell
from hub.demo.records import CategoryInfo
from hub.demo.text import (
    DESCRIPTIONS,
    GIVEN_NAMES,
    ROADS,
    SOURCE_PREFIX,
    SPOTS,
    STREET_NAMES,
    SURNAMES,
)

S = wf.CaseState
CaseState = wf.CaseState

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

#: 核实: the share of each source's reports a seat sends to the grid's supervisor to confirm on site
#: before registering them (reports the desk cannot judge: citizens', the hotline's, sensor alarms).
CONFIRM_SHARE: Final[Mapping[str, float]] = {"hotline": 0.40, "public": 0.50, "sensor": 0.20}
#: Of those, the share the supervisor finds untrue (不属实: the seat then rejects the report), and the
#: share answered after the 30-minute allowance (besides requests the field hours put off).
CONFIRM_FAIL: Final = 0.18
CONFIRM_LATE: Final = 0.08
#: 紧急: the chance a case is urgent, by category: the 突发事件 class (``urgency`` 1), the hazards
#: below, anything else. About 4 % of reports are urgent (``docs/demo.md``).
URGENT_EMERGENCY: Final = 0.55
URGENT_HAZARD: Final = 0.15
URGENT_OTHER: Final = 0.02
HAZARDS: Final = frozenset(
    {
        "上水井盖",
        "污水井盖",
        "雨水井盖",
        "消防栓",
        "护栏",
        "交通信号灯",
        "化粪池",
        "液化气站",
        "施工占道",
    }
)
#: Who marks an urgent case (weights): the reporter, the seat at registration, the dispatcher;
#: and the share marked urgent that a later step finds not urgent after all (un-marked).
URGENT_WHEN: Final[Mapping[str, float]] = {"report": 0.6, "register": 0.28, "dispatch": 0.12}
URGENT_UNMARKED: Final = 0.10


#: The category mix of each kind of report ("quick": quick handling by a supervisor).
CATEGORY_MIXES: Final[Mapping[str, Mapping[str, float]]] = {
    "video": VIDEO_MIX,
    "supervisor": SUPERVISOR_MIX,
    "quick": QUICK_MIX,
    "hotline": HOTLINE_MIX,
    "public": PUBLIC_MIX,
    "sensor": SENSOR_MIX,
}
#: Categories and their cumulative weights, for ``pick``.
Mix = tuple[list[CategoryInfo], list[float]]


@dataclasses.dataclass(slots=True)
class Plan:
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
    confirm: str | None = None  # 核实 before registration: "pass" | "fail"
    confirm_late: bool = False  # answered after the allowance
    urgent_at: str | None = None  # marked 紧急 at: "report" | "register" | "dispatch"
    unmark_at: str | None = None  # un-marked at a later step: "register" | "dispatch"


def _mix(
    categories: Sequence[CategoryInfo],
    by_name: Mapping[str, CategoryInfo],
    weights: Mapping[str, float],
) -> Mix:
    cats = [by_name[n] for n in weights if n in by_name]
    if not cats:
        cats = list(categories)
        return cats, list(itertools.accumulate(1.0 for _ in cats))
    return cats, list(itertools.accumulate(weights[c.minor_name] for c in cats))


def category_mixes(categories: Sequence[CategoryInfo]) -> dict[str, Mix]:
    """The mix of every kind of report over the categories at hand (names not there are skipped;
    with none of a mix's names there, every category weighs the same)."""
    by_name = {c.minor_name: c for c in categories}
    return {source: _mix(categories, by_name, mix) for source, mix in CATEGORY_MIXES.items()}


def pick(rng: random.Random, mixes: Mapping[str, Mix], source: str) -> CategoryInfo:
    cats, cum = mixes[source]
    return cats[bisect.bisect_right(cum, rng.random() * cum[-1])]


def report_time(rng: random.Random, now: datetime, tz: tzinfo, source: str) -> datetime:
    """A report instant in the last HISTORY_DAYS days, with a daily rhythm per source."""
    r = rng
    now_local = now.astimezone(tz)
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
        local = datetime.combine(day, time(0), tz) + timedelta(hours=hour)
        at = local.astimezone(UTC)
        if at < now - timedelta(minutes=5):
            return at.replace(microsecond=0)


def skeletons(
    rng: random.Random, now: datetime, tz: tzinfo, n: int
) -> list[tuple[datetime, str, bool]]:
    """``n`` reports (instant, source, quick), in time order."""
    r = rng
    sources, cum = list(SOURCE_MIX), list(itertools.accumulate(SOURCE_MIX.values()))
    quick_given_supervisor = QUICK_SHARE / SOURCE_MIX["supervisor"]
    out = []
    for _ in range(n):
        source = sources[bisect.bisect_right(cum, r.random() * cum[-1])]
        quick = source == "supervisor" and r.random() < quick_given_supervisor
        out.append((report_time(r, now, tz, source), source, quick))
    out.sort(key=lambda s: s[0])
    return out


def plan_case(
    rng: random.Random, quick: bool, target: CaseState | None, source: str = "supervisor"
) -> Plan:
    """What will happen to a case (drawn before its history is played)."""
    r = rng
    p = Plan(quick=quick, target=target)
    if quick:
        v = r.random()
        p.rework = "verify_fail" if v < 0.015 else "seat" if v < 0.025 else None
        return p
    forced = target is not None
    if r.random() < CONFIRM_SHARE.get(source, 0.0):
        # (A forced history's confirmation is set by its ``Forced``.)
        p.confirm = "fail" if not forced and r.random() < CONFIRM_FAIL else "pass"
        p.confirm_late = r.random() < CONFIRM_LATE
        if p.confirm == "fail":
            p.reject = wf.RejectReason.INVALID
            return p
    if not forced:
        x = r.random()
        if x < 0.075:  # ~6 % of all reports (quick ones included) are not registered
            p.reject = wf.RejectReason.INVALID if r.random() < 0.62 else wf.RejectReason.DUPLICATE
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


@dataclasses.dataclass(frozen=True, slots=True)
class Forced:
    """The fate of one of the newest cases: the state its history is driven to, where it is
    marked 紧急 (and un-marked), and the supervisor's answer when it goes to 核实 (late or not)."""

    target: CaseState
    urgent_at: str | None = None
    unmark_at: str | None = None
    confirm: str | None = None
    late: bool = False

    def apply(self, plan: Plan) -> None:
        """Set the plan's marks and confirmation (drawn ones are overridden)."""
        plan.urgent_at, plan.unmark_at = self.urgent_at, self.unmark_at
        if self.confirm is not None:
            plan.confirm, plan.confirm_late = self.confirm, self.late
            if self.confirm == "fail":
                plan.reject = wf.RejectReason.INVALID


F = Forced
#: The newest cases' fates, in turn, so that every open state is on the board (some urgent, marked
#: at each step); reports from the sources 核实 serves take ``CONFIRM_FORCED``, quick ones
#: ``QUICK_FORCED``.
NORMAL_FORCED: Final = (
    F(S.REPORTED), F(S.DISPATCHED), F(S.HANDLING, "report"), F(S.REGISTERED), F(S.FEEDBACK),
    F(S.HANDLING), F(S.VERIFYING, "register"), F(S.RETURNED), F(S.DEFERRED), F(S.VERIFIED),
    F(S.DISPATCHED, "dispatch"), F(S.HANDLING), F(S.REPORTED), F(S.CLOSED, "report", "register"),
)  # fmt: skip
CONFIRM_FORCED: Final = (
    F(S.CONFIRMING, confirm="pass"), F(S.REJECTED, confirm="fail"),
    F(S.REGISTERED, confirm="pass", late=True), F(S.HANDLING, "report", confirm="pass"),
    F(S.CONFIRMING, confirm="pass"), F(S.CLOSED, confirm="pass"),
)  # fmt: skip
QUICK_FORCED: Final = tuple(
    F(s) for s in (S.QUICK_HANDLING, S.FEEDBACK, S.VERIFYING, S.VERIFIED, S.CLOSED)
)


class ForcedFates:
    """Hands out the newest cases' fates, each kind of report in its own turn."""

    def __init__(self) -> None:
        self._normal = itertools.cycle(NORMAL_FORCED)
        self._confirm = itertools.cycle(CONFIRM_FORCED)
        self._quick = itertools.cycle(QUICK_FORCED)

    def next(self, source: str, quick: bool) -> Forced:
        if quick:
            return next(self._quick)
        return next(self._confirm if source in CONFIRM_SHARE else self._normal)


def plan_urgency(rng: random.Random, plan: Plan, cat: CategoryInfo) -> None:
    """Whether, when and by whom the case is marked 紧急 (and un-marked later), by its category;
    quick cases never are. A mark the case's history does not reach (a rejected report is never
    registered) is not made."""
    r = rng
    if plan.quick:
        return
    if cat.urgency == 1:
        chance = URGENT_EMERGENCY
    elif cat.minor_name in HAZARDS:
        chance = URGENT_HAZARD
    else:
        chance = URGENT_OTHER
    if r.random() >= chance:
        return
    when, cum = list(URGENT_WHEN), list(itertools.accumulate(URGENT_WHEN.values()))
    plan.urgent_at = when[bisect.bisect_right(cum, r.random() * cum[-1])]
    if r.random() < URGENT_UNMARKED:
        later = {"report": ("register", "dispatch"), "register": ("dispatch",)}
        options = later.get(plan.urgent_at, ())
        plan.unmark_at = r.choice(options) if options else None


def new_case(
    rng: random.Random,
    cells: Sequence[tuple[int, GridCell]],
    mixes: Mapping[str, Mix],
    counters: dict[date, int],
    tz: tzinfo,
    case_id: int,
    reported_at: datetime,
    source: str,
    plan: Plan,
    recent: list[dict[str, Any]],
) -> dict[str, Any]:
    """A reported case: its number (from the per-day ``counters``, updated), category, place, text
    and contact; a duplicate copies one of the ``recent`` cases."""
    r = rng
    local_day = reported_at.astimezone(tz).date()
    counter = counters.get(local_day, 0) + 1
    counters[local_day] = counter
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
        cat = pick(r, mixes, "quick" if plan.quick else source)
        gid, cell = cells[r.randrange(len(cells))]
        road = r.choice(ROADS.get(cell.street, ("麒麟南路",)))
        texts = DESCRIPTIONS.get(cat.minor_name, (f"发现{cat.minor_name}问题，请处置",))
        case.update(
            category=cat,
            grid_id=gid,
            cell=cell,
            street=cell.street,
            address=f"{STREET_NAMES.get(cell.street, '')}{road}{r.randint(1, 399)}号"
            + r.choice(SPOTS),
            text=r.choice(texts),
        )
    case["description"] = SOURCE_PREFIX[source] + case["text"]
    cell = case["cell"]
    case["lon"] = cell.west + (cell.east - cell.west) * r.uniform(0.03, 0.97)
    case["lat"] = cell.south + (cell.north - cell.south) * r.uniform(0.03, 0.97)
    name = phone = ""
    if source == "hotline" or (source == "public" and r.random() < 0.6):
        name = r.choice(SURNAMES) + r.choice(("先生", "女士", r.choice(GIVEN_NAMES)))
        phone = (
            f"1{r.choice('35789')}{r.randrange(10)}-"
            f"{r.randrange(10000):04d}-{r.randrange(10000):04d}"
        )
    case["contact_name"], case["contact_phone"] = name, phone
    return case
