"""A SIP registrar (RFC 3261 §10.3) with digest authentication (§22, RFC 2617/7616), sans-I/O.

Theory of operation
-------------------
``Registrar.register(request, now, account)`` is the whole REGISTER procedure on one request and
returns the response to send (and whether the bindings changed); ``lookup(user, now)`` gives the
live contacts of an address of record. No socket, no clock, no database: the caller passes ``now``
and the ``PhoneAccount`` (sip user, stored HA1, owner) found for the To user, and sends the answer.

- The address of record is the To URI's user part (the registrar serves one domain: any host in
  the To URI is taken as ours, the phones are configured with the hub's address). The To user must
  be a known phone and the digest username the same user (a phone registers only itself).
- Authentication (§22.4): a REGISTER without credentials for our realm gets ``401`` with
  ``WWW-Authenticate: Digest realm=…, nonce=…, algorithm=MD5, qop="auth"``. The nonce is
  ``<hex time>.<random>.<HMAC(secret, time.random)>``: no server state per challenge; one older than
  ``nonce_ttl`` is answered ``401 … stale=true`` (the phone retries at once without asking its
  user), a forged or future one is a fresh ``401``. The response is checked against the stored
  ``HA1 = MD5(user:realm:password)`` (the password is never known here) with ``qop=auth``, ``nc`` and
  ``cnonce`` required, and the digest ``uri`` equal to the Request-URI (RFC 2617 §3.2.2.5: 400
  otherwise). Nonce counts are remembered per nonce (bounded): an ``nc`` not above the last one
  seen is a replay, answered with a fresh ``401``. A wrong response, an unknown user or a username
  that is not the To user is ``403`` (the same answer for all three: no user enumeration).
- Bindings (§10.3 steps 6-8): each Contact's ``expires`` parameter, else the ``Expires`` header,
  else ``default_expires``; 0 removes the binding; below ``min_expires`` the whole request is
  refused ``423`` with ``Min-Expires``; above ``max_expires`` it is shortened. ``Contact: *`` with
  ``Expires: 0`` (and nothing else) removes them all; ``*`` otherwise is 400. A binding is updated
  only by a REGISTER with a higher CSeq in the same Call-ID (an older or repeated one is 500,
  §10.3 step 7); a new Call-ID always replaces. At most ``max_bindings`` contacts per AOR: a new
  one beyond that replaces the one that would lapse first (a phone that rebooted onto a new port
  is never locked out by its own stale binding). A REGISTER without Contact is a query.
- The ``200`` lists every live binding with its remaining ``expires`` (§10.3 step 8) and a Date.
- Anything that does not parse (Contact, Expires, Authorization) is ``400`` with the reason; the
  registrar never raises on a peer's input.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

from telephony.errors import DigestError
from telephony.sip.dialog import SipUri
from telephony.sip.digest import Algorithm, Authorization, Challenge
from telephony.sip.endpoint import new_tag
from telephony.sip.headers import NameAddr, param
from telephony.sip.message import Request, Response, make_response

MAX_EXPIRES: Final = 2**32 - 1
_DELTA = re.compile(r"[0-9]{1,10}")
_NONCE = re.compile(r"([0-9a-f]{1,12}\.[0-9a-f]{16})\.([0-9a-f]{32})")
#: Nonces whose counts are remembered (the oldest forgotten first; a forgotten nonce is stale).
MAX_NONCES: Final = 10_000
Address = tuple[str, int]


def ha1(user: str, realm: str, password: str) -> str:
    """``MD5(user:realm:password)``, what a phone account stores instead of its password."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - RFC 2617


@dataclasses.dataclass(frozen=True, slots=True)
class PhoneAccount:
    """A phone allowed to register: its SIP user, the stored HA1, and whose it is (an agent id)."""

    sip_user: str
    ha1: str = dataclasses.field(repr=False)
    owner: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Binding:
    """One contact of an address of record (§10.3): where INVITEs for the AOR go, until when."""

    contact: str  # the Contact URI
    expires_at: float
    call_id: str
    cseq: int
    source: Address = ("", 0)
    q: str | None = None

    def remaining(self, now: float) -> int:
        return max(0, round(self.expires_at - now))


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What one REGISTER did: the response, the AOR (the To user), and whether bindings changed."""

    response: Response
    user: str | None = None
    changed: bool = False
    authenticated: bool = False


class _Refused(Exception):
    def __init__(self, status: int, reason: str | None = None, **headers: str) -> None:
        super().__init__(reason or str(status))
        self.status = status
        self.reason = reason
        self.headers = [(k.replace("_", "-"), v) for k, v in headers.items()]


def _contact_key(uri: str) -> str:
    """Contacts compared as §10.3 step 6 asks (§19.1.4, in short): scheme, user, host without
    case, port with its default."""
    try:
        u = SipUri.parse(uri)
    except ValueError:
        return uri.lower()
    return f"{u.scheme}:{u.user}@{u.host.lower()}:{u.address()[1]}"


def _delta(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    stripped = text.strip(" \t")
    if not _DELTA.fullmatch(stripped):
        raise _Refused(400, f"Bad Request (malformed {what})")
    return min(int(stripped), MAX_EXPIRES)


class Registrar:
    """The bindings of every phone, and the REGISTER procedure. ``secret`` keys the nonces (one per
    process: a restarted hub's nonces are refused and re-challenged, phones re-register)."""

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_bindings: int = 3,
        nonce_ttl: float = 300.0,
    ) -> None:
        if not 0 < min_expires <= default_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if max_bindings < 1 or nonce_ttl <= 0:
            raise ValueError("max_bindings and nonce_ttl must be positive")
        self.realm = realm
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_bindings = max_bindings
        self.nonce_ttl = nonce_ttl
        self.bindings: dict[str, dict[str, Binding]] = {}
        self._nc: OrderedDict[str, int] = OrderedDict()

    # -- nonces -----------------------------------------------------------------------------------

    def _mac(self, stamp: str) -> str:
        msg = f"{stamp}:{self.realm}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def nonce(self, now: float) -> str:
        stamp = f"{int(now):x}.{secrets.token_hex(8)}"
        return f"{stamp}.{self._mac(stamp)}"

    def nonce_state(self, nonce: str, now: float) -> str:
        """``"ok"``, ``"stale"`` (ours, older than ``nonce_ttl``) or ``"bad"`` (not ours)."""
        m = _NONCE.fullmatch(nonce)
        if m is None or not hmac.compare_digest(m.group(2), self._mac(m.group(1))):
            return "bad"
        age = now - int(m.group(1).split(".", 1)[0], 16)
        if age < -5:
            return "bad"
        return "stale" if age > self.nonce_ttl else "ok"

    def challenge(self, now: float, *, stale: bool = False) -> str:
        return Challenge(
            realm=self.realm, nonce=self.nonce(now), algorithm=Algorithm.MD5, qop=("auth",),
            stale=stale,
        ).serialize()  # fmt: skip

    def _count(self, nonce: str, nc: int, now: float) -> bool:
        """Record ``nc`` for ``nonce``; False for a replay (not above the last count seen)."""
        last = self._nc.get(nonce)
        if last is not None and nc <= last:
            return False
        self._nc[nonce] = nc
        self._nc.move_to_end(nonce)
        while len(self._nc) > MAX_NONCES:
            self._nc.popitem(last=False)
        return True

    # -- the procedure ------------------------------------------------------------------------------

    @staticmethod
    def aor_user(request: Request) -> str | None:
        """The To URI's user part: the address of record a REGISTER is about."""
        try:
            to = request.to
            return None if to is None else SipUri.parse(to.uri).user
        except ValueError:
            return None

    def register(self, request: Request, now: float, account: PhoneAccount | None) -> Outcome:
        """Carry out one REGISTER (``account``: the phone found for the To user, or None)."""
        tag = new_tag()
        user = self.aor_user(request)
        if request.method != "REGISTER":
            return Outcome(make_response(request, 405, to_tag=tag, headers=[("Allow", "REGISTER")]))
        authenticated = False
        try:
            if not user:
                raise _Refused(400, "Bad Request (no user in the To URI)")
            contacts = self._contacts(request)  # syntax first: garbage is 400 before any challenge
            self._authenticate(request, now, user, account)
            authenticated = True
            changed = self._apply(request, now, user, contacts)
        except _Refused as r:
            response = make_response(request, r.status, r.reason, to_tag=tag, headers=r.headers)
            return Outcome(response, user, authenticated=authenticated)
        return Outcome(self._ok(request, now, user, tag), user, changed, True)

    def _authenticate(
        self, request: Request, now: float, user: str, account: PhoneAccount | None
    ) -> None:
        values = request.header_all("Authorization")
        ours: Authorization | None = None
        for value in values[:4]:
            try:
                auth = Authorization.parse(value)
            except DigestError:
                raise _Refused(400, "Bad Request (malformed Authorization)") from None
            if auth.realm == self.realm:
                ours = auth
                break
        if ours is None:
            raise _Refused(401, www_authenticate=self.challenge(now))
        state = self.nonce_state(ours.nonce, now)
        if state == "bad":
            raise _Refused(401, www_authenticate=self.challenge(now))
        if ours.uri != request.uri:
            raise _Refused(400, "Bad Request (digest uri is not the Request-URI)")
        if ours.algorithm is not Algorithm.MD5 or ours.qop != "auth" or not ours.cnonce:
            raise _Refused(401, www_authenticate=self.challenge(now))
        if ours.nc is None or ours.nc < 1:
            raise _Refused(400, "Bad Request (digest without nc)")
        if account is None or ours.username != user or account.sip_user != user:
            raise _Refused(403)
        a2 = hashlib.md5(f"REGISTER:{ours.uri}".encode()).hexdigest()  # noqa: S324
        expected = hashlib.md5(  # noqa: S324 - RFC 2617 §3.2.2.1
            f"{account.ha1}:{ours.nonce}:{ours.nc:08x}:{ours.cnonce}:auth:{a2}".encode()
        ).hexdigest()
        if not hmac.compare_digest(expected, ours.response.lower()):
            raise _Refused(403)
        if state == "stale":  # a right answer to an old nonce: §22.4 / RFC 2617 stale=true
            raise _Refused(401, www_authenticate=self.challenge(now, stale=True))
        if not self._count(ours.nonce, ours.nc, now):
            raise _Refused(401, www_authenticate=self.challenge(now))

    def _contacts(self, request: Request) -> list[tuple[str, int | None, str | None]] | None:
        """(URI, expires parameter, q) per Contact; None for ``*``; [] for a query."""
        expires_header = _delta(request.header("Expires"), "Expires")
        values = request.header_all("Contact")
        if any(v.strip() == "*" for v in values):
            if len(values) != 1 or expires_header != 0:
                raise _Refused(400, "Bad Request (Contact * needs Expires: 0 and no other Contact)")
            return None
        if len(values) > 16:
            raise _Refused(400, "Bad Request (too many Contacts)")
        out: list[tuple[str, int | None, str | None]] = []
        for value in values:
            try:
                addr = NameAddr.parse(value)
                uri = SipUri.parse(addr.uri)
            except ValueError:
                raise _Refused(400, "Bad Request (malformed Contact)") from None
            if uri.scheme not in ("sip", "sips"):
                raise _Refused(416)
            expires = _delta(param(addr.params, "expires"), "Contact expires")
            out.append((addr.uri, expires, param(addr.params, "q")))
        return out

    def _apply(
        self,
        request: Request,
        now: float,
        user: str,
        contacts: list[tuple[str, int | None, str | None]] | None,
    ) -> bool:
        self._purge(user, now)
        current = self.bindings.get(user, {})
        call_id = request.call_id or ""
        cseq = request.cseq.number if request.cseq else 0
        if contacts is None:  # Contact: *
            for b in current.values():
                if b.call_id == call_id and cseq <= b.cseq:
                    raise _Refused(500, "Server Internal Error (out-of-order REGISTER)")
            changed = bool(current)
            self.bindings.pop(user, None)
            return changed
        if not contacts:
            return False
        header = _delta(request.header("Expires"), "Expires")
        wanted: list[tuple[str, str, int, str | None]] = []
        for uri, param_expires, q in contacts:
            expires = param_expires if param_expires is not None else header
            if expires is None:
                expires = self.default_expires
            if 0 < expires < self.min_expires:
                raise _Refused(423, "Interval Too Brief", min_expires=str(self.min_expires))
            wanted.append((_contact_key(uri), uri, min(expires, self.max_expires), q))
        for key, _uri, _e, _q in wanted:
            held = current.get(key)
            if held is not None and held.call_id == call_id and cseq <= held.cseq:
                raise _Refused(500, "Server Internal Error (out-of-order REGISTER)")
        source = _source(request)
        updated = dict(current)
        for key, uri, expires, q in wanted:
            if expires == 0:
                updated.pop(key, None)
            else:
                updated[key] = Binding(uri, now + expires, call_id, cseq, source, q)
        while len(updated) > self.max_bindings:  # the binding that would lapse first goes
            oldest = min(updated, key=lambda k: updated[k].expires_at)
            del updated[oldest]
        if updated:
            self.bindings[user] = updated
        else:
            self.bindings.pop(user, None)
        return updated != current

    def _ok(self, request: Request, now: float, user: str, tag: str) -> Response:
        headers = [
            ("Contact", f"<{b.contact}>;expires={b.remaining(now)}") for b in self.lookup(user, now)
        ]
        headers.append(("Date", email.utils.formatdate(now, usegmt=True)))
        return make_response(request, 200, to_tag=tag, headers=headers)

    # -- queries ----------------------------------------------------------------------------------

    def _purge(self, user: str, now: float) -> None:
        held = self.bindings.get(user)
        if held is None:
            return
        live = {k: b for k, b in held.items() if b.expires_at > now}
        if live:
            self.bindings[user] = live
        else:
            del self.bindings[user]

    def lookup(self, user: str, now: float) -> list[Binding]:
        """The live contacts of ``user``, the most recently refreshed (longest to live) first."""
        self._purge(user, now)
        return sorted(self.bindings.get(user, {}).values(), key=lambda b: -b.expires_at)

    def expire(self, now: float) -> list[str]:
        """Drop every lapsed binding; the users who lost their last one."""
        gone = []
        for user in list(self.bindings):
            self._purge(user, now)
            if user not in self.bindings:
                gone.append(user)
        return gone

    def remove(self, users: Iterable[str]) -> None:
        """Forget every binding of ``users`` (a phone account deleted or its password changed)."""
        for user in users:
            self.bindings.pop(user, None)

    def restore(self, user: str, bindings: Iterable[Binding], now: float) -> None:
        """Put back ``user``'s bindings as they were stored (a restarted hub); lapsed ones are
        left out, at most ``max_bindings`` (the longest-lived) kept."""
        live = sorted((b for b in bindings if b.expires_at > now), key=lambda b: -b.expires_at)
        held = {_contact_key(b.contact): b for b in reversed(live[: self.max_bindings])}
        if held:
            self.bindings[user] = held
        else:
            self.bindings.pop(user, None)

    def next_expiry(self) -> float | None:
        return min(
            (b.expires_at for held in self.bindings.values() for b in held.values()), default=None
        )


def _source(request: Request) -> Address:
    try:
        via = request.top_via
    except ValueError:
        return ("", 0)
    return ("", 0) if via is None else via.response_address()
