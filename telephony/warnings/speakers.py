"""Speakers as values: validation of what an admin or a CSV file says about a loudspeaker, SIP URI
checks, the URI a browser may see, and CSV import parsing. Pure: no I/O, no database.

Theory of operation: every way a speaker enters the hub (the API body, a CSV row) goes through
``speaker_fields``, which either returns ``storage.voice.SpeakerFields`` ready to store or raises
``SpeakerInvalid`` naming the field, with a zh-CN message an operator can act on. The CSV parser
runs every row through it and collects per-row errors (``第 N 行：…``) instead of stopping at the
first, so a file can be fixed in one pass. Credentials (``username``, ``password``) never belong
in the URI: a URI with ``user:password@`` is refused, and ``public_uri`` strips anything after the
user part anyway, so what a browser sees is the address and nothing secret.
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

from hub.core.errors import ValidationFailed
from storage.voice import SpeakerFields

AUTO_ANSWER: Final = ("call-info", "alert-info", "none")
NAME_MAX: Final = 100
URI_MAX: Final = 400
CREDENTIAL_MAX: Final = 200
CAMERAS_MAX: Final = 32
GROUPS_MAX: Final = 32
CSV_MAX_ROWS: Final = 5000
CSV_MAX_BYTES: Final = 4 * 1024 * 1024
CSV_COLUMNS: Final = (
    "name",
    "uri",
    "username",
    "password",
    "lon",
    "lat",
    "grid",
    "cameras",
    "groups",
    "auto_answer",
)

_CAMERA = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_URI = re.compile(
    r"(?P<scheme>sips?):"
    r"(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,%]+)(?::(?P<password>[^@]*))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>(?:;[A-Za-z0-9\-_.!~*'%]+(?:=[A-Za-z0-9\-_.!~*'%\[\]:]+)?)*)"
    r"(?P<headers>\?.*)?",
    re.IGNORECASE | re.DOTALL,
)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TRANSPORTS: Final = frozenset({"udp", "tcp", "tls"})


class SpeakerInvalid(ValidationFailed):
    """A speaker field is wrong; ``field`` names it (also in ``details``)."""

    code = "invalid_speaker"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, details={"field": field})
        self.field = field


# -- SIP URIs --------------------------------------------------------------------------------


def _valid_host(host: str) -> bool:
    if host.startswith("["):
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
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def check_uri(uri: str) -> str:
    """The speaker's SIP URI, trimmed, or ``SpeakerInvalid``: ``sip:`` or ``sips:``, an optional
    user part, a host name, IPv4 or [IPv6] address, an optional port, ``;param`` parameters
    (``transport`` udp/tcp/tls); no password and no ``?headers``."""
    uri = uri.strip()
    if not uri:
        raise SpeakerInvalid("uri", "请填写喇叭的 SIP 地址（如 sip:speaker01@192.0.2.10）")
    if len(uri) > URI_MAX:
        raise SpeakerInvalid("uri", f"SIP 地址过长（最多 {URI_MAX} 个字符）")
    m = _URI.fullmatch(uri)
    if m is None:
        raise SpeakerInvalid(
            "uri", "SIP 地址格式不正确，应为 sip:用户@主机[:端口]，如 sip:101@192.0.2.10"
        )
    if m["password"] is not None:
        raise SpeakerInvalid(
            "uri", "SIP 地址里不能包含密码：请把用户名和密码分别填写在认证用户名和密码中"
        )
    if m["headers"] is not None:
        raise SpeakerInvalid("uri", "SIP 地址不能包含 ? 之后的头字段")
    if not _valid_host(m["host"]):
        raise SpeakerInvalid("uri", f"SIP 地址的主机名或 IP 地址无效：{m['host'][:60]}")
    if m["port"] is not None and not 1 <= int(m["port"]) <= 65535:
        raise SpeakerInvalid("uri", "SIP 地址的端口须在 1 到 65535 之间")
    for param in filter(None, m["params"].split(";")):
        key, _, value = param.partition("=")
        if key.lower() == "transport" and value.lower() not in _TRANSPORTS:
            raise SpeakerInvalid("uri", "SIP 地址的 transport 只能是 udp、tcp 或 tls")
    return m["scheme"].lower() + uri[len(m["scheme"]) :]


def public_uri(uri: str) -> str:
    """The URI as a browser may see it: scheme, user, host, port and parameters; never a password
    in the user part nor ``?headers`` (refused on input, stripped here all the same)."""
    m = _URI.fullmatch(uri)
    if m is None:
        return ""
    user = f"{m['user']}@" if m["user"] else ""
    port = f":{m['port']}" if m["port"] else ""
    return f"{m['scheme'].lower()}:{user}{m['host']}{port}{m['params']}"


# -- speakers --------------------------------------------------------------------------------


def _text(field: str, value: str | None, limit: int, label: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise SpeakerInvalid(field, f"{label}过长（最多 {limit} 个字符）")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SpeakerInvalid(field, f"{label}不能包含控制字符")
    return value


def check_location(lon: float | None, lat: float | None) -> tuple[float | None, float | None]:
    if (lon is None) != (lat is None):
        raise SpeakerInvalid("lon" if lon is None else "lat", "经度和纬度须同时填写或同时留空")
    if lon is None or lat is None:
        return None, None
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise SpeakerInvalid("lon", "经度须在 -180 到 180 之间")
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise SpeakerInvalid("lat", "纬度须在 -90 到 90 之间")
    return lon, lat


def check_cameras(codes: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for raw in codes:
        code = raw.strip()
        if not code:
            continue
        if not _CAMERA.fullmatch(code):
            raise SpeakerInvalid(
                "cameras", f"摄像机编码无效：{code[:40]}（字母、数字和 _ . : -，最多 64 个字符）"
            )
        if code not in out:
            out.append(code)
    if len(out) > CAMERAS_MAX:
        raise SpeakerInvalid("cameras", f"一个喇叭最多关联 {CAMERAS_MAX} 个摄像机")
    return tuple(out)


def speaker_fields(
    *,
    name: str,
    uri: str,
    username: str | None = None,
    password: str | None = None,
    lon: float | None = None,
    lat: float | None = None,
    grid_id: int | None = None,
    camera_codes: Iterable[str] = (),
    auto_answer: str = "call-info",
    active: bool = True,
) -> SpeakerFields:
    """A speaker ready to store, or ``SpeakerInvalid`` for its first wrong field."""
    clean_name = _text("name", name, NAME_MAX, "名称")
    if clean_name is None:
        raise SpeakerInvalid("name", "请填写喇叭名称")
    clean_uri = check_uri(uri)
    user = _text("username", username, CREDENTIAL_MAX, "认证用户名")
    # A password is taken as given (spaces may be part of it); empty means none.
    secret = password if password else None
    if secret is not None and len(secret) > CREDENTIAL_MAX:
        raise SpeakerInvalid("password", f"密码过长（最多 {CREDENTIAL_MAX} 个字符）")
    if secret is not None and any(ord(c) < 32 or ord(c) == 127 for c in secret):
        raise SpeakerInvalid("password", "密码不能包含控制字符")
    if secret is not None and user is None:
        raise SpeakerInvalid("username", "填写了密码就须填写认证用户名")
    if auto_answer not in AUTO_ANSWER:
        raise SpeakerInvalid("auto_answer", "自动应答方式只能是 call-info、alert-info 或 none")
    lon, lat = check_location(lon, lat)
    return SpeakerFields(
        name=clean_name,
        uri=clean_uri,
        username=user,
        password=secret,
        lon=lon,
        lat=lat,
        grid_id=grid_id,
        camera_codes=check_cameras(camera_codes),
        auto_answer=auto_answer,
        active=active,
    )


# -- CSV import ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CsvSpeaker:
    line: int
    fields: SpeakerFields
    groups: tuple[str, ...] | None  # None: the file has no groups column (memberships kept)


@dataclasses.dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1-based, the header is line 1
    message: str

    def __str__(self) -> str:
        return f"第 {self.line} 行：{self.message}"


@dataclasses.dataclass(frozen=True, slots=True)
class CsvImport:
    rows: tuple[CsvSpeaker, ...]
    errors: tuple[RowError, ...]


def _number(field: str, label: str, value: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise SpeakerInvalid(field, f"{label}不是数字：{value[:40]}") from None
    return number


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split("|") if part.strip()]


def _groups(value: str) -> tuple[str, ...]:
    names = list(dict.fromkeys(_split(value)))
    for n in names:
        if len(n) > NAME_MAX:
            raise SpeakerInvalid("groups", f"分组名称过长（最多 {NAME_MAX} 个字符）")
    if len(names) > GROUPS_MAX:
        raise SpeakerInvalid("groups", f"一个喇叭最多属于 {GROUPS_MAX} 个分组")
    return tuple(names)


def parse_speakers_csv(data: bytes | str, *, grid_of: Callable[[str], int | None]) -> CsvImport:
    """Parse a speaker CSV (UTF-8, BOM allowed; a header row naming at least ``name`` and ``uri``
    among ``CSV_COLUMNS``). ``grid_of`` maps the grid column (a grid code or id) to a grid id, None
    when unknown. Returns the good rows and one error per bad row (line numbers as in an editor)."""
    if isinstance(data, bytes):
        if len(data) > CSV_MAX_BYTES:
            return CsvImport(
                (), (RowError(1, f"文件过大（最多 {CSV_MAX_BYTES // 1024 // 1024} MB）"),)
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return CsvImport(
                (), (RowError(1, "文件不是 UTF-8 编码（请在表格软件中另存为 CSV UTF-8）"),)
            )
    else:
        text = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return CsvImport((), (RowError(1, "文件是空的"),))
    except csv.Error as exc:
        return CsvImport((), (RowError(1, f"CSV 格式错误：{exc}"),))
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [h for h in ("name", "uri") if h not in header]
    if unknown or missing or len(set(header)) != len(header):
        parts = []
        if missing:
            parts.append("缺少列：" + "、".join(missing))
        if unknown:
            parts.append("未知列：" + "、".join(u[:30] for u in unknown[:10]))
        if len(set(header)) != len(header):
            parts.append("列名重复")
        allowed = ", ".join(CSV_COLUMNS)
        return CsvImport((), (RowError(1, "；".join(parts) + f"（可用的列：{allowed}）"),))
    rows: list[CsvSpeaker] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    has_groups = "groups" in header
    line = 1
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
        if len(rows) + len(errors) >= CSV_MAX_ROWS:
            errors.append(RowError(line, f"行数过多：一次最多导入 {CSV_MAX_ROWS} 个喇叭"))
            break
        if len(values) > len(header):
            errors.append(RowError(line, f"列数（{len(values)}）多于表头（{len(header)}）"))
            continue
        row = dict(zip(header, values, strict=False))
        try:
            rows.append(_row(line, row, grid_of, has_groups))
        except SpeakerInvalid as exc:
            errors.append(RowError(line, f"{exc.field}：{exc.message}"))
            continue
        name = rows[-1].fields.name
        if name in seen:
            rows.pop()
            errors.append(RowError(line, f"名称“{name}”与第 {seen[name]} 行重复"))
        else:
            seen[name] = line
    return CsvImport(tuple(rows), tuple(errors))


def _row(
    line: int, row: dict[str, str], grid_of: Callable[[str], int | None], has_groups: bool
) -> CsvSpeaker:
    grid_id = None
    grid = row.get("grid", "").strip()
    if grid:
        grid_id = grid_of(grid)
        if grid_id is None:
            raise SpeakerInvalid("grid", f"网格不存在：{grid[:40]}")
    fields = speaker_fields(
        name=row.get("name", ""),
        uri=row.get("uri", ""),
        username=row.get("username"),
        password=row.get("password") or None,
        lon=_number("lon", "经度", row.get("lon", "")),
        lat=_number("lat", "纬度", row.get("lat", "")),
        grid_id=grid_id,
        camera_codes=_split(row.get("cameras", "")),
        auto_answer=row.get("auto_answer", "").strip().lower() or "call-info",
    )
    groups = _groups(row.get("groups", "")) if has_groups else None
    return CsvSpeaker(line, fields, groups)


def error_lines(errors: Sequence[RowError]) -> list[str]:
    """The errors as lines to print (``第 N 行：…``)."""
    return [str(e) for e in errors]
