"""REGISTER refresh and retry arithmetic (RFC 3261 §10.2, RFC 5626 §4.5), pure: no clock, no random.

Theory of operation
-------------------
- The registrar grants an interval in the 200 OK: the ``expires`` parameter of our Contact wins over
  the ``Expires`` header (RFC 3261 §10.2.4), and if neither is present the interval we asked for stands.
  ``granted_expires`` does that choice on already-extracted values, ``parse_delta_seconds`` checks one.
- ``RefreshPolicy.refresh_at(granted, now)``: refresh at ``now`` plus the earlier of ``granted - margin``
  (32 s by default, the same margin as RFC 3261 Timer F so a retransmitted REGISTER still lands before
  the binding lapses) and half the interval, but never sooner than ``floor`` seconds (a registrar that
  grants 1 s must not turn us into a REGISTER storm). ``granted == 0`` is a removed binding: None.
- ``423 Interval Too Brief`` carries ``Min-Expires``: ``expires_after_423`` is what to ask next.
- ``BackoffPolicy.retry_delay(failures, random)`` after a failed REGISTER (timeout, 5xx, 403…):
  RFC 5626 §4.5's ``W = min(max_time, base_time * 2**failures)`` then a delay drawn uniformly in
  [W/2, W) from the injected ``random`` (a ``() -> float`` in [0, 1)), and never before a
  ``Retry-After`` the registrar asked for (itself capped so a hostile value cannot park us for days).
- ``read_answer(response, contact)`` reduces a final response to REGISTER to a ``RegisterAnswer``:
  the status, the interval granted to *our* Contact (the 200 lists every binding of the AOR, so ours
  is found by comparing URIs, §10.2.4), ``Min-Expires`` and ``Retry-After``.
- ``RegisterMachine`` is one registration's decisions, driven by ``sending(now)`` (a REGISTER goes
  out: the Expires to ask for) and ``received(answer, now)`` (its final answer, or None for timer F /
  a transport error) which returns a ``Step``: ``AUTHENTICATE`` (a 401/407: answer the challenge and
  send again; at most ``MAX_CHALLENGES`` per attempt so a registrar refusing our credentials cannot
  loop us), ``SEND`` (a 423 raised the interval: send again now), ``WAIT`` (nothing before
  ``next_at``: the refresh, or the backoff retry after a failure — it never gives up), ``DONE`` (the
  unregistration after ``stop()`` ended, either way). The state follows ``TRANSITIONS``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from telephony.sip.dialog import SipUri
from telephony.sip.headers import NameAddr, param
from telephony.sip.message import Response

MAX_DELTA_SECONDS = 2**32 - 1  # RFC 3261 §20.19/§20.33: values above are treated as this
DEFAULT_EXPIRES = 3600  # RFC 3261 §10.2.1.1: the registrar default we assume when none is asked
_DELTA = re.compile(r"[0-9]{1,20}")


def parse_delta_seconds(text: str) -> int:
    """``delta-seconds`` (1*DIGIT) with surrounding whitespace allowed; ValueError otherwise."""
    stripped = text.strip(" \t")
    if not _DELTA.fullmatch(stripped):
        raise ValueError(f"not delta-seconds: {text[:40]!r}")
    return min(int(stripped), MAX_DELTA_SECONDS)


def granted_expires(
    *, contact_expires: int | None, expires_header: int | None, requested: int
) -> int:
    """The interval the registrar granted for our binding: Contact ``expires`` param, else the
    ``Expires`` header, else what we requested (RFC 3261 §10.2.4)."""
    value = contact_expires if contact_expires is not None else expires_header
    if value is None:
        value = requested
    if value < 0:
        raise ValueError("negative expires")
    return min(value, MAX_DELTA_SECONDS)


def expires_after_423(min_expires: int, requested: int) -> int:
    """The Expires to ask for after ``423 Interval Too Brief`` with ``Min-Expires`` (§10.2.8)."""
    if min_expires < 0 or requested < 0:
        raise ValueError("negative expires")
    return min(max(min_expires, requested), MAX_DELTA_SECONDS)


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    margin: float = 32.0
    floor: float = 5.0

    def __post_init__(self) -> None:
        if self.margin < 0 or self.floor <= 0:
            raise ValueError("margin must be >= 0 and floor > 0")

    def refresh_delay(self, granted: int) -> float | None:
        """Seconds after the 200 OK to send the refresh; None for a removed binding (0)."""
        if granted < 0:
            raise ValueError("negative expires")
        if granted == 0:
            return None
        return max(self.floor, min(granted - self.margin, granted / 2))

    def refresh_at(self, granted: int, now: float) -> float | None:
        """The absolute time (on the caller's clock, ``now`` being when the 200 OK arrived)."""
        delay = self.refresh_delay(granted)
        return None if delay is None else now + delay

    def expires_at(self, granted: int, now: float) -> float:
        """When the registrar forgets the binding if no refresh succeeds."""
        return now + granted


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """RFC 5626 §4.5: ``base_time`` 30 s when every flow failed (90 s when some still work),
    ``max_time`` 1800 s."""

    base_time: float = 30.0
    max_time: float = 1800.0
    max_retry_after: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.base_time <= self.max_time:
            raise ValueError("need 0 < base_time <= max_time")

    def ceiling(self, failures: int) -> float:
        """``W`` for the ``failures``-th consecutive failure (1 for the first)."""
        if failures < 1:
            raise ValueError("failures counts from 1")
        exponent = min(failures, 64)  # 2**64 * base is far past any max_time
        return min(self.max_time, self.base_time * 2.0**exponent)

    def retry_delay(
        self,
        failures: int,
        random: Callable[[], float],
        *,
        retry_after: float | None = None,
    ) -> float:
        """Seconds to wait before the next REGISTER after ``failures`` consecutive failures."""
        ceiling = self.ceiling(failures)
        draw = random()
        if not 0.0 <= draw < 1.0:
            raise ValueError("random() must return a float in [0, 1)")
        delay = ceiling * (0.5 + 0.5 * draw)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


# ---- one registration ---------------------------------------------------------------------------

DEFAULT_REFRESH = RefreshPolicy()
DEFAULT_BACKOFF = BackoffPolicy()

MAX_CHALLENGES = 2  # per attempt: the first challenge, and one more only if the nonce was stale
MAX_TOO_BRIEF = (
    2  # per attempt: 423s followed (a registrar raising Min-Expires each time is broken)
)


@dataclass(frozen=True, slots=True)
class RegisterAnswer:
    """What a final response to REGISTER decides; ``status`` None: none came (timer F, ICMP)."""

    status: int | None
    granted: int | None = None  # 2xx: the interval for our Contact (else the Expires header)
    min_expires: int | None = None  # 423
    retry_after: int | None = None


def _same_contact(a: str, b: str) -> bool:
    """§10.2.4 / §19.1.4 in short: scheme, user and port equal, the host case-insensitively."""
    try:
        x, y = SipUri.parse(a), SipUri.parse(b)
    except ValueError:
        return False
    return (x.scheme, x.user, x.host.lower(), x.address()[1]) == (
        y.scheme,
        y.user,
        y.host.lower(),
        y.address()[1],
    )


def _delta(value: str | None) -> int | None:
    if value is None:
        return None
    try:  # Retry-After may carry a comment and parameters after the number (§20.33)
        return parse_delta_seconds(re.split(r"[;(]", value, maxsplit=1)[0])
    except ValueError:
        return None


def read_answer(response: Response | None, contact: str, *, requested: int) -> RegisterAnswer:
    """The ``RegisterAnswer`` for ``response`` to our REGISTER whose Contact URI is ``contact``."""
    if response is None:
        return RegisterAnswer(None)
    granted = None
    if 200 <= response.status < 300:
        ours = None
        for value in response.header_all("Contact"):
            try:
                addr = NameAddr.parse(value)
            except ValueError:
                continue
            if _same_contact(addr.uri, contact):
                ours = _delta(param(addr.params, "expires"))
                break
        granted = granted_expires(
            contact_expires=ours,
            expires_header=_delta(response.header("Expires")),
            requested=requested,
        )
    return RegisterAnswer(
        response.status,
        granted=granted,
        min_expires=_delta(response.header("Min-Expires")),
        retry_after=_delta(response.header("Retry-After")),
    )


class RegState(enum.Enum):
    UNREGISTERED = "unregistered"  # no binding (before the first REGISTER, after stop)
    REGISTERING = "registering"  # a REGISTER is out and no binding is known
    REGISTERED = "registered"  # the registrar holds our binding until ``expires_at``
    FAILED = "failed"  # the last attempt failed; a retry is due at ``next_at``


class RegEvent(enum.Enum):
    SENT = "sent"  # a REGISTER went out (first, refresh, retry, or after a challenge or 423)
    GRANTED = "granted"  # a 2xx granting an interval above zero
    FAILED = "failed"  # no final answer, a refusal, credentials refused, a 2xx granting 0
    REMOVED = "removed"  # the unregistration ended (or stop with no binding to remove)


R, V = RegState, RegEvent
TRANSITIONS: dict[tuple[RegState, RegEvent], RegState] = {
    (R.UNREGISTERED, V.SENT): R.REGISTERING,
    (R.REGISTERING, V.SENT): R.REGISTERING,
    (R.FAILED, V.SENT): R.REGISTERING,
    (R.REGISTERED, V.SENT): R.REGISTERED,  # a refresh: the binding holds while it is out
    (R.REGISTERING, V.GRANTED): R.REGISTERED,
    (R.REGISTERED, V.GRANTED): R.REGISTERED,
    (R.REGISTERING, V.FAILED): R.FAILED,
    (R.REGISTERED, V.FAILED): R.FAILED,
    (R.UNREGISTERED, V.FAILED): R.FAILED,  # e.g. the registrar's name does not resolve
    (R.FAILED, V.FAILED): R.FAILED,
} | {(state, V.REMOVED): R.UNREGISTERED for state in RegState}


class Step(enum.Enum):
    AUTHENTICATE = "authenticate"  # answer the response's challenge, then send again at once
    SEND = "send"  # send again at once (the Expires raised after a 423)
    WAIT = "wait"  # nothing to send before ``next_at``
    DONE = "done"  # the unregistration is over


class RegisterMachine:
    """The decisions of one registration (one AOR, one Contact, one Call-ID). Times are the
    caller's clock; ``random`` is the backoff's draw in [0, 1)."""

    def __init__(
        self,
        expires: int,
        *,
        random: Callable[[], float],
        refresh: RefreshPolicy = DEFAULT_REFRESH,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
    ) -> None:
        if not 0 < expires <= MAX_DELTA_SECONDS:
            raise ValueError("expires must be positive")
        self.expires = expires  # what the next REGISTER asks for (raised by a 423)
        self.refresh = refresh
        self.backoff = backoff
        self.random = random
        self.state = RegState.UNREGISTERED
        self.expires_at: float | None = None  # when the binding we hold lapses
        self.granted: int | None = None
        self.next_at: float | None = None  # when the next REGISTER is due
        self.failures = 0  # consecutive failed attempts
        self.last_status: int | None = None
        self.removing = False
        self.challenges = 0  # in this attempt
        self._too_brief = 0

    def _apply(self, event: RegEvent) -> None:
        key = (self.state, event)
        if key not in TRANSITIONS:
            raise ValueError(f"{event.value} is illegal in {self.state.value}")
        self.state = TRANSITIONS[key]

    def start(self, now: float) -> None:
        """Register as soon as possible."""
        self.next_at = now

    @property
    def retried(self) -> bool:
        """The challenge to answer came to a request that already answered one in this attempt
        (``DigestClient.challenged(retried=…)``)."""
        return self.challenges > 1

    def sending(self, now: float) -> int:
        """A REGISTER goes out now: the Expires it carries (0 when unregistering)."""
        if not self.removing:
            self._apply(RegEvent.SENT)
        self.next_at = None
        return 0 if self.removing else self.expires

    def _end_attempt(self) -> Step:
        """The attempt (first, refresh, retry, unregistration) is over: its counts restart."""
        self.challenges = 0
        self._too_brief = 0
        return Step.WAIT

    def received(self, answer: RegisterAnswer, now: float) -> Step:
        """The final answer to the REGISTER last sent (``RegisterAnswer(None)``: none came)."""
        status = answer.status
        self.last_status = status
        if status in (401, 407) and self.challenges < MAX_CHALLENGES:
            self.challenges += 1
            return Step.AUTHENTICATE
        if self.removing:
            return self._removed()
        if status is not None and 200 <= status < 300 and answer.granted:
            self._apply(RegEvent.GRANTED)
            self.granted = answer.granted
            self.expires_at = self.refresh.expires_at(answer.granted, now)
            self.next_at = self.refresh.refresh_at(answer.granted, now)
            self.failures = 0
            return self._end_attempt()
        if status == 423 and answer.min_expires is not None and self._too_brief < MAX_TOO_BRIEF:
            wanted = expires_after_423(answer.min_expires, self.expires)
            if wanted > self.expires:
                self._too_brief += 1
                self.expires = wanted
                return Step.SEND
        return self.failed(now, retry_after=answer.retry_after)

    def failed(self, now: float, *, retry_after: float | None = None) -> Step:
        """The attempt failed (also: a challenge that could not be answered)."""
        if self.removing:
            return self._removed()
        self._apply(RegEvent.FAILED)
        self.failures += 1
        if self.expires_at is not None and self.expires_at <= now:
            self.expires_at = None  # the old binding has lapsed
        delay = self.backoff.retry_delay(self.failures, self.random, retry_after=retry_after)
        self.next_at = now + delay
        return self._end_attempt()

    def stop(self, now: float) -> bool:
        """Stop refreshing; True if an unregistration (Expires: 0) should be sent: we hold a binding
        or a REGISTER is out whose 2xx we may have missed."""
        self.removing = True
        self.next_at = None
        held = self.expires_at is not None and self.expires_at > now
        self._end_attempt()
        if held or self.state is RegState.REGISTERING:
            return True
        self._removed()
        return False

    def _removed(self) -> Step:
        self._end_attempt()
        self._apply(RegEvent.REMOVED)
        self.expires_at = None
        self.granted = None
        self.next_at = None
        return Step.DONE
