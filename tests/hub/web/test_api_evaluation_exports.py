"""The evaluation exports over HTTP: the workbook openpyxl reads back and the CSV the csv module
reads back hold exactly the API's figures (numbers as numbers, rates as percentage cells), with a
Chinese file name; department staff export only their own department."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import unquote

import pytest
from openpyxl import load_workbook

from tests.conftest import Api
from tests.hub.web.test_api_evaluation import DAY, Week, ok, week

__all__ = ["week"]  # the fixture, shared with the API tests


async def download(api: Api, url: str, **params: Any) -> tuple[bytes, str]:
    r = await api.get(url, params={"day": DAY, **params})
    assert r.status_code == 200, r.text
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    name = unquote(disposition.split("filename*=UTF-8''")[1])
    return r.content, name


async def test_xlsx_departments_equal_the_api(week: tuple[Week, dict[str, Api]]) -> None:
    w, u = week
    api = await ok(u["viewer"], "/api/evaluation/departments")
    data, name = await download(u["viewer"], "/api/evaluation/export.xlsx", table="departments")
    assert name == "部门评价_2028-03-06_2028-03-12.xlsx"
    wb = load_workbook(io.BytesIO(data))
    ws = wb.active
    assert ws is not None and ws.title == "部门评价"
    assert ws.freeze_panes == "C2"
    header = [c.value for c in ws[1]]
    labels = {c["key"]: c["label"] for c in api["columns"]}
    assert header[:2] == ["名次", "部门"]
    assert header[2:] == [labels[c["key"]] for c in api["columns"]]
    assert ws.max_row == len(api["rows"]) + 1
    col = {label: i for i, label in enumerate(header)}
    for xl, row in zip(ws.iter_rows(min_row=2, values_only=True), api["rows"], strict=True):
        assert xl[0] == row["rank"] and xl[1] == row["name"]
        assert xl[col["结案数"]] == row["counts"]["closed"]
        assert isinstance(xl[col["应结案数"]], int)
        on_time = row["rates"]["on_time_rate"]["value"]
        assert xl[col["按期结案率"]] == (on_time if on_time is not None else "—")
        assert xl[col["综合得分"]] == row["score"]["total"]
    # The rate cells are real percentages.
    b_row = next(
        r for r in range(2, ws.max_row + 1) if ws.cell(r, 2).value == api["rows"][-1]["name"]
    )
    cell = ws.cell(b_row, col["按期结案率"] + 1)
    assert cell.number_format == "0.00%" and cell.value == 0
    a_row = next(r for r in api["rows"] if r["department_id"] == w.dep_a)
    a_xl = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 2).value == a_row["name"])
    assert ws.cell(a_xl, col["按期结案率"] + 1).value == 1.0
    assert ws.column_dimensions["B"].width >= 8


async def test_xlsx_city_row(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    api = await ok(u["viewer"], "/api/evaluation/city")
    data, name = await download(u["viewer"], "/api/evaluation/export.xlsx", table="city")
    assert name.startswith("全市评价_")
    ws = load_workbook(io.BytesIO(data)).active
    assert ws is not None
    header = [c.value for c in ws[1]]
    values = dict(zip(header, next(ws.iter_rows(min_row=2, values_only=True)), strict=True))
    assert values["统计时段"] == api["period"]["label"]
    assert values["受理数"] == api["counts"]["accepted"] == 3
    assert values["立案率"] == pytest.approx(api["rates"]["register_rate"]["value"])
    assert values["综合得分"] == api["score"]["total"]


async def test_csv_reads_back(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    api = await ok(u["viewer"], "/api/evaluation/departments")
    data, name = await download(u["viewer"], "/api/evaluation/export.csv", table="departments")
    assert name.endswith(".csv") and data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == len(api["rows"])
    for got, row in zip(rows, api["rows"], strict=True):
        assert got["部门"] == row["name"]
        assert int(got["应结案数"]) == row["counts"]["due"]
        assert got["按期结案率"] == row["rates"]["on_time_rate"]["text"]
        assert float(got["综合得分"]) == row["score"]["total"]


async def test_department_staff_export_their_department_only(
    week: tuple[Week, dict[str, Api]],
) -> None:
    w, u = week
    data, _ = await download(u["dept_b"], "/api/evaluation/export.csv", table="departments")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == 1 and int(rows[0]["应结案数"]) == 1
    data, name = await download(u["dept_b"], "/api/evaluation/export.xlsx", table="city")
    assert name.endswith(".xlsx") and not name.startswith("全市")
    ws = load_workbook(io.BytesIO(data)).active
    assert ws is not None
    header = [c.value for c in ws[1]]
    values = dict(zip(header, next(ws.iter_rows(min_row=2, values_only=True)), strict=True))
    assert values["受理数"] == 0 and values["派遣数"] == 1
    r = await u["dept_b"].get(
        "/api/evaluation/export.xlsx", params={"day": DAY, "department_id": w.dep_a}
    )
    assert r.status_code == 403


def test_a_name_that_looks_like_a_formula_stays_text() -> None:
    """A department or user named ``=HYPERLINK(…)`` is exported as that text: no formula in the
    workbook, and a leading ``'`` in the CSV (spreadsheets run ``=``, ``+``, ``-``, ``@``)."""
    from datetime import UTC, datetime

    from hub.web.evaluation_views import Period
    from hub.web.exports import Column, Sheet, csv_bytes, xlsx_bytes

    evil = '=HYPERLINK("http://evil.example","点我")'
    sheet = Sheet(
        "部门",
        Period(
            datetime(2028, 3, 5, 16, tzinfo=UTC),
            datetime(2028, 3, 12, 16, tzinfo=UTC),
            "week",
            "2028年第10周",
        ),
        [Column("name", "部门", "text"), Column("n", "派遣数", "count")],
        [{"name": evil, "n": 3}, {"name": "-1+2", "n": 1}, {"name": "市政", "n": 2}],
    )
    ws = load_workbook(io.BytesIO(xlsx_bytes(sheet))).active
    assert ws is not None
    assert [ws.cell(row=r, column=1).value for r in (2, 3, 4)] == [evil, "-1+2", "市政"]
    assert [ws.cell(row=r, column=1).data_type for r in (2, 3, 4)] == ["s", "s", "s"]
    rows = list(csv.reader(io.StringIO(csv_bytes(sheet).decode("utf-8-sig"))))
    assert [r[0] for r in rows[1:]] == ["'" + evil, "'-1+2", "市政"]
    assert [r[1] for r in rows[1:]] == ["3", "1", "2"]
