"""The evaluation tables as files: ``.xlsx`` (openpyxl; numbers as numbers, rates as percentage
cells, a header row, frozen panes, column widths, a Chinese sheet title) and ``.csv`` (UTF-8 with
a BOM, so that Excel opens the Chinese text correctly). Pure: a ``Sheet`` in, bytes out."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from hub.web.evaluation_views import Period

Kind = Literal["text", "count", "rate", "score", "number"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"
NO_VALUE = "—"
_KINDS: dict[str, Kind] = {
    "text": "text",
    "count": "count",
    "rate": "rate",
    "score": "score",
    "number": "number",
}


@dataclasses.dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: Kind


@dataclasses.dataclass(frozen=True)
class Sheet:
    """One table: its title (the sheet's name), the period it covers, columns and rows (a row is
    a mapping by column key: text for ``text``, an int for ``count``, a rate's JSON object
    (``{"value", "text"}``) for ``rate``, a number for ``score``)."""

    title: str
    period: Period
    columns: Sequence[Column]
    rows: Sequence[dict[str, Any]]
    frozen_columns: int = 1  # columns kept in view when scrolling right (e.g. rank and name)

    @property
    def file_stem(self) -> str:
        return (
            f"{self.title}_{self.period.first_day.isoformat()}_{self.period.last_day.isoformat()}"
        )


def columns_of(raw: Sequence[dict[str, str]]) -> list[Column]:
    out: list[Column] = []
    for c in raw:
        out.append(Column(c["key"], c["label"], _KINDS[c["kind"]]))
    return out


def _rate_value(cell: Any) -> float | None:
    if isinstance(cell, dict):
        value = cell.get("value")
        return None if value is None else float(value)
    return None if cell is None else float(cell)


def _rate_text(cell: Any) -> str:
    if isinstance(cell, dict):
        return str(cell.get("text", NO_VALUE))
    return NO_VALUE if cell is None else f"{float(cell) * 100:.2f}%"


def _width(text: str) -> int:
    """Display width in Excel character units: CJK characters take two."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
#: A text starting with one of these is a formula to a spreadsheet (CSV/formula injection, OWASP):
#: a name like ``=HYPERLINK(…)`` must stay text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(text: str) -> str:
    """A text cell of the CSV, with a leading ``'`` where a spreadsheet would see a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def xlsx_bytes(sheet: Sheet) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = _SHEET_BAD.sub(" ", sheet.title)[:31]
    wb.properties.title = f"{sheet.title} {sheet.period.label}"
    wb.properties.creator = "cityhub"
    ws.append([c.label for c in sheet.columns])
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for cell in ws[1]:
        cell.font = bold
        cell.fill = fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    widths = [_width(c.label) for c in sheet.columns]
    for r, row in enumerate(sheet.rows, start=2):
        for i, col in enumerate(sheet.columns):
            raw = row.get(col.key)
            cell = ws.cell(row=r, column=i + 1)
            if col.kind == "rate":
                value = _rate_value(raw)
                if value is None:
                    cell.value = NO_VALUE
                    cell.alignment = Alignment(horizontal="right")
                else:
                    cell.value = value
                    cell.number_format = "0.00%"
                shown = _rate_text(raw)
            elif col.kind == "count":
                cell.value = int(raw or 0)
                cell.number_format = "0"
                shown = str(cell.value)
            elif col.kind in ("score", "number"):
                cell.value = NO_VALUE if raw is None else float(raw)
                cell.number_format = "0.00"
                shown = NO_VALUE if raw is None else f"{float(raw):.2f}"
            else:
                cell.value = "" if raw is None else str(raw)
                cell.data_type = "s"  # a string, even one that starts with "=" (no formula)
                shown = str(cell.value)
            widths[i] = max(widths[i], _width(shown))
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = min(max(w + 2, 8), 40)
    ws.freeze_panes = f"{get_column_letter(sheet.frozen_columns + 1)}2"
    ws.auto_filter.ref = ws.dimensions
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def csv_bytes(sheet: Sheet) -> bytes:
    """The table as CSV: rates as Excel shows them (``99.34%``), counts and scores as numbers."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.label for c in sheet.columns])
    for row in sheet.rows:
        line: list[Any] = []
        for col in sheet.columns:
            raw = row.get(col.key)
            if col.kind == "rate":
                line.append(_rate_text(raw))
            elif col.kind == "count":
                line.append(int(raw or 0))
            elif col.kind in ("score", "number"):
                line.append(NO_VALUE if raw is None else f"{float(raw):.2f}")
            else:
                line.append("" if raw is None else _csv_text(str(raw)))
        w.writerow(line)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the Chinese one (RFC 6266 ``filename*``)."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("_") or "export"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
