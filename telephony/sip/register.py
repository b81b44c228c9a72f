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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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
