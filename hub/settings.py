"""Settings from ``CITYHUB_*`` environment variables and an optional ``.env`` file.

Secrets (the database URL's password, the secret key) are wrapped in ``Secret`` so that printing or
logging the settings never shows them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.core.errors import CityhubError


class SettingsError(CityhubError):
    code = "bad_settings"


class Secret:
    """A string that does not show itself in ``repr``/``str`` (logs, tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional quotes."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    #: Empty: start the embedded PostgreSQL under ``data_dir/pg``.
    database_url: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    #: Empty: in-memory bus (one process).
    redis_url: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    #: Signs nothing secret-bearing on its own; sessions are random tokens stored hashed. Used for
    #: CSRF token derivation. Generated and kept in ``data_dir/secret_key`` when not given.
    secret_key: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    timezone: str = "Asia/Shanghai"
    #: Working hours as "HH:MM-HH:MM" periods, comma separated (a city may override).
    work_hours: str = "08:30-12:00,14:30-18:00"
    #: Time limit for categories that have none, in working hours.
    default_time_limit_hours: int = 24
    #: Time limit of an urgent case (紧急), in working hours (the category's, when shorter).
    urgent_limit: int = 2
    #: Alarm shares of the time limit: a warning (黄灯) at each share below 1, overdue (红灯) at 1.
    deadline_warnings: str = "0.75,1.0"
    #: What pauses the countdown: "defer" (缓办), "extension" (a request awaiting approval), both
    #: comma-separated, or "none" (the workflow's rule: a resumption restarts the full limit).
    deadline_pause: str = "none"
    #: Automatic escalation (督办) by the system: "overdue", a share of the limit (e.g. 0.9) or "none".
    deadline_escalate: str = "overdue"
    #: Evaluation: the closing rates' denominator is 应结案数 less 缓办数 (the city's choice; the
    #: API's ``subtract_deferred`` parameter overrides it per request).
    evaluation_subtract_deferred: bool = False
    #: Evaluation: how long each post's task may take to count as on time, in minutes, e.g.
    #: ``accept=10,register=30,dispatch=30,check=60,confirm=30`` (受理, 立案, 派遣, 核查, 核实); a
    #: task not named keeps its default (``storage.evaluation_posts.PostAllowances``).
    post_allowances: str = ""
    #: A browser session lapses after this many hours without a request; each request renews it
    #: (once half of it has gone), up to ``session_max_days`` after the sign-in: a big screen or
    #: kiosk left running stays signed in for days.
    session_ttl_hours: int = 12
    session_max_days: int = 30
    bearer_ttl_days: int = 30
    #: Mark the session cookie Secure (set when served over HTTPS).
    cookie_secure: bool = False
    max_json_bytes: int = 256 * 1024
    max_upload_bytes: int = 20 * 1024 * 1024
    #: The city's base map under the grids: a tile URL template in Web Mercator with ``{z}``, ``{x}``
    #: and ``{y}`` (e.g. ``https://tiles.example.gov.cn/{z}/{x}/{y}.png``, or ``/tiles/{z}/{x}/{y}.png``
    #: behind the same proxy); empty: the grids alone.
    map_tiles: str = ""
    #: The base map's attribution, shown under the map.
    map_attribution: str = ""
    max_attachments_per_request: int = 9
    #: Failed logins of one account from one address before each next try waits 1 s, 2 s, 4 s …
    #: (at most 15 min; see ``hub/web/throttle.py``).
    login_max_attempts: int = 5
    #: Seconds over which the distinct accounts failing from one address are counted (30 allowed).
    login_window_seconds: int = 600
    #: Reverse proxies (addresses or CIDR networks, comma separated) whose ``X-Forwarded-For`` is
    #: believed; empty: the header is ignored and the direct peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    #: Origins allowed for browser writes and websockets besides the hub's own.
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    #: The websocket listener's port: -1 = the HTTP port + 1, 0 = any free port.
    ws_port: int = -1
    #: Seconds between websocket heartbeats (pings).
    ws_heartbeat: float = 20.0
    db_pool_max: int = 16
    #: The subsystems this process runs (``cityhub serve --roles web,telephony,video``); empty: all.
    roles: tuple[str, ...] = ()
    #: The SIP UDP socket (telephony): host and port; port 0 = any free port (tests).
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    #: The address written into SDP and Contact headers when it differs from ``sip_host`` (NAT,
    #: a 0.0.0.0 bind); empty: ``sip_host``.
    sip_advertise: str = ""
    #: The user part of the hub's own SIP URI (From/Contact of warnings).
    sip_user: str = "cityhub"
    #: The PBX or registrar to REGISTER with (``sip:pbx.example:5060``); empty: no registration.
    sip_registrar: str = ""
    #: Digest credentials for the registrar (the username defaults to ``sip_user``).
    sip_username: str = ""
    sip_password: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    #: Seconds of registration to ask for (the registrar may grant less, or ask for more with 423).
    sip_register_expires: int = 600
    #: RTP ports (an even start; RTCP on port + 1), as "FIRST-LAST".
    rtp_ports: str = "20000-20999"
    #: Seconds without RTP after which a call with no BYE is ended (the media timeout guard).
    media_timeout: float = 30.0
    #: Seconds a speaker may ring before a warning counts it unanswered.
    warning_ring_timeout: float = 20.0
    #: How many times a busy, rejecting or unreachable speaker is tried again (never forever).
    warning_retries: int = 2
    #: Seconds between those tries.
    warning_retry_delay: float = 5.0
    #: Seconds between SIP OPTIONS health checks of each speaker.
    speaker_health_interval: float = 30.0
    #: Largest uploaded clip, in seconds of audio.
    clip_max_seconds: float = 300.0
    #: Networks (CIDR, comma separated) WebRTC media may use at both ends (live talk): local ICE
    #: addresses and the browser's candidates outside them are left out; empty: no limit.
    webrtc_networks: tuple[str, ...] = ()
    #: Live video tiles (WebRTC) one seat may have open at once.
    video_live_per_seat: int = 4
    #: Seconds between RTSP DESCRIBE checks of each camera nobody watches.
    video_probe_interval: float = 5.0
    #: Seconds a camera's session stays open after its last viewer or thumbnail tile leaves.
    video_linger: float = 10.0
    #: Seconds without a packet after which a camera's session counts as stalled and reconnects.
    video_stall_timeout: float = 5.0
    #: Seconds of each open camera kept (whole GOPs) for a snapshot's video clip; 0: no clips.
    video_clip_seconds: float = 10.0
    #: The 12319 hotline: the number it answers (the Request-URI's user part).
    hotline_number: str = "12319"
    #: Calls waiting at most (more get the overflow message).
    hotline_max_queue: int = 100
    #: Seconds a caller waits in the queue at most (then the overflow message).
    hotline_max_wait: float = 600.0
    #: Seconds an offered call rings at an agent before it goes back to its place in the queue.
    hotline_ring_timeout: float = 15.0
    #: Seconds of wrap-up (话后整理) after a call before the agent is offered the next one.
    hotline_wrapup: float = 30.0
    #: Service hours ("" = 24 hours; "08:00-20:00"; several: "08:00-12:00,13:00-20:00"; working
    #: days of the working calendar only: "workdays 08:30-17:30").
    hotline_hours: str = ""
    #: Seconds between position / expected-wait announcements to a queued caller.
    hotline_announce_every: float = 30.0
    #: The DTMF key a queued caller presses to be called back instead of waiting.
    hotline_callback_key: str = "1"
    #: Days recordings are kept (0: for ever).
    hotline_recordings_days: int = 180
    #: Networks (CIDR) trunks and PBXs call in from; empty: none (the demo adds loopback).
    hotline_trunks: tuple[str, ...] = ()
    #: The digest realm agents' desk phones register in (their HA1 is computed with it).
    hotline_realm: str = "cityhub"
    #: HTTPS/WSS: a PEM certificate (chain) and its key; both empty: plain HTTP (browsers then allow
    #: the microphone on localhost only).
    tls_cert: str = ""
    tls_key: str = ""

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    @property
    def map_tiles_origin(self) -> str:
        """The base map's origin for the pages' CSP (empty when the tiles are the hub's own)."""
        if not self.map_tiles.startswith(("https://", "http://")):
            return ""
        scheme, _, rest = self.map_tiles.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    @property
    def rtp_port_range(self) -> tuple[int, int]:
        """``rtp_ports`` as (first, last); ValueError when it is not "FIRST-LAST"."""
        first, sep, last = self.rtp_ports.partition("-")
        if not sep:
            raise ValueError(self.rtp_ports)
        return int(first), int(last)

    @property
    def sip_address(self) -> str:
        """The address peers reach this hub at (SDP ``c=``, Contact)."""
        return self.sip_advertise or self.sip_host

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    @property
    def effective_ws_port(self) -> int:
        return self.port + 1 if self.ws_port == -1 else self.ws_port

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        env_file: Path | None = Path(".env"),
        **overrides: Any,
    ) -> Settings:
        env: dict[str, str] = {}
        if env_file is not None:
            env.update(read_env_file(env_file))
        env.update(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = "CITYHUB_" + f.name.upper()
            if key not in env:
                continue
            raw = env[key]
            try:
                values[f.name] = _convert(f.type, raw)
            except ValueError as exc:
                raise SettingsError(f"{key}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port out of range: {self.port}")
        if self.session_ttl_hours < 1 or self.session_max_days * 24 < self.session_ttl_hours:
            raise SettingsError(
                "CITYHUB_SESSION_TTL_HOURS must be at least 1 and CITYHUB_SESSION_MAX_DAYS at"
                f" least that long: {self.session_ttl_hours} h, {self.session_max_days} d"
            )
        if not -1 <= self.ws_port <= 65535:
            raise SettingsError(f"ws_port out of range: {self.ws_port}")
        from hub.core.workcal import parse_work_hours

        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise SettingsError(
                    f"CITYHUB_TRUSTED_PROXIES: not an IP address or network: {entry!r}"
                ) from None
        if self.map_tiles:
            if not all(p in self.map_tiles for p in ("{z}", "{x}", "{y}")):
                raise SettingsError("CITYHUB_MAP_TILES: the template needs {z}, {x} and {y}")
            if not self.map_tiles.startswith(("https://", "http://", "/")) or any(
                c in self.map_tiles for c in " \"'<>;"
            ):
                raise SettingsError("CITYHUB_MAP_TILES: an http(s) URL or a path starting with /")
        if not 0 <= self.sip_port <= 65535:
            raise SettingsError(f"CITYHUB_SIP_PORT out of range: {self.sip_port}")
        try:
            first, last = self.rtp_port_range
        except ValueError:
            raise SettingsError(
                f"CITYHUB_RTP_PORTS: expected FIRST-LAST, got {self.rtp_ports!r}"
            ) from None
        if not (1024 <= first < last <= 65535) or first % 2 or last - first < 1:
            raise SettingsError(
                "CITYHUB_RTP_PORTS: an even first port from 1024 and a last port above it, "
                f"got {self.rtp_ports!r}"
            )
        if self.sip_registrar and not self.sip_registrar.startswith(("sip:", "sips:")):
            raise SettingsError("CITYHUB_SIP_REGISTRAR: a sip: URI, e.g. sip:pbx.example:5060")
        if (
            "@" in self.sip_registrar.split(";", 1)[0]
            and ":" in self.sip_registrar.split("@")[0][4:]
        ):
            raise SettingsError(
                "CITYHUB_SIP_REGISTRAR: no password in the URI; use CITYHUB_SIP_PASSWORD"
            )
        if self.sip_register_expires < 1:
            raise SettingsError("CITYHUB_SIP_REGISTER_EXPIRES must be positive")
        for entry in self.webrtc_networks:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise SettingsError(
                    f"CITYHUB_WEBRTC_NETWORKS: not an IP network: {entry!r}"
                ) from None
        if self.warning_retries < 0 or self.warning_retry_delay < 0:
            raise SettingsError("CITYHUB_WARNING_RETRIES and _RETRY_DELAY must not be negative")
        if not (0.5 <= self.video_probe_interval <= 10):
            raise SettingsError(
                "CITYHUB_VIDEO_PROBE_INTERVAL: 0.5 to 10 seconds (a camera that dies must show "
                "offline within 15 s)"
            )
        if self.video_linger < 0 or self.video_stall_timeout <= 0:
            raise SettingsError(
                "CITYHUB_VIDEO_LINGER must not be negative and CITYHUB_VIDEO_STALL_TIMEOUT positive"
            )
        if not 0 <= self.video_clip_seconds <= 60:
            raise SettingsError("CITYHUB_VIDEO_CLIP_SECONDS: 0 (no clips) to 60 seconds")
        if self.video_live_per_seat < 1:
            raise SettingsError("CITYHUB_VIDEO_LIVE_PER_SEAT must be at least 1")
        if not self.hotline_number or not all(c in "0123456789*#+" for c in self.hotline_number):
            raise SettingsError("CITYHUB_HOTLINE_NUMBER: digits (and * # +), e.g. 12319")
        if (
            self.hotline_max_queue < 0
            or min(self.hotline_max_wait, self.hotline_ring_timeout, self.hotline_announce_every)
            <= 0
            or self.hotline_wrapup < 0
            or self.hotline_recordings_days < 0
        ):
            raise SettingsError(
                "CITYHUB_HOTLINE_MAX_QUEUE, _WRAPUP and _RECORDINGS_DAYS must not be negative; "
                "_MAX_WAIT, _RING_TIMEOUT and _ANNOUNCE_EVERY must be positive"
            )
        if len(self.hotline_callback_key) != 1 or self.hotline_callback_key not in "0123456789*#":
            raise SettingsError("CITYHUB_HOTLINE_CALLBACK_KEY: one DTMF key (0-9, * or #)")
        from telephony.hotline.hours import HoursError, parse_hours

        try:
            parse_hours(self.hotline_hours, ZoneInfo(self.timezone))
        except HoursError as exc:
            raise SettingsError(f"CITYHUB_HOTLINE_HOURS: {exc}") from None
        for entry in self.hotline_trunks:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise SettingsError(
                    f"CITYHUB_HOTLINE_TRUNKS: not an IP network: {entry!r}"
                ) from None
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.hotline_realm):
            raise SettingsError(
                "CITYHUB_HOTLINE_REALM: 1 to 64 letters, digits, '.', '-' or '_' (e.g. cityhub)"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("CITYHUB_TLS_CERT and CITYHUB_TLS_KEY go together")
        for name, path in (("CITYHUB_TLS_CERT", self.tls_cert), ("CITYHUB_TLS_KEY", self.tls_key)):
            if path and not Path(path).is_file():
                raise SettingsError(f"{name}: no such file: {path}")
        if self.login_max_attempts < 1 or self.login_window_seconds < 1:
            raise SettingsError("CITYHUB_LOGIN_MAX_ATTEMPTS and _WINDOW_SECONDS must be positive")

        try:
            parse_work_hours(self.work_hours)
        except ValueError as exc:
            raise SettingsError(f"CITYHUB_WORK_HOURS: {exc}") from None
        if self.urgent_limit < 1:
            raise SettingsError("CITYHUB_URGENT_LIMIT must be at least 1 (working hours)")
        from hub.core.deadlines import parse_policy

        try:
            parse_policy(self.deadline_warnings, self.deadline_pause, self.deadline_escalate)
        except ValueError as exc:
            raise SettingsError(f"CITYHUB_DEADLINE_*: {exc}") from None
        from storage.evaluation_posts import PostAllowances

        try:
            PostAllowances.parse(self.post_allowances)
        except ValueError as exc:
            raise SettingsError(f"CITYHUB_POST_ALLOWANCES: {exc}") from None

    def with_secret_key(self) -> Settings:
        """Return settings whose secret key is set, generating and keeping one in data_dir."""
        if self.secret_key:
            return self
        path = self.data_dir / "secret_key"
        if path.is_file():
            key = path.read_text(encoding="ascii").strip()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(key)
        return dataclasses.replace(self, secret_key=Secret(key))


def _convert(typ: Any, raw: str) -> Any:
    name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    if name == "int":
        return int(raw)
    if name == "float":
        return float(raw)
    if name == "bool":
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if name == "Path":
        return Path(raw)
    if name == "Secret":
        return Secret(raw)
    if name.startswith("tuple"):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw
