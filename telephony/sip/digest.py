"""SIP digest authentication as a client: RFC 3261 §22 with RFC 7616's algorithms (RFC 8760).

Theory of operation
-------------------
Everything here works on header *values* (strings); the SIP message layer finds the headers.

- ``parse_challenges`` reads one or several ``WWW-Authenticate`` / ``Proxy-Authenticate`` values
  (each may carry several challenges, RFC 7235 §4.1 ``1#challenge``), with limits on length,
  challenge count and parameter count. Syntax errors are ``DigestError``; challenges of other schemes
  (``Basic``…) and digest challenges with an algorithm we do not implement are skipped.
- ``choose_challenges`` keeps one challenge per realm: the strongest algorithm we support
  (SHA-512-256 > SHA-256 > MD5; the first offered wins a tie). RFC 8760 §2.4 lets a UAC take the
  topmost supported header "unless a local policy dictates otherwise": our policy is the strongest.
- ``compute_response`` is RFC 7616 §3.4.1 (``request-digest``), including the ``-sess`` variants
  (§3.4.2), ``qop=auth-int`` (§3.4.3: A2 carries H(body)), and RFC 2069 compatibility when a challenge
  offers no ``qop`` at all (RFC 3261 §22.4, still sent by old Asterisk ``chan_sip``).
- ``Authorization`` is the value we send (``Authorization`` / ``Proxy-Authorization``); it parses and
  serializes itself. ``qop=auth`` is preferred; ``auth-int`` is used only when it alone is offered.
- ``DigestClient`` keeps, per realm, the chosen challenge and the nonce count: later requests reuse the
  nonce with nc+1 (preemptive credentials, RFC 7616 §3.4 ``nc``); a new challenge with ``stale=true``
  restarts at nc=1 with the new nonce; a challenge to a request that already carried our credentials
  without ``stale=true`` means they were rejected (RFC 7616 §3.3: "new values MUST be obtained"), which
  is a ``DigestError(rejected=True)`` so a UAC never loops (RFC 3261 §22.2).

The password lives only in ``Credentials`` (kept out of its repr) and is never put in an error, a repr
or a serialized value.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from telephony.errors import DigestError

MAX_VALUE_LENGTH = 4096
MAX_PARAMS = 24
MAX_CHALLENGES = 8
MAX_NC = 0xFFFFFFFF


class Algorithm(enum.Enum):
    """The RFC 7616 §6.1 registry entries we implement (RFC 8760 §2.6 ABNF names)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"
    SHA512_256 = "SHA-512-256"
    SHA512_256_SESS = "SHA-512-256-sess"

    @property
    def sess(self) -> bool:
        return self.value.endswith("-sess")

    @property
    def hash_name(self) -> str:
        return _HASH_NAMES[self]

    @property
    def strength(self) -> int:
        return _STRENGTH[self]

    @classmethod
    def from_token(cls, token: str) -> Algorithm | None:
        return _BY_LOWER.get(token.lower())


_HASH_NAMES = {
    Algorithm.MD5: "md5",
    Algorithm.MD5_SESS: "md5",
    Algorithm.SHA256: "sha256",
    Algorithm.SHA256_SESS: "sha256",
    Algorithm.SHA512_256: "sha512_256",
    Algorithm.SHA512_256_SESS: "sha512_256",
}
_STRENGTH = {
    Algorithm.MD5: 1,
    Algorithm.MD5_SESS: 1,
    Algorithm.SHA256: 2,
    Algorithm.SHA256_SESS: 2,
    Algorithm.SHA512_256: 3,
    Algorithm.SHA512_256_SESS: 3,
}
_BY_LOWER = {a.value.lower(): a for a in Algorithm}


def _available(algorithm: Algorithm) -> bool:
    try:
        hashlib.new(algorithm.hash_name)
    except ValueError:  # an OpenSSL build without SHA-512/256
        return False
    return True


SUPPORTED = frozenset(a for a in Algorithm if _available(a))

QOP_AUTH = "auth"
QOP_AUTH_INT = "auth-int"


# -- the auth-param syntax (RFC 3261 §25.1 token, quoted-string; RFC 7235 §2.1 challenge list) -----

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SPACE = re.compile(r"[ \t]*")
_SEPARATORS = re.compile(r"[ \t,]*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BARE_VALUE = re.compile(r'[^ \t,"]+')
_UNESCAPE = re.compile(r"\\(.)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_BAD_DOMAIN = re.compile(r"[\s\x00-\x1f\x7f]")
_NC = re.compile(r"[0-9a-fA-F]{8}")

Params = dict[str, str]


def _skip(pattern: re.Pattern[str], value: str, pos: int) -> int:
    """The end of ``pattern`` (which matches the empty string) at ``pos``."""
    match = pattern.match(value, pos)
    return pos if match is None else match.end()


def _split_challenges(
    value: str, *, max_length: int, max_params: int, max_challenges: int
) -> list[tuple[str, Params]]:
    """``value`` as (scheme, {lower-cased name: unescaped value}) pairs, in order."""
    if len(value) > max_length:
        raise DigestError(f"authentication header value longer than {max_length} characters")
    if _CONTROL.search(value):
        raise DigestError("control character in authentication header value")
    challenges: list[tuple[str, Params]] = []
    current: Params | None = None
    pos, end = 0, len(value)
    while True:
        pos = _skip(_SEPARATORS, value, pos)
        if pos >= end:
            break
        name_match = _TOKEN.match(value, pos)
        if name_match is None:
            raise DigestError(f"expected a token at offset {pos}")
        name = name_match.group()
        after = _skip(_SPACE, value, name_match.end())
        if after < end and value[after] == "=":
            if current is None:
                raise DigestError("parameter before any authentication scheme")
            pos = _skip(_SPACE, value, after + 1)
            quoted = _QUOTED.match(value, pos)
            if quoted is not None:
                param = _UNESCAPE.sub(r"\1", quoted.group(1))
                pos = quoted.end()
            else:
                bare = _BARE_VALUE.match(value, pos)
                if bare is None:
                    raise DigestError(f"parameter {name[:40]!r} has no value")
                param = bare.group()
                pos = bare.end()
            key = name.lower()
            if key in current:
                raise DigestError(f"parameter {key[:40]!r} given twice")
            if len(current) >= max_params:
                raise DigestError(f"more than {max_params} parameters in one challenge")
            current[key] = param
            pos = _skip(_SPACE, value, pos)
            if pos < end and value[pos] != ",":
                raise DigestError(f"expected ',' after parameter {key[:40]!r} at offset {pos}")
        else:
            if after == name_match.end() and after < end and value[after] != ",":
                raise DigestError(f"unexpected character after {name[:40]!r} at offset {after}")
            if len(challenges) >= max_challenges:
                raise DigestError(f"more than {max_challenges} challenges")
            current = {}
            challenges.append((name, current))
            pos = after
    return challenges


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_text(name: str, text: str) -> None:
    if _CONTROL.search(text):
        raise DigestError(f"control character in {name}")


# -- challenges ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``Digest`` challenge (RFC 7616 §3.3), from a 401 (``proxy=False``) or a 407."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ()  # lower-cased, as offered; () is RFC 2069 mode
    opaque: str | None = None
    stale: bool = False
    domain: tuple[str, ...] = ()
    proxy: bool = False

    def __post_init__(self) -> None:
        for name, text in (("realm", self.realm), ("nonce", self.nonce), ("opaque", self.opaque)):
            if text is not None:
                _check_text(name, text)
        if not self.nonce:
            raise DigestError("digest challenge without nonce", realm=self.realm)
        for token in self.qop:
            if not _TOKEN.fullmatch(token):
                raise DigestError("qop is not a token list", realm=self.realm)
        for uri in self.domain:
            if not uri or _BAD_DOMAIN.search(uri):
                raise DigestError("bad domain entry", realm=self.realm)

    @property
    def header_name(self) -> str:
        """The header that answers this challenge."""
        return "Proxy-Authorization" if self.proxy else "Authorization"

    @property
    def usable(self) -> bool:
        """Whether we can answer it: a qop we implement (or none at all, but then no ``-sess``)."""
        if not self.qop:
            return not self.algorithm.sess
        return QOP_AUTH in self.qop or QOP_AUTH_INT in self.qop

    def chosen_qop(self) -> str | None:
        """``auth`` when offered, else ``auth-int``, else None (RFC 2069 mode)."""
        if QOP_AUTH in self.qop:
            return QOP_AUTH
        if QOP_AUTH_INT in self.qop:
            return QOP_AUTH_INT
        if self.qop:
            raise DigestError("no qop we support", realm=self.realm)
        return None

    def serialize(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        parts.append(f"algorithm={self.algorithm.value}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=true")
        if self.domain:
            parts.append(f"domain={_quote(' '.join(self.domain))}")
        return "Digest " + ", ".join(parts)

    def __str__(self) -> str:
        return self.serialize()


def _challenge_from(params: Params, *, proxy: bool) -> Challenge | None:
    if "realm" not in params:
        raise DigestError("digest challenge without realm")
    realm = params["realm"]
    nonce = params.get("nonce", "")
    if not nonce:
        raise DigestError("digest challenge without nonce", realm=realm)
    algorithm = Algorithm.from_token(params.get("algorithm", "MD5"))
    if algorithm is None or algorithm not in SUPPORTED:
        return None
    qop = tuple(q for q in (part.strip().lower() for part in params.get("qop", "").split(",")) if q)
    return Challenge(
        realm=realm,
        nonce=nonce,
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        domain=tuple(params.get("domain", "").split()),
        proxy=proxy,
    )


def parse_challenges(
    values: str | Sequence[str],
    *,
    proxy: bool = False,
    max_length: int = MAX_VALUE_LENGTH,
    max_params: int = MAX_PARAMS,
    max_challenges: int = MAX_CHALLENGES,
) -> tuple[Challenge, ...]:
    """Every digest challenge with an algorithm we implement, in order, from one header value or
    several (one per header line). ``DigestError`` on a syntax error or a broken limit."""
    if isinstance(values, str):
        values = (values,)
    if len(values) > max_challenges:
        raise DigestError(f"more than {max_challenges} authentication headers")
    found: list[Challenge] = []
    total = 0
    for value in values:
        pairs = _split_challenges(
            value,
            max_length=max_length,
            max_params=max_params,
            max_challenges=max_challenges - total,
        )
        total += len(pairs)
        for scheme, params in pairs:
            if scheme.lower() != "digest":
                continue
            challenge = _challenge_from(params, proxy=proxy)
            if challenge is not None:
                found.append(challenge)
    return tuple(found)


def choose_challenges(challenges: Iterable[Challenge]) -> tuple[Challenge, ...]:
    """One usable challenge per realm (first-seen realm order): the strongest algorithm, the first
    offered among equals. ``DigestError`` if none is usable."""
    best: dict[str, Challenge] = {}
    for challenge in challenges:
        if not challenge.usable:
            continue
        held = best.get(challenge.realm)
        if held is None or challenge.algorithm.strength > held.algorithm.strength:
            best[challenge.realm] = challenge
    if not best:
        raise DigestError("no digest challenge with an algorithm and qop we support")
    return tuple(best.values())


# -- the response -------------------------------------------------------------------------------


def _h(algorithm: Algorithm, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(algorithm.hash_name, raw).hexdigest()


def compute_response(
    *,
    algorithm: Algorithm,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """RFC 7616 §3.4.1 ``response`` (lower-case hex)."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.sess:
        if cnonce is None:
            raise DigestError("a -sess algorithm needs a cnonce", realm=realm)
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == QOP_AUTH_INT:
        ha2 = _h(algorithm, f"{method}:{uri}:{_h(algorithm, body)}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    if cnonce is None:
        raise DigestError("qop needs a cnonce", realm=realm)
    return _h(algorithm, f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password for one peer; the password is never shown."""

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        _check_text("username", self.username)


@dataclass(frozen=True, slots=True)
class Authorization:
    """An ``Authorization`` / ``Proxy-Authorization`` value (RFC 7616 §3.4, RFC 3261 §25.1)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = Algorithm.MD5
    qop: str | None = None
    nc: int | None = None
    cnonce: str | None = None
    opaque: str | None = None

    def __post_init__(self) -> None:
        for name in ("username", "realm", "nonce", "uri", "response", "cnonce", "opaque"):
            text = getattr(self, name)
            if text is not None:
                _check_text(name, text)
        if self.qop is not None and not _TOKEN.fullmatch(self.qop):
            raise DigestError("qop is not a token", realm=self.realm)
        if self.nc is not None and not 0 <= self.nc <= MAX_NC:
            raise DigestError("nonce count out of range", realm=self.realm)

    def serialize(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm.value}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        return "Digest " + ", ".join(parts)

    def __str__(self) -> str:
        return self.serialize()

    @classmethod
    def parse(cls, value: str, *, max_length: int = MAX_VALUE_LENGTH) -> Authorization:
        pairs = _split_challenges(
            value, max_length=max_length, max_params=MAX_PARAMS, max_challenges=1
        )
        if not pairs or pairs[0][0].lower() != "digest":
            raise DigestError("not a Digest authorization")
        params = pairs[0][1]
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
        if missing:
            raise DigestError(f"authorization without {', '.join(missing)}")
        algorithm = Algorithm.from_token(params.get("algorithm", "MD5"))
        if algorithm is None:
            raise DigestError("unknown digest algorithm")
        nc_text = params.get("nc")
        if nc_text is not None and not _NC.fullmatch(nc_text):
            raise DigestError("nc is not 8 hex digits")
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"],
            algorithm=algorithm,
            qop=params.get("qop"),
            nc=int(nc_text, 16) if nc_text is not None else None,
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
        )


def authorize(
    challenge: Challenge,
    credentials: Credentials,
    *,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> Authorization:
    """The answer to ``challenge`` for a request (``method``, Request-URI ``uri``, its ``body``)."""
    qop = challenge.chosen_qop()
    if not 1 <= nc <= MAX_NC:
        raise DigestError("nonce count out of range", realm=challenge.realm)
    _check_text("uri", uri)
    _check_text("cnonce", cnonce)
    needs_cnonce = qop is not None or challenge.algorithm.sess
    response = compute_response(
        algorithm=challenge.algorithm,
        username=credentials.username,
        realm=challenge.realm,
        password=credentials.password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=qop,
        nc=nc,
        cnonce=cnonce if needs_cnonce else None,
        body=body,
    )
    return Authorization(
        username=credentials.username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        qop=qop,
        nc=nc if qop is not None else None,
        cnonce=cnonce if needs_cnonce else None,
        opaque=challenge.opaque,
    )


def random_cnonce() -> str:
    return secrets.token_hex(16)


@dataclass(slots=True)
class _RealmState:
    challenge: Challenge
    nc: int = 0


class DigestClient:
    """Per-realm nonce and nonce count for one set of credentials (one trunk, PBX or speaker).

    ``challenged(values)`` after a 401/407; ``authorizations(method, uri)`` for every request after
    that (the same nonce, nc+1 each time). ``cnonce`` is injected so tests are deterministic.
    """

    __slots__ = ("_cnonce", "_credentials", "_max_realms", "_realms")

    def __init__(
        self,
        credentials: Credentials,
        *,
        cnonce: Callable[[], str] = random_cnonce,
        max_realms: int = 8,
    ) -> None:
        self._credentials = credentials
        self._cnonce = cnonce
        self._max_realms = max_realms
        self._realms: dict[str, _RealmState] = {}

    def __repr__(self) -> str:
        return (
            f"DigestClient(username={self._credentials.username!r}, realms={list(self._realms)!r})"
        )

    @property
    def realms(self) -> tuple[str, ...]:
        return tuple(self._realms)

    def nonce_count(self, realm: str) -> int:
        state = self._realms.get(realm)
        return state.nc if state is not None else 0

    def challenged(
        self, values: str | Sequence[str], *, proxy: bool = False, retried: bool = False
    ) -> tuple[Challenge, ...]:
        """Take the challenges of a 401 (``proxy=False``) or 407 and remember the chosen one per
        realm. ``retried``: the challenged request already carried our credentials, so a challenge
        without ``stale=true`` for a realm we answered is a rejection (``DigestError(rejected=True)``)."""
        chosen = choose_challenges(parse_challenges(values, proxy=proxy))
        for challenge in chosen:
            held = self._realms.get(challenge.realm)
            answered = held is not None and held.nc > 0
            same_nonce = held is not None and held.challenge.nonce == challenge.nonce
            if answered and not challenge.stale and (retried or same_nonce):
                del self._realms[challenge.realm]
                raise DigestError("credentials rejected", realm=challenge.realm, rejected=True)
        for challenge in chosen:
            self._realms.pop(challenge.realm, None)
            while len(self._realms) >= self._max_realms:
                del self._realms[next(iter(self._realms))]
            self._realms[challenge.realm] = _RealmState(challenge)
        return chosen

    def authorization(
        self, realm: str, method: str, uri: str, *, body: bytes = b""
    ) -> tuple[str, str] | None:
        """(header name, value) for ``realm``, counting the nonce; None if the realm is unknown or
        its nonce is used up (then the next challenge brings a new one)."""
        state = self._realms.get(realm)
        if state is None:
            return None
        if state.nc >= MAX_NC:
            del self._realms[realm]
            return None
        state.nc += 1
        value = authorize(
            state.challenge,
            self._credentials,
            method=method,
            uri=uri,
            cnonce=self._cnonce(),
            nc=state.nc,
            body=body,
        )
        return state.challenge.header_name, value.serialize()

    def authorizations(self, method: str, uri: str, *, body: bytes = b"") -> list[tuple[str, str]]:
        """The credential headers for every realm we hold (a proxy's and a registrar's at once)."""
        headers = []
        for realm in list(self._realms):
            header = self.authorization(realm, method, uri, body=body)
            if header is not None:
                headers.append(header)
        return headers

    def forget(self, realm: str | None = None) -> None:
        if realm is None:
            self._realms.clear()
        else:
            self._realms.pop(realm, None)
