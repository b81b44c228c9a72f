"""Login throttling: growing delays instead of a lockout (the policy is pure; time comes in as ``now``).

Theory of operation. A command center's seats usually reach the hub from one address (a NAT or a
reverse proxy), so nothing here may let one person's failures stop everyone behind that address, nor
let an attacker elsewhere stop a seat from signing in. Three records are kept, each forgotten
``forget_after`` seconds after its last failure (the address set: each entry ``address_window``
seconds after it was written):

- **the pair** (account, address): ``n`` failures, the last at ``t``. The first ``pair_free`` failures
  cost nothing; from then on the next attempt from that address for that account waits
  ``base_delay × 2^(n − pair_free)`` seconds after ``t`` (1 s, 2 s, 4 s … with the defaults), at most
  ``max_delay`` (15 min). During that wait every attempt of the pair is refused with 429 before the
  password is looked at, the correct one included: otherwise the wait would not slow guessing.
- **the account** (from every address): ``n`` failures, the last at ``t``. Past ``account_free``
  failures, a pair that is itself in its delay (``pair_free`` failures or more) also waits
  ``base_delay × 2^(n − account_free)`` (at most ``max_delay``) after the account's last failure, so
  guesses spread over many addresses share one slow lane once each address has used its free tries.
  A pair with fewer than ``pair_free`` failures never waits for the account: **the correct password
  from an address with a clean record for the account (fewer than ``pair_free`` failures) is
  accepted however hard the account is attacked from elsewhere**, unless that address is itself over
  its budget below (the cost: each fresh address gets ``pair_free`` guesses at an account).
- **the address**: the distinct accounts that failed from it in the last ``address_window`` seconds.
  When there are ``address_accounts`` of them (30 by default), an attempt for any *other* account from
  that address is refused until the oldest entry leaves the window; accounts already in the set go on
  under their pair and account rules. A mistyping colleague fills one entry; spraying many accounts
  fills them all.

A success clears the pair and removes the account from the address set; it does not clear the
account's count (else the real user signing in would reset an attacker's delay).

Attempts are recorded *before* the password is verified (a claim), so concurrent requests cannot slip
through a delay together: a claim succeeds only if the pair's count (and, for a pair in its delay,
the account's count) is still what the decision was made on, and the address set still has room.
A claim that loses a race is decided again on fresh records. After verification the claim is either
kept (wrong password: it is the failure), settled as a success, or cancelled (the check itself failed,
e.g. the database was down: neither a failure nor a success).

The state lives behind ``ThrottleStore``: ``MemoryThrottleStore`` for one process (bounded: at most
``max_keys`` records of each kind, the least recently used dropped), ``RedisThrottleStore``
(``hub.web.throttle_redis``) when several processes share ``CITYHUB_REDIS_URL``.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
from collections import OrderedDict
from typing import Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclasses.dataclass(frozen=True, slots=True)
class Failures:
    """A counter of failures and the time of the last one (``count == 0``: no record)."""

    count: int = 0
    last: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptKey:
    account: str  # the username as typed, lower-cased
    address: str  # ``throttle_address(client)``


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """What a store holds for one attempt's account and address."""

    pair: Failures = Failures()
    account: Failures = Failures()
    address_accounts: int = 0  # distinct accounts with failures from the address in the window
    address_oldest: float = 0.0  # when the oldest of those failed (0: none)
    address_has_account: bool = False  # this attempt's account is one of them


class Scope(enum.StrEnum):
    PAIR = "pair"
    ACCOUNT = "account"
    ADDRESS = "address"


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    wait: float  # seconds, > 0
    scope: Scope

    @property
    def retry_after(self) -> int:
        """Whole seconds for ``Retry-After`` (at least 1)."""
        return max(1, math.ceil(self.wait - 1e-3))  # a float's last bits are no second


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """Record this attempt as a failure, provided the records are still as they were seen."""

    pair_count: int
    account_count: int | None  # None: the account's count is not part of the decision
    address_limit: int  # add the account to the address set only below this many others


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """A granted claim, to be settled (``succeeded``/``cancel``) or kept as the failure."""

    key: AttemptKey
    prior_address_entry: float | None  # the account's entry in the address set before the claim
    local: bool = False  # made in a fallback store (see ``RedisThrottleStore``)


@dataclasses.dataclass(frozen=True, slots=True)
class LoginPolicy:
    pair_free: int = 5
    account_free: int = 20
    base_delay: float = 1.0
    max_delay: float = 900.0
    forget_after: float = 3600.0
    address_accounts: int = 30
    address_window: float = 600.0

    def __post_init__(self) -> None:
        if self.pair_free < 1 or self.account_free < 1 or self.address_accounts < 1:
            raise ValueError("login throttle budgets must be at least 1")
        if not 0 < self.base_delay <= self.max_delay <= self.forget_after:
            raise ValueError("login throttle needs 0 < base_delay <= max_delay <= forget_after")
        if self.address_window <= 0:
            raise ValueError("login throttle address_window must be positive")

    def _delay(self, failures: int, free: int) -> float:
        if failures < free:
            return 0.0
        steps = failures - free
        if steps >= 64:  # 2**64 × any base exceeds any sane maximum
            return self.max_delay
        return min(self.base_delay * 2.0**steps, self.max_delay)

    def pair_delay(self, failures: int) -> float:
        """Seconds after the pair's last failure before its next attempt."""
        return self._delay(failures, self.pair_free)

    def account_delay(self, failures: int) -> float:
        """Seconds after the account's last failure before a pair in its delay may try again."""
        return self._delay(failures, self.account_free)

    def check(self, seen: Seen, now: float) -> Refusal | Claim:
        """Refuse the attempt (with how long to wait) or say what to claim to let it through."""
        waits: list[tuple[float, Scope]] = []
        if not seen.address_has_account and seen.address_accounts >= self.address_accounts:
            waits.append((seen.address_oldest + self.address_window, Scope.ADDRESS))
        in_delay = seen.pair.count >= self.pair_free
        if in_delay:
            waits.append((seen.pair.last + self.pair_delay(seen.pair.count), Scope.PAIR))
            if seen.account.count >= self.account_free:
                until = seen.account.last + self.account_delay(seen.account.count)
                waits.append((until, Scope.ACCOUNT))
        if waits:
            until, scope = max(waits, key=lambda w: w[0])
            if until > now:
                return Refusal(until - now, scope)
        return Claim(
            pair_count=seen.pair.count,
            account_count=seen.account.count if in_delay else None,
            address_limit=self.address_accounts,
        )


def throttle_address(client: str) -> str:
    """The address a client is throttled under: an IPv6 client's /64 network (one subscriber gets
    a whole /64), an IPv4 address (IPv4-mapped IPv6 included) as itself, anything else verbatim."""
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ThrottleStore(Protocol):
    """Where the records live. ``claim`` is atomic: it checks and records in one step."""

    name: str
    policy: LoginPolicy

    async def read(self, key: AttemptKey, now: float) -> Seen: ...

    async def claim(self, key: AttemptKey, claim: Claim, now: float) -> Ticket | None:
        """Record the attempt as a failure if the records still match ``claim``; None if not."""

    async def succeeded(self, ticket: Ticket) -> None:
        """The password was right: clear the pair, undo the claim on the account, drop the account
        from the address set."""

    async def cancel(self, ticket: Ticket) -> None:
        """Neither failure nor success: undo the claim."""

    async def close(self) -> None: ...


class MemoryThrottleStore:
    """One process's records, in dictionaries (see the module docstring)."""

    name = "memory"

    def __init__(self, policy: LoginPolicy | None = None, *, max_keys: int = 100_000) -> None:
        self.policy = policy or LoginPolicy()
        self.max_keys = max_keys
        self._pairs: OrderedDict[tuple[str, str], Failures] = OrderedDict()
        self._accounts: OrderedDict[str, Failures] = OrderedDict()
        self._addresses: OrderedDict[str, dict[str, float]] = OrderedDict()

    def _get(self, table: OrderedDict[K, Failures], key: K, now: float) -> Failures:
        rec = table.get(key)
        if rec is None:
            return Failures()
        if now - rec.last >= self.policy.forget_after:
            del table[key]
            return Failures()
        return rec

    def _put(self, table: OrderedDict[K, V], key: K, value: V) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.max_keys:
            table.popitem(last=False)

    def _entries(self, address: str, now: float) -> dict[str, float]:
        entries = self._addresses.get(address)
        if entries is None:
            return {}
        horizon = now - self.policy.address_window
        for account in [a for a, t in entries.items() if t <= horizon]:
            del entries[account]
        if not entries:
            del self._addresses[address]
        return entries

    async def read(self, key: AttemptKey, now: float) -> Seen:
        entries = self._entries(key.address, now)
        return Seen(
            pair=self._get(self._pairs, (key.account, key.address), now),
            account=self._get(self._accounts, key.account, now),
            address_accounts=len(entries),
            address_oldest=min(entries.values(), default=0.0),
            address_has_account=key.account in entries,
        )

    async def claim(self, key: AttemptKey, claim: Claim, now: float) -> Ticket | None:
        pair = self._get(self._pairs, (key.account, key.address), now)
        account = self._get(self._accounts, key.account, now)
        entries = self._entries(key.address, now)
        prior = entries.get(key.account)
        if (
            pair.count != claim.pair_count
            or (claim.account_count is not None and account.count != claim.account_count)
            or (prior is None and len(entries) >= claim.address_limit)
        ):
            return None
        self._put(self._pairs, (key.account, key.address), Failures(pair.count + 1, now))
        self._put(self._accounts, key.account, Failures(account.count + 1, now))
        self._put(self._addresses, key.address, entries)
        entries[key.account] = now
        return Ticket(key=key, prior_address_entry=prior)

    def _undo_account(self, account: str) -> None:
        rec = self._accounts.get(account)
        if rec is not None:
            if rec.count <= 1:
                del self._accounts[account]
            else:
                self._accounts[account] = Failures(rec.count - 1, rec.last)

    async def succeeded(self, ticket: Ticket) -> None:
        key = ticket.key
        self._pairs.pop((key.account, key.address), None)
        self._undo_account(key.account)
        entries = self._addresses.get(key.address)
        if entries is not None:
            entries.pop(key.account, None)
            if not entries:
                del self._addresses[key.address]

    async def cancel(self, ticket: Ticket) -> None:
        key = ticket.key
        pair = self._pairs.get((key.account, key.address))
        if pair is not None:
            if pair.count <= 1:
                del self._pairs[(key.account, key.address)]
            else:
                self._pairs[(key.account, key.address)] = Failures(pair.count - 1, pair.last)
        self._undo_account(key.account)
        entries = self._addresses.get(key.address)
        if entries is not None:
            if ticket.prior_address_entry is None:
                entries.pop(key.account, None)
            elif key.account in entries:
                entries[key.account] = ticket.prior_address_entry
            if not entries:
                del self._addresses[key.address]

    async def close(self) -> None:
        self._pairs.clear()
        self._accounts.clear()
        self._addresses.clear()


CLAIM_TRIES = 5  # claims lost to concurrent attempts before an attempt is told to retry


async def admit(store: ThrottleStore, key: AttemptKey, now: float) -> Ticket | Refusal:
    """Decide on fresh records and claim, again while claims lose races (at most ``CLAIM_TRIES``
    times, then a one-second refusal)."""
    for _ in range(CLAIM_TRIES):
        verdict = store.policy.check(await store.read(key, now), now)
        if isinstance(verdict, Refusal):
            return verdict
        ticket = await store.claim(key, verdict, now)
        if ticket is not None:
            return ticket
    return Refusal(1.0, Scope.PAIR)
