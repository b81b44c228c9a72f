"""Cameras as values (``video.cameras``): RTSP URL checks, credentials moved out of URLs and never
shown, locations, tags, and CSV parsing with per-row zh-CN errors. Pure: no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.cameras import Camera
from video.cameras import (
    CSV_MAX_ROWS,
    CameraInvalid,
    camera_fields,
    check_location,
    check_rtsp_url,
    check_tags,
    credentialed_url,
    error_lines,
    parse_cameras_csv,
    public_url,
    stream_urls,
)

SECRET = "p@ss/w:rd"


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("rtsp://127.0.0.1/cam01", "rtsp://127.0.0.1/cam01"),
        ("RTSP://Cam-7.Example.org:8554", "rtsp://cam-7.example.org:8554"),
        ("rtsps://[::1]:322/live?channel=1&subtype=0", "rtsps://[::1]:322/live?channel=1&subtype=0"),
        ("  rtsp://10.0.0.7:554/Streaming/Channels/101  ", "rtsp://10.0.0.7:554/Streaming/Channels/101"),
        ("rtsp://host?x=a@b", "rtsp://host?x=a@b"),
    ],
)  # fmt: skip
def test_good_urls(url: str, clean: str) -> None:
    checked = check_rtsp_url(url)
    assert checked.url == clean and checked.username is None and checked.password is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "请填写"),
        ("http://127.0.0.1/x", "rtsp://"),
        ("rtsp:/127.0.0.1/x", "rtsp://"),
        ("rtsp://", "主机"),
        ("rtsp:///path", "主机"),
        ("rtsp://999.1.1.1/x", "主机"),
        ("rtsp://-bad-.example/x", "主机"),
        ("rtsp://[::g]/x", "主机"),
        ("rtsp://host:0/x", "端口"),
        ("rtsp://host:65536/x", "端口"),
        ("rtsp://host:12ab/x", "端口"),
        ("rtsp://host/a b", "空格"),
        ("rtsp://host/a\x00", "控制字符"),
        ("rtsp://host/x#frag", "#"),
        ("rtsp://:pw@host/x", "用户名"),
        ("rtsp://host/" + "a" * 1000, "过长"),
    ],
)
def test_bad_urls(url: str, says: str) -> None:
    with pytest.raises(CameraInvalid) as err:
        check_rtsp_url(url, "sub_url")
    assert says in err.value.message and err.value.field == "sub_url"
    assert err.value.details == {"field": "sub_url"}


def test_credentials_move_out_of_the_url_and_back_for_the_ingest() -> None:
    # A password with @ and / as a camera's manual would write it, and percent-encoded.
    raw = check_rtsp_url(f"rtsp://admin:{SECRET}@10.0.0.7:554/ch1")
    enc = check_rtsp_url("rtsp://admin:p%40ss%2Fw%3Ard@10.0.0.7:554/ch1")
    for checked in (raw, enc):
        assert checked.url == "rtsp://10.0.0.7:554/ch1"
        assert (checked.username, checked.password) == ("admin", SECRET)
        assert SECRET not in repr(checked)
    user_only = check_rtsp_url("rtsp://viewer@10.0.0.7/ch1")
    assert (user_only.url, user_only.username, user_only.password) == (
        "rtsp://10.0.0.7/ch1",
        "viewer",
        None,
    )
    dial = credentialed_url(raw.url, "admin", SECRET)
    assert dial == "rtsp://admin:p%40ss%2Fw%3Ard@10.0.0.7:554/ch1"
    assert check_rtsp_url(dial) == raw
    assert credentialed_url(raw.url, None, None) == raw.url
    assert credentialed_url(raw.url, "viewer", None) == "rtsp://viewer@10.0.0.7:554/ch1"
    # public_url strips them from any URL, for browsers and logs.
    assert public_url(f"rtsp://admin:{SECRET}@10.0.0.7:554/ch1") == "rtsp://10.0.0.7:554/ch1"
    assert public_url(dial) == "rtsp://10.0.0.7:554/ch1"
    assert public_url("rtsp://10.0.0.7/ch1?a=b@c") == "rtsp://10.0.0.7/ch1?a=b@c"
    assert public_url("RTSPS://u:p@h/x") == "rtsps://h/x"
    assert public_url(None) is None
    assert "secret" not in (public_url("http://u:secret@h/x") or "")


def test_camera_fields() -> None:
    f = camera_fields(
        name="  东门路口 ",
        url=f"rtsp://admin:{SECRET}@127.0.0.1:8554/cam01",
        sub_url=f"rtsp://admin:{SECRET}@127.0.0.1:8554/cam01-sub",
        lon=103.8,
        lat=25.5,
        tags=["路口", " 夜间 ", "路口", ""],
    )
    assert f.name == "东门路口" and f.main_url == "rtsp://127.0.0.1:8554/cam01"
    assert f.sub_url == "rtsp://127.0.0.1:8554/cam01-sub"
    assert (f.username, f.password) == ("admin", SECRET) and SECRET not in repr(f)
    assert f.tags == ("路口", "夜间") and f.speaker_auto and f.speaker_id is None
    # Explicit credentials; a URL carrying the same ones agrees, different ones are refused.
    g = camera_fields(name="a", url="rtsp://h/x", username="u", password="p")
    assert (g.username, g.password) == ("u", "p")
    assert camera_fields(name="a", url="rtsp://u:p@h/x", username="u", password="p").username
    with pytest.raises(CameraInvalid) as err:
        camera_fields(name="a", url="rtsp://u:p@h/x", sub_url="rtsp://v:q@h/y")
    assert err.value.field == "sub_url"
    with pytest.raises(CameraInvalid) as err:
        camera_fields(name="a", url="rtsp://h/x", password="p")
    assert err.value.field == "username"
    with pytest.raises(CameraInvalid) as err:
        camera_fields(name=" ", url="rtsp://h/x")
    assert err.value.field == "name"
    with pytest.raises(CameraInvalid):
        camera_fields(name="a\x07", url="rtsp://h/x")
    # An explicit speaker (or none) is kept; automatic ignores the id given.
    assert camera_fields(name="a", url="rtsp://h", speaker_id=3, speaker_auto=False).speaker_id == 3
    assert camera_fields(name="a", url="rtsp://h", speaker_id=3).speaker_id is None
    assert camera_fields(name="a", url="rtsp://h", sub_url="  ").sub_url is None


def test_locations_and_tags() -> None:
    assert check_location(None, None) == (None, None)
    assert check_location(103.8, 25.5) == (103.8, 25.5)
    for lon, lat, field in [
        (103.8, None, "lat"),
        (None, 25.5, "lon"),
        (181.0, 25.0, "lon"),
        (103.0, -91.0, "lat"),
        (float("nan"), 25.0, "lon"),
        (0.0, 0.0, "lon"),
    ]:
        with pytest.raises(CameraInvalid) as err:
            check_location(lon, lat)
        assert err.value.field == field
    assert check_tags(["a", "b", "a"]) == ("a", "b")
    for tags in (["x" * 33], ["a|b"], [str(i) for i in range(17)]):
        with pytest.raises(CameraInvalid) as err:
            check_tags(tags)
        assert err.value.field == "tags"


SPEAKERS = {"东门喇叭": 7}


def test_csv_good_rows() -> None:
    text = (
        "\ufeffname,rtsp_url,lon,lat,sub_url,speaker,tags\n"
        f"cam01,rtsp://admin:{SECRET}@127.0.0.1:8554/cam01,103.80,25.50,"
        "rtsp://127.0.0.1:8554/cam01s,东门喇叭,路口|夜间\n"
        "\n"
        'cam02,rtsp://127.0.0.1:8554/cam02,"103.81",25.51,,,\n'
    )
    parsed = parse_cameras_csv(text.encode(), speaker_of=SPEAKERS.get)
    assert parsed.errors == ()
    (a, b) = parsed.rows
    assert (a.line, b.line) == (2, 4)
    assert a.fields.main_url == "rtsp://127.0.0.1:8554/cam01" and a.fields.username == "admin"
    assert a.fields.password == SECRET and a.fields.tags == ("路口", "夜间")
    assert (a.fields.speaker_id, a.fields.speaker_auto) == (7, False)
    assert (b.fields.speaker_id, b.fields.speaker_auto) == (None, True)
    assert b.fields.sub_url is None and b.fields.tags == () and b.fields.lon == 103.81
    # Only the required columns, in another order.
    only = parse_cameras_csv(
        "lat,lon,rtsp_url,name\n25.5,103.8,rtsp://h/x,c\n", speaker_of=dict().get
    )
    assert only.errors == () and only.rows[0].fields.name == "c"


def test_csv_errors_per_row() -> None:
    text = (
        "name,rtsp_url,lon,lat,speaker\n"
        "ok,rtsp://h/1,103.8,25.5,\n"
        "bad-url,http://h/2,103.8,25.5,\n"
        "no-lat,rtsp://h/3,103.8,,\n"
        "nan,rtsp://h/4,east,25.5,\n"
        "ok,rtsp://h/5,103.8,25.5,\n"
        "who,rtsp://h/6,103.8,25.5,无此喇叭\n"
        "wide,rtsp://h/7,103.8,25.5,,extra\n"
    )
    parsed = parse_cameras_csv(text, speaker_of=SPEAKERS.get)
    assert [r.fields.name for r in parsed.rows] == ["ok"]
    lines = error_lines(parsed.errors)
    assert [line[:6] for line in lines] == ["第 3 行：", "第 4 行：", "第 5 行：", "第 6 行：",
                                            "第 7 行：", "第 8 行："]  # fmt: skip
    assert lines[0].startswith("第 3 行：url：") and "rtsp://" in lines[0]
    assert lines[1].startswith("第 4 行：lat：")
    assert lines[2].startswith("第 5 行：lon：经度不是数字")
    assert "与第 2 行重复" in lines[3]
    assert lines[4].startswith("第 7 行：speaker：喇叭不存在")
    assert "列数" in lines[5]
    # A secret in a bad row's URL is not repeated in its error.
    bad = parse_cameras_csv(
        f"name,rtsp_url,lon,lat\nx,rtsp://u:{SECRET}@bad_host!/x,1,1\n", speaker_of=dict().get
    )
    assert len(bad.errors) == 1 and SECRET not in str(bad.errors[0])


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "空"),
        (b"name,rtsp_url\n", "缺少列：lon、lat"),
        (b"name,rtsp_url,lon,lat,colour\n", "未知列：colour"),
        (b"name,rtsp_url,lon,lat,name\n", "列名重复"),
        ("name,rtsp_url,lon,lat\n摄像头,rtsp://h,1,1\n".encode("gbk"), "UTF-8"),
        (b"x" * (4 * 1024 * 1024 + 1), "文件过大"),
    ],
)
def test_csv_file_errors(data: bytes, says: str) -> None:
    parsed = parse_cameras_csv(data, speaker_of=dict().get)
    assert parsed.rows == () and len(parsed.errors) == 1
    assert parsed.errors[0].line == 1 and says in parsed.errors[0].message


def test_csv_row_limit() -> None:
    rows = "".join(f"c{i},rtsp://h/{i},103.8,25.5\n" for i in range(CSV_MAX_ROWS + 1))
    parsed = parse_cameras_csv("name,rtsp_url,lon,lat\n" + rows, speaker_of=dict().get)
    assert len(parsed.rows) == CSV_MAX_ROWS
    assert [str(e)[:20] for e in parsed.errors] == [
        f"第 {CSV_MAX_ROWS + 2} 行：行数过多：一次最多导入"[:20]
    ]


def test_stream_urls_put_the_credentials_back_for_the_ingest() -> None:
    now = datetime.now(UTC)
    c = Camera(
        id=1, name="c", main_url="rtsp://127.0.0.1:8554/cam01",
        sub_url="rtsp://127.0.0.1:8554/cam01s", username="admin", password=SECRET,
        lon=None, lat=None, grid_id=None, speaker_id=None, speaker_auto=True, tags=(),
        pinned=False, active=True, created_at=now, updated_at=now,
    )  # fmt: skip
    main, sub = stream_urls(c)
    assert check_rtsp_url(main).password == SECRET and check_rtsp_url(sub or "").username == "admin"
    assert public_url(main) == c.main_url and public_url(sub) == c.sub_url
    assert SECRET not in repr(c)
