"""The weekly report (周报) as print-styled HTML (A4, ``@media print``), in the form a city sends its
leader: the week's figures with their rates and the change against the previous week, the
composite score and its arithmetic, the department league table, the weakest departments, overdue
cases by department and the hot spots (categories and grids with the most reports). Pure: the
figures come in as the API's JSON objects; the text is zh-CN; every value is escaped."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from hub.web.evaluation_views import COUNT_LABELS, RATE_LABELS, Period

#: Figures shown in the summary, in the order a report reads them.
SUMMARY_COUNTS = ("accepted", "registered", "dispatched", "due", "closed", "on_time", "reworked")
SUMMARY_RATES = ("register_rate", "dispatch_rate", "close_rate", "on_time_rate", "rework_rate")
WORST = 3


@dataclasses.dataclass(frozen=True)
class WeeklyData:
    city_name: str
    scope: str  # "全市" or a department's name
    period: Period
    previous: Period
    now: dict[str, Any]  # the city (or department) figures: counts, rates, score
    before: dict[str, Any]
    departments: Sequence[dict[str, Any]]  # the league table rows (ranked)
    hot_categories: Sequence[tuple[str, int]]
    hot_grids: Sequence[tuple[str, int]]
    generated_at: datetime


def _delta_count(now: int, before: int) -> str:
    d = now - before
    if d == 0:
        return "持平"
    pct = "" if before == 0 else f"（{abs(d) * 100 / before:.1f}%）"
    return f"{'增加' if d > 0 else '减少'} {abs(d)}{pct}"


def _delta_rate(now: dict[str, Any], before: dict[str, Any]) -> str:
    a, b = now.get("value"), before.get("value")
    if a is None or b is None:
        return "—"
    d = (float(a) - float(b)) * 100
    if abs(d) < 0.005:
        return "持平"
    return f"{'上升' if d > 0 else '下降'} {abs(d):.2f} 个百分点"


def _delta_score(now: float, before: float) -> str:
    d = now - before
    if abs(d) < 0.005:
        return "持平"
    return f"{'上升' if d > 0 else '下降'} {abs(d):.2f} 分"


CSS = """
@page { size: A4; margin: 18mm 16mm; }
body { font-family: "SimSun", "Songti SC", "Noto Serif CJK SC", serif; color: #111;
       max-width: 190mm; margin: 0 auto; font-size: 11pt; line-height: 1.5; }
h1 { text-align: center; font-size: 20pt; margin: 0.4em 0 0.1em; letter-spacing: 0.1em; }
.sub { text-align: center; color: #444; margin-bottom: 1em; }
h2 { font-size: 13pt; border-left: 4px solid #b00; padding-left: 0.5em; margin: 1.2em 0 0.5em; }
table { border-collapse: collapse; width: 100%; margin: 0.3em 0; page-break-inside: auto; }
th, td { border: 1px solid #888; padding: 2px 6px; text-align: center; }
th { background: #eef3fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { text-align: left; }
tr { page-break-inside: avoid; }
.score { font-size: 16pt; font-weight: bold; color: #b00; }
.muted { color: #666; font-size: 9pt; }
@media print {
  body { max-width: none; }
  .noprint { display: none; }
  h2 { page-break-after: avoid; }
}
"""


#: The report's own policy: no script at all, only its inline style (by hash).
CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    + "'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def _table(head: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """Rows of (css class, text) cells under a header (every text escaped here)."""
    out = ["<table><thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        out += [f'<td class="{cls}">{escape(text)}</td>' for cls, text in row]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_weekly(d: WeeklyData) -> str:
    now: dict[str, Any] = d.now
    before = d.before
    parts: list[str] = []
    title = f"{d.city_name}数字化城市管理周报"
    parts.append(
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)} {escape(d.period.label)}</title><style>{CSS}</style></head><body>"
    )
    parts.append(f"<h1>{escape(title)}</h1>")
    parts.append(
        f'<div class="sub">{escape(d.period.label)}　统计范围：{escape(d.scope)}'
        f"　对比：{escape(d.previous.label)}</div>"
    )
    # 一、综合得分
    s_now, s_before = now["score"], before["score"]
    parts.append("<h2>一、综合评价得分</h2>")
    parts.append(
        f'<p>本周得分 <span class="score" id="score">{escape(s_now["total_text"])}</span> 分'
        f"（满分 {escape(str(s_now['max']))} 分），上周 {escape(s_before['total_text'])} 分，"
        f"{escape(_delta_score(float(s_now['total']), float(s_before['total'])))}。</p>"
    )
    parts.append(
        _table(
            ["评价项", "本周数值", "得分", "满分", "计分说明"],
            [
                [
                    ("name", t["label"]),
                    ("num", t["value_text"]),
                    ("num", f"{float(t['earned']):.2f}"),
                    ("num", f"{float(t['max']):.2f}"),
                    ("name", t["text"]),
                ]
                for t in s_now["terms"]
            ],
        )
    )
    # 二、主要指标
    parts.append("<h2>二、主要指标</h2>")
    rows: list[list[tuple[str, str]]] = []
    for k in SUMMARY_COUNTS:
        a, b = int(now["counts"][k]), int(before["counts"][k])
        rows.append(
            [("name", COUNT_LABELS[k]), ("num", str(a)), ("num", str(b)), ("", _delta_count(a, b))]
        )
    for k in SUMMARY_RATES:
        ra, rb = now["rates"][k], before["rates"][k]
        rows.append(
            [
                ("name", RATE_LABELS[k]),
                ("num", ra["text"]),
                ("num", rb["text"]),
                ("", _delta_rate(ra, rb)),
            ]
        )
    parts.append(_table(["指标", "本周", "上周", "变化"], rows))
    # 三、部门排名
    parts.append("<h2>三、专业部门考核排名</h2>")
    if d.departments:
        parts.append(
            _table(
                ["名次", "部门", "应处置数", "按期处置率", "应结案数", "按期结案率", "综合得分"],
                [
                    [
                        ("num", str(r["rank"])),
                        ("name", r["name"]),
                        ("num", str(r["counts"]["to_handle"])),
                        ("num", r["rates"]["handle_on_time_rate"]["text"]),
                        ("num", str(r["counts"]["due"])),
                        ("num", r["rates"]["on_time_rate"]["text"]),
                        ("num", r["score"]["total_text"]),
                    ]
                    for r in d.departments
                ],
            )
        )
    else:
        parts.append("<p>本周无部门数据。</p>")
    # 四、后进部门
    worst = [r for r in d.departments if r["counts"]["to_handle"] or r["counts"]["due"]]
    worst = sorted(worst, key=lambda r: (float(r["score"]["total"]), r["name"]))[:WORST]
    parts.append("<h2>四、需要重点督办的部门</h2>")
    if worst:
        items = "".join(
            f"<li><b>{escape(r['name'])}</b>：综合得分 {escape(r['score']['total_text'])} 分，"
            f"按期处置率 {escape(r['rates']['handle_on_time_rate']['text'])}，"
            f"超期 {int(r['counts']['overdue'])} 件，回退 {int(r['counts']['returned'])} 件。</li>"
            for r in worst
        )
        parts.append(f'<ol id="worst">{items}</ol>')
    else:
        parts.append("<p>本周没有需要督办的部门。</p>")
    # 五、超期
    overdue = sorted(
        (r for r in d.departments if int(r["counts"]["overdue"]) > 0),
        key=lambda r: (-int(r["counts"]["overdue"]), r["name"]),
    )
    parts.append("<h2>五、各部门超期案件</h2>")
    if overdue:
        parts.append(
            _table(
                ["部门", "超期数", "应处置数", "超期率"],
                [
                    [
                        ("name", r["name"]),
                        ("num", str(r["counts"]["overdue"])),
                        ("num", str(r["counts"]["to_handle"])),
                        ("num", r["rates"]["overdue_rate"]["text"]),
                    ]
                    for r in overdue
                ],
            )
        )
    else:
        parts.append("<p>本周无超期案件。</p>")
    # 六、热点
    parts.append("<h2>六、问题热点</h2>")
    for caption, spots in (("案件类别", d.hot_categories), ("网格", d.hot_grids)):
        if spots:
            parts.append(
                _table([caption, "受理数"], [[("name", n), ("num", str(c))] for n, c in spots])
            )
        else:
            parts.append(f"<p>本周无{escape(caption)}热点。</p>")
    parts.append(
        f'<p class="muted">数据截至 {escape(d.period.end.isoformat())}（不含）；'
        f"生成于 {escape(d.generated_at.strftime('%Y-%m-%d %H:%M'))}。"
        f"比率的分母与评价公式见系统“综合评价”页面。</p>"
    )
    parts.append('<p class="noprint muted">打印或另存为 PDF：使用浏览器的“打印”（A4）。</p>')
    parts.append("</body></html>")
    return "".join(parts)
