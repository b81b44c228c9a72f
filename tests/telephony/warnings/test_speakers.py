"""Speaker values (``telephony.warnings.speakers``): SIP URI checks, the URI browsers see, field
validation and CSV import parsing with per-row zh-CN errors. Pure: no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.warnings.speakers import (
    CSV_MAX_ROWS,
    SpeakerInvalid,
    check_uri,
    parse_speakers_csv,
    public_uri,
    speaker_fields,
)

GRIDS = {"330102001": 7, "7": 7}


def grid_of(code: str) -> int | None:
    return GRIDS.get(code)


class TestSipUri:
    @pytest.mark.parametrize(
        "uri",
        [
            "sip:101@192.0.2.10",
            "sip:192.0.2.10",
            "sip:speaker01@speakers.example.org:5062",
            "sips:spk@[2001:db8::1]:5061",
            "sip:101@127.0.0.1;transport=udp",
            "SIP:101@127.0.0.1",
            "sip:a.b-c_d!~*'()&=+$,%20@host-1.example",
        ],
    )
    def test_accepted(self, uri: str) -> None:
        assert check_uri(uri).lower() == uri.lower()
        assert check_uri(f"  {uri} ").startswith(("sip:", "sips:"))

    @pytest.mark.parametrize(
        ("uri", "fragment"),
        [
            ("", "请填写"),
            ("http://192.0.2.10", "格式不正确"),
            ("tel:+861012345678", "格式不正确"),
            ("sip:101@", "格式不正确"),
            ("sip:101@192.0.2.10:0", "端口"),
            ("sip:101@192.0.2.10:70000", "端口"),
            ("sip:101@999.1.1.1", "主机名"),
            ("sip:101@[zz::1]", "格式不正确"),
            ("sip:101@-bad-.example", "主机名"),
            ("sip:101@127.0.0.1;transport=sctp", "transport"),
            ("sip:101@127.0.0.1?Subject=x", "头字段"),
            ("sip:101:secret@127.0.0.1", "密码"),
            ("sip:" + "a" * 400 + "@h", "过长"),
            ("sip:1 01@127.0.0.1", "格式不正确"),
        ],
    )
    def test_refused_with_a_reason(self, uri: str, fragment: str) -> None:
        with pytest.raises(SpeakerInvalid) as info:
            check_uri(uri)
        assert info.value.field == "uri"
        assert fragment in info.value.message
        assert "secret" not in info.value.message

    def test_public_uri_never_carries_a_password_or_headers(self) -> None:
        assert public_uri("sip:101:secret@127.0.0.1:5070;transport=udp?X=1") == (
            "sip:101@127.0.0.1:5070;transport=udp"
        )
        assert public_uri("sip:127.0.0.1") == "sip:127.0.0.1"
        assert public_uri("not a uri") == ""

    @given(st.text(max_size=80))
    def test_any_text_is_accepted_or_refused_cleanly(self, text: str) -> None:
        try:
            uri = check_uri(text)
        except SpeakerInvalid:
            return
        assert public_uri(uri) == uri


class TestSpeakerFields:
    def test_defaults_and_trimming(self) -> None:
        f = speaker_fields(name="  东门 ", uri="sip:1@127.0.0.1", camera_codes=["C1", " C1", ""])
        assert f.name == "东门" and f.camera_codes == ("C1",) and f.auto_answer == "call-info"
        assert f.username is None and f.password is None and f.lon is None

    def test_credentials(self) -> None:
        f = speaker_fields(name="x", uri="sip:1@127.0.0.1", username="u", password=" p w ")
        assert f.password == " p w "  # a password is kept as given
        assert "p w" not in repr(f)
        with pytest.raises(SpeakerInvalid) as info:
            speaker_fields(name="x", uri="sip:1@127.0.0.1", password="p")
        assert info.value.field == "username"

    @pytest.mark.parametrize(
        ("kw", "field"),
        [
            ({"name": ""}, "name"),
            ({"name": "a\x00b"}, "name"),
            ({"name": "x" * 101}, "name"),
            ({"lon": 120.0}, "lat"),
            ({"lat": 30.0}, "lon"),
            ({"lon": 200.0, "lat": 30.0}, "lon"),
            ({"lon": 120.0, "lat": float("nan")}, "lat"),
            ({"auto_answer": "yes"}, "auto_answer"),
            ({"camera_codes": ["bad code"]}, "cameras"),
            ({"camera_codes": [f"C{i}" for i in range(33)]}, "cameras"),
            ({"username": "u", "password": "x" * 201}, "password"),
        ],
    )
    def test_refusals_name_the_field(self, kw: dict[str, object], field: str) -> None:
        args: dict[str, object] = {"name": "x", "uri": "sip:1@127.0.0.1", **kw}
        with pytest.raises(SpeakerInvalid) as info:
            speaker_fields(**args)  # type: ignore[arg-type]
        assert info.value.field == field
        assert info.value.details == {"field": field}


HEADER = "name,uri,username,password,lon,lat,grid,cameras,groups,auto_answer\n"


class TestCsv:
    def test_good_rows(self) -> None:
        data = (
            "\ufeff"
            + HEADER
            + "东门1号,sip:101@127.0.0.1,u1,pw1,120.1,30.2,330102001,C1|C2,中山路|市场,"
            "alert-info\n"
            "西门,sip:102@127.0.0.1,,,,,,,,\n"
            "\n"
            '"南门,带逗号",sip:103@127.0.0.1,,,,,7,,,NONE\n'
        ).encode()
        result = parse_speakers_csv(data, grid_of=grid_of)
        assert result.errors == ()
        a, b, c = result.rows
        assert (a.line, a.fields.name, a.fields.username, a.fields.password) == (
            2,
            "东门1号",
            "u1",
            "pw1",
        )
        assert (a.fields.lon, a.fields.lat, a.fields.grid_id) == (120.1, 30.2, 7)
        assert a.fields.camera_codes == ("C1", "C2") and a.groups == ("中山路", "市场")
        assert a.fields.auto_answer == "alert-info"
        assert b.fields.auto_answer == "call-info" and b.fields.username is None
        assert b.groups == ()
        assert (c.line, c.fields.name, c.fields.auto_answer) == (5, "南门,带逗号", "none")

    def test_minimal_header_keeps_memberships(self) -> None:
        result = parse_speakers_csv("uri,name\nsip:1@127.0.0.1,a\n", grid_of=grid_of)
        assert result.errors == () and result.rows[0].groups is None

    def test_each_bad_row_gets_its_own_error(self) -> None:
        data = HEADER + (
            "a,sip:1@127.0.0.1,,,,,,,,\n"
            "b,http://x,,,,,,,,\n"
            "c,sip:3@127.0.0.1,,,abc,30,,,,\n"
            "d,sip:4@127.0.0.1,,,120,,,,,\n"
            "e,sip:5@127.0.0.1,,,,,999,,,\n"
            "a,sip:6@127.0.0.1,,,,,,,,\n"
            "f,sip:7@127.0.0.1,,secret,,,,,,\n"
            "g,sip:8@127.0.0.1,,,,,,,,loud\n"
            "h,sip:9@127.0.0.1,,,,,,,,,extra\n"
            "i,sip:10:pw@127.0.0.1,,,,,,,,\n"
        )
        result = parse_speakers_csv(data, grid_of=grid_of)
        assert [r.fields.name for r in result.rows] == ["a"]
        lines = [str(e) for e in result.errors]
        assert [e.line for e in result.errors] == [3, 4, 5, 6, 7, 8, 9, 10, 11]
        assert lines[0].startswith("第 3 行：uri：") and "格式不正确" in lines[0]
        assert "经度不是数字" in lines[1]
        assert "经度和纬度须同时填写" in lines[2]
        assert "网格不存在：999" in lines[3]
        assert "与第 2 行重复" in lines[4]
        assert "认证用户名" in lines[5] and "secret" not in lines[5]
        assert "自动应答" in lines[6]
        assert "列数" in lines[7]
        assert "密码" in lines[8] and "pw" not in lines[8].replace("密码", "")

    @pytest.mark.parametrize(
        ("data", "fragment"),
        [
            (b"", "空的"),
            (b"name\nx\n", "缺少列：uri"),
            (b"name,uri,colour\n", "未知列：colour"),
            (b"name,uri,name\n", "列名重复"),
            ("name,uri\n东门,sip:1@127.0.0.1\n".encode("gbk"), "UTF-8"),
        ],
    )
    def test_file_level_errors(self, data: bytes, fragment: str) -> None:
        result = parse_speakers_csv(data, grid_of=grid_of)
        assert result.rows == ()
        assert len(result.errors) == 1 and result.errors[0].line == 1
        assert fragment in result.errors[0].message

    def test_row_limit(self) -> None:
        rows = "".join(f"s{i},sip:{i}@127.0.0.1\n" for i in range(CSV_MAX_ROWS + 5))
        result = parse_speakers_csv("name,uri\n" + rows, grid_of=grid_of)
        assert len(result.rows) == CSV_MAX_ROWS
        assert len(result.errors) == 1 and "行数过多" in result.errors[0].message
