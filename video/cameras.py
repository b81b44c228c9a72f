"""Cameras as values: validation of what an admin or a CSV file says about a camera, RTSP URL
checks, the URL a browser or a log may see, and CSV import parsing. Pure: no I/O, no database.

Theory of operation: every way a camera enters the hub (the API body, a CSV row) goes through
``camera_fields``, which either returns ``storage.cameras.CameraFields`` ready to locate and store
or raises ``CameraInvalid`` naming the field, with a zh-CN message an operator can act on.

RTSP URLs are ``rtsp://`` or ``rtsps://``, a host (name, IPv4 or [IPv6]), an optional port, path
and query. Credentials are accepted inside a URL as cameras' manuals write them
(``rtsp://admin:pa55@10.0.0.7:554/Streaming/Channels/101``) but never stored there:
``check_rtsp_url`` splits them off (percent-decoded) and they become the camera's ``username`` and
``password``. Everything up to the last ``@`` before the query counts as credentials, so a password
holding ``@`` or ``/`` still parses, and ``public_url`` applies the same rule to strip them from any
URL before it is shown or logged. The ingest rebuilds the URLs it dials with ``stream_urls`` (``credentialed_url``).

The CSV parser reads a header row and runs every row through ``camera_fields``, collecting one
error per bad row (``第 N 行：…``) instead of stopping at the first, so a file can be fixed in one
pass. ``read_table`` (header checks, size and row limits, blank lines, per-row errors) is
independent of cameras: the speakers' parser in ``telephony.warnings.speakers`` has the same
logic and could share it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final
from urllib.parse import quote, unquote

from hub.core.errors import ValidationFailed
from storage.cameras import Camera, CameraFields

NAME_MAX: Final = 100
URL_MAX: Final = 1000
CREDENTIAL_MAX: Final = 200
TAG_MAX: Final = 32
TAGS_MAX: Final = 16
CSV_MAX_ROWS: Final = 5000
CSV_MAX_BYTES: Final = 4 * 1024 * 1024
CSV_REQUIRED: Final = ("name", "rtsp_url", "lon", "lat")
CSV_COLUMNS: Final = (*CSV_REQUIRED, "sub_url", "speaker", "tags")

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_SCHEME = re.compile(r"(rtsps?)://", re.IGNORECASE)


class CameraInvalid(ValidationFailed):
    """A camera field is wrong; ``field`` names it (also in ``details``)."""

    code = "invalid_camera"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, details={"field": field})
        self.field = field


# -- RTSP URLs -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RtspUrl:
    """A checked RTSP URL: ``url`` without credentials, and the credentials it carried."""

    url: str
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


def _controls(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def valid_host(host: str) -> bool:
    """A host name, an IPv4 address or a bracketed IPv6 address."""
    if host.startswith("["):
        if not host.endswith("]"):
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    labels = host.removesuffix(".").split(".")
    return 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _split_credentials(rest: str) -> tuple[str | None, str]:
    """(the ``user:password`` part or None, the rest): everything up to the last ``@`` before
    the query."""
    head = rest.split("?", 1)[0]
    at = head.rfind("@")
    if at < 0:
        return None, rest
    return rest[:at], rest[at + 1 :]


def check_rtsp_url(url: str, field: str = "url") -> RtspUrl:
    """The URL without credentials (scheme and host in lower case) and the credentials it held,
    or ``CameraInvalid`` for ``field``."""
    url = url.strip()
    if not url:
        raise CameraInvalid(field, "请填写摄像头的 RTSP 地址（如 rtsp://192.0.2.10:554/stream1）")
    if len(url) > URL_MAX:
        raise CameraInvalid(field, f"RTSP 地址过长（最多 {URL_MAX} 个字符）")
    if _controls(url) or any(c.isspace() for c in url):
        raise CameraInvalid(field, "RTSP 地址不能包含空格或控制字符")
    m = _SCHEME.match(url)
    if m is None:
        raise CameraInvalid(field, "RTSP 地址须以 rtsp:// 或 rtsps:// 开头")
    scheme = m[1].lower()
    userinfo, rest = _split_credentials(url[m.end() :])
    if "#" in rest:
        raise CameraInvalid(field, "RTSP 地址不能包含 #")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if authority.startswith("["):
        close = authority.find("]")
        host, port = authority[: close + 1], authority[close + 1 :]
    else:
        host, colon, port = authority.partition(":")
        port = colon + port
    if not host or not valid_host(host):
        raise CameraInvalid(field, f"RTSP 地址的主机名或 IP 地址无效：{host[:60] or '（空）'}")
    if port:
        if not (port.startswith(":") and _PORT.fullmatch(port[1:])):
            raise CameraInvalid(field, "RTSP 地址的端口须是 1 到 65535 之间的数字")
        if not 1 <= int(port[1:]) <= 65535:
            raise CameraInvalid(field, "RTSP 地址的端口须在 1 到 65535 之间")
    username = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon and secret else None
        if password is not None and username is None:
            raise CameraInvalid(field, "RTSP 地址里有密码却没有用户名")
        for value in (username, password):
            if value is not None and (len(value) > CREDENTIAL_MAX or _controls(value)):
                raise CameraInvalid(field, "RTSP 地址里的用户名或密码过长或含控制字符")
    clean = f"{scheme}://{host.lower()}{port}{tail}"
    return RtspUrl(clean, username, password)


def public_url(url: str | None) -> str | None:
    """The URL as a browser or a log may see it: without ``user:password@`` (stored URLs never
    have them; this strips them from any URL all the same)."""
    if url is None:
        return None
    m = _SCHEME.match(url)
    if m is None:
        return "<非 RTSP 地址>"
    userinfo, rest = _split_credentials(url[m.end() :])
    return f"{m[1].lower()}://{rest}" if userinfo is not None else url


def credentialed_url(url: str, username: str | None, password: str | None) -> str:
    """The URL the ingest dials: ``url`` (without credentials) with ``username:password@``
    (percent-encoded). Never log it: log ``public_url`` of it."""
    if username is None:
        return url
    m = _SCHEME.match(url)
    if m is None:
        return url
    userinfo = quote(username, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    return f"{url[: m.end()]}{userinfo}@{url[m.end() :]}"


def stream_urls(camera: Camera) -> tuple[str, str | None]:
    """The main and sub stream URLs the ingest dials, with the camera's credentials. Never log
    them: log ``public_url`` of them."""
    sub = camera.sub_url
    return (
        credentialed_url(camera.main_url, camera.username, camera.password),
        None if sub is None else credentialed_url(sub, camera.username, camera.password),
    )


# -- cameras ---------------------------------------------------------------------------------


def check_name(name: str) -> str:
    clean = name.strip()
    if not clean:
        raise CameraInvalid("name", "请填写摄像头名称")
    if len(clean) > NAME_MAX:
        raise CameraInvalid("name", f"名称过长（最多 {NAME_MAX} 个字符）")
    if _controls(clean):
        raise CameraInvalid("name", "名称不能包含控制字符")
    return clean


def check_location(lon: float | None, lat: float | None) -> tuple[float | None, float | None]:
    """Both or neither; finite, on the globe, and not (0, 0) (a missing value, not a camera)."""
    if (lon is None) != (lat is None):
        raise CameraInvalid("lon" if lon is None else "lat", "经度和纬度须同时填写或同时留空")
    if lon is None or lat is None:
        return None, None
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise CameraInvalid("lon", "经度须在 -180 到 180 之间")
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise CameraInvalid("lat", "纬度须在 -90 到 90 之间")
    if lon == 0 and lat == 0:
        raise CameraInvalid("lon", "经纬度 (0, 0) 不是有效位置：请填写摄像头的实际位置")
    return float(lon), float(lat)


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Trimmed, distinct, in the order given; each 1..32 characters without ``|``."""
    out: list[str] = []
    for raw in tags:
        tag = raw.strip()
        if not tag:
            continue
        if len(tag) > TAG_MAX or "|" in tag or _controls(tag):
            raise CameraInvalid(
                "tags", f"标签无效：{tag[:40]}（最多 {TAG_MAX} 个字符，不能包含 | 或控制字符）"
            )
        if tag not in out:
            out.append(tag)
    if len(out) > TAGS_MAX:
        raise CameraInvalid("tags", f"一个摄像头最多 {TAGS_MAX} 个标签")
    return tuple(out)


def _credential(field: str, value: str | None, label: str) -> str | None:
    if not value:
        return None
    if len(value) > CREDENTIAL_MAX:
        raise CameraInvalid(field, f"{label}过长（最多 {CREDENTIAL_MAX} 个字符）")
    if _controls(value):
        raise CameraInvalid(field, f"{label}不能包含控制字符")
    return value


def camera_fields(
    *,
    name: str,
    url: str,
    sub_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    lon: float | None = None,
    lat: float | None = None,
    speaker_id: int | None = None,
    speaker_auto: bool = True,
    tags: Iterable[str] = (),
    pinned: bool = False,
    active: bool = True,
) -> CameraFields:
    """A camera ready to locate and store, or ``CameraInvalid`` for its first wrong field.

    Credentials come from ``username``/``password`` or from inside the URLs; the main and sub
    stream share one pair, so URLs carrying different ones, or differing from the fields given,
    are refused. The grid is left for ``storage.cameras.locate``."""
    clean_name = check_name(name)
    main = check_rtsp_url(url, "url")
    sub = None if sub_url is None or not sub_url.strip() else check_rtsp_url(sub_url, "sub_url")
    user = _credential("username", username.strip() if username else None, "用户名")
    secret = _credential("password", password, "密码")
    for carried, field in ((main, "url"), (sub, "sub_url")):
        if carried is None or carried.username is None:
            continue
        if user is not None and (user, secret) != (carried.username, carried.password):
            raise CameraInvalid(
                field, "地址里的用户名和密码与填写的不一致：主码流和子码流共用一组用户名和密码"
            )
        user, secret = carried.username, carried.password
    if secret is not None and user is None:
        raise CameraInvalid("username", "填写了密码就须填写用户名")
    clean_lon, clean_lat = check_location(lon, lat)
    return CameraFields(
        name=clean_name,
        main_url=main.url,
        sub_url=None if sub is None else sub.url,
        username=user,
        password=secret,
        lon=clean_lon,
        lat=clean_lat,
        speaker_id=None if speaker_auto else speaker_id,
        speaker_auto=speaker_auto,
        tags=check_tags(tags),
        pinned=pinned,
        active=active,
    )


# -- CSV -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1-based, the header is line 1
    message: str

    def __str__(self) -> str:
        return f"第 {self.line} 行：{self.message}"


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    rows: tuple[tuple[int, dict[str, str]], ...]  # (line, column -> value), blank lines skipped
    errors: tuple[RowError, ...]
    header: tuple[str, ...] = ()


def read_table(
    data: bytes | str,
    *,
    columns: Sequence[str],
    required: Sequence[str],
    noun: str,
    max_rows: int = CSV_MAX_ROWS,
    max_bytes: int = CSV_MAX_BYTES,
) -> Table:
    """A CSV file (UTF-8, BOM allowed) with a header row naming ``required`` among ``columns``,
    as rows by line number (as an editor shows them), with the errors of the file and of rows
    that cannot be read (too many values, past ``max_rows`` of ``noun``)."""

    def fail(message: str) -> Table:
        return Table((), (RowError(1, message),))

    if isinstance(data, bytes):
        if len(data) > max_bytes:
            return fail(f"文件过大（最多 {max_bytes // 1024 // 1024} MB）")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return fail("文件不是 UTF-8 编码（请在表格软件中另存为 CSV UTF-8）")
    else:
        text = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return fail("文件是空的")
    except csv.Error as exc:
        return fail(f"CSV 格式错误：{exc}")
    unknown = [h for h in header if h not in columns]
    missing = [h for h in required if h not in header]
    if unknown or missing or len(set(header)) != len(header):
        parts = []
        if missing:
            parts.append("缺少列：" + "、".join(missing))
        if unknown:
            parts.append("未知列：" + "、".join(u[:30] for u in unknown[:10]))
        if len(set(header)) != len(header):
            parts.append("列名重复")
        return fail("；".join(parts) + f"（可用的列：{', '.join(columns)}）")
    rows: list[tuple[int, dict[str, str]]] = []
    errors: list[RowError] = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(reader.line_num, f"CSV 格式错误：{exc}"))
            break
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(rows) + len(errors) >= max_rows:
            errors.append(RowError(line, f"行数过多：一次最多导入 {max_rows} 个{noun}"))
            break
        if len(values) > len(header):
            errors.append(RowError(line, f"列数（{len(values)}）多于表头（{len(header)}）"))
            continue
        rows.append((line, dict(zip(header, values, strict=False))))
    return Table(tuple(rows), tuple(errors), tuple(header))


def parse_number(field: str, label: str, value: str) -> float | None:
    """A CSV cell as a number (None when empty), or ``CameraInvalid``."""
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise CameraInvalid(field, f"{label}不是数字：{value[:40]}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class CsvCamera:
    line: int
    fields: CameraFields


@dataclasses.dataclass(frozen=True, slots=True)
class CsvImport:
    rows: tuple[CsvCamera, ...]
    errors: tuple[RowError, ...]


def parse_cameras_csv(data: bytes | str, *, speaker_of: Callable[[str], int | None]) -> CsvImport:
    """Parse a camera CSV (columns ``CSV_COLUMNS``, at least ``CSV_REQUIRED``; tags separated by
    ``|``). ``speaker_of`` maps the speaker column (a speaker's name) to its id, None when unknown;
    an empty speaker cell means the nearest speaker. Returns the good rows and one error per bad
    row; a name twice in the file is an error on its second line."""
    table = read_table(data, columns=CSV_COLUMNS, required=CSV_REQUIRED, noun="摄像头")
    rows: list[CsvCamera] = []
    errors = list(table.errors)
    seen: dict[str, int] = {}
    for line, row in table.rows:
        try:
            fields = _row(row, speaker_of)
        except CameraInvalid as exc:
            errors.append(RowError(line, f"{exc.field}：{exc.message}"))
            continue
        if fields.name in seen:
            errors.append(RowError(line, f"名称“{fields.name}”与第 {seen[fields.name]} 行重复"))
            continue
        seen[fields.name] = line
        rows.append(CsvCamera(line, fields))
    errors.sort(key=lambda e: e.line)
    return CsvImport(tuple(rows), tuple(errors))


def _row(row: dict[str, str], speaker_of: Callable[[str], int | None]) -> CameraFields:
    lon = parse_number("lon", "经度", row.get("lon", ""))
    lat = parse_number("lat", "纬度", row.get("lat", ""))
    if lon is None or lat is None:
        raise CameraInvalid("lon" if lon is None else "lat", "请填写摄像头的经度和纬度")
    speaker_name = row.get("speaker", "").strip()
    speaker_id = None
    if speaker_name:
        speaker_id = speaker_of(speaker_name)
        if speaker_id is None:
            raise CameraInvalid("speaker", f"喇叭不存在：{speaker_name[:40]}")
    return camera_fields(
        name=row.get("name", ""),
        url=row.get("rtsp_url", ""),
        sub_url=row.get("sub_url"),
        lon=lon,
        lat=lat,
        speaker_id=speaker_id,
        speaker_auto=not speaker_name,
        tags=row.get("tags", "").split("|"),
    )


def error_lines(errors: Sequence[RowError]) -> list[str]:
    """The errors as lines to print (``第 N 行：…``)."""
    return [str(e) for e in errors]
