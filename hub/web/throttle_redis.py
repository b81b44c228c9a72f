"""The login throttle's records in Redis, shared by every hub process (see ``hub.web.throttle``).

Keys (``cityhub:login:`` + a SHA-256 prefix, so usernames are not stored in the clear):
``p:<pair>`` and ``a:<account>`` are hashes ``{n, t}`` expiring ``forget_after`` after their last
failure; ``x:<address>`` is a sorted set of account hashes scored by failure time, pruned to
``address_window`` and expiring with it. A claim (check and record) and its settlement are small Lua
scripts, so each is atomic on the server; reading is one pipelined round trip.

A Redis outage never blocks a login: any fault (connection refused, timeout, a server error) makes
this process use its own ``MemoryThrottleStore`` for ``RETRY_AFTER`` seconds before Redis is tried
again, with one warning per outage (the URL and password are not logged). Meanwhile each process
throttles on its own, as a single process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hub.live.bus import redact
from hub.web.throttle import (
    AttemptKey,
    Claim,
    Failures,
    LoginPolicy,
    MemoryThrottleStore,
    Seen,
    ThrottleStore,
    Ticket,
)

log = logging.getLogger("cityhub.throttle")

T = TypeVar("T")

PREFIX = "cityhub:login:"
TIMEOUT = 0.5  # seconds for connecting and for each reply
RETRY_AFTER = 5.0  # seconds on the local store after a fault before Redis is tried again
FAULTS = (RedisError, OSError, TimeoutError)

# KEYS: pair, account, address set. ARGV: now, pair count seen, account count seen ("" = not part of
# the decision), address limit, address window (s), record ttl (ms), account member.
# Returns {1, prior entry or ""} when recorded, {0} when the records changed or the set is full.
CLAIM = """
local now = tonumber(ARGV[1])
local pn = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if pn ~= tonumber(ARGV[2]) then return {0} end
local an = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
if ARGV[3] ~= '' and an ~= tonumber(ARGV[3]) then return {0} end
local window = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local prior = redis.call('ZSCORE', KEYS[3], ARGV[7])
if not prior and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return {0} end
redis.call('HSET', KEYS[1], 'n', pn + 1, 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('HSET', KEYS[2], 'n', an + 1, 't', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[7])
redis.call('PEXPIRE', KEYS[3], math.ceil(window * 1000))
return {1, prior or ''}
"""

# KEYS: pair, account, address set. ARGV: "ok" or "cancel", account member, prior entry ("" = none).
SETTLE = """
if ARGV[1] == 'ok' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[2])
else
  if tonumber(redis.call('HGET', KEYS[1], 'n') or '0') <= 1 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HINCRBY', KEYS[1], 'n', -1)
  end
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[3], ARGV[2])
  else
    redis.call('ZADD', KEYS[3], 'XX', ARGV[3], ARGV[2])
  end
end
if tonumber(redis.call('HGET', KEYS[2], 'n') or '0') <= 1 then
  redis.call('DEL', KEYS[2])
else
  redis.call('HINCRBY', KEYS[2], 'n', -1)
end
return 1
"""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _keys(key: AttemptKey) -> tuple[list[str], str]:
    member = _digest(key.account)
    keys = [
        f"{PREFIX}p:{_digest(key.account, key.address)}",
        f"{PREFIX}a:{member}",
        f"{PREFIX}x:{_digest(key.address)}",
    ]
    return keys, member


def _failures(raw: list[Any]) -> Failures:
    n, t = raw
    return Failures(int(n), float(t)) if n is not None and t is not None else Failures()


class RedisThrottleStore:
    """Records in Redis, this process's memory during an outage (see the module docstring)."""

    name = "redis"

    def __init__(self, url: str, policy: LoginPolicy | None = None) -> None:
        self.policy = policy or LoginPolicy()
        try:
            self._password = str(parse_url(url).get("password") or "")
        except ValueError as exc:
            raise ValueError(f"bad Redis URL {redact(url)}: {exc}") from None
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )
        self._claim = self._redis.register_script(CLAIM)
        self._settle = self._redis.register_script(SETTLE)
        self.local = MemoryThrottleStore(self.policy)
        self._down_until: float | None = None  # loop time; None while Redis is believed up

    @property
    def healthy(self) -> bool:
        return self._down_until is None

    async def _call(
        self, op: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        loop = asyncio.get_running_loop()
        if self._down_until is not None and loop.time() < self._down_until:
            return await fallback()
        try:
            async with asyncio.timeout(2 * TIMEOUT):
                result = await op()
        except FAULTS as exc:
            if self._down_until is None:
                reason = f"{type(exc).__name__}: {exc}"
                if self._password:
                    reason = reason.replace(self._password, "****")
                log.warning(
                    "login throttle: Redis unavailable (%s); this process counts on its own "
                    "until it is back",
                    reason,
                )
            self._down_until = loop.time() + RETRY_AFTER
            return await fallback()
        if self._down_until is not None:
            self._down_until = None
            log.info("login throttle: Redis is back; counts are shared again")
        return result

    async def read(self, key: AttemptKey, now: float) -> Seen:
        async def remote() -> Seen:
            (pair_key, account_key, address_key), member = _keys(key)
            pipe = self._redis.pipeline(transaction=False)
            pipe.hmget(pair_key, ["n", "t"])
            pipe.hmget(account_key, ["n", "t"])
            pipe.zremrangebyscore(address_key, "-inf", now - self.policy.address_window)
            pipe.zrange(address_key, 0, 0, withscores=True)
            pipe.zcard(address_key)
            pipe.zscore(address_key, member)
            pair, account, _, oldest, count, entry = await pipe.execute()
            return Seen(
                pair=_failures(pair),
                account=_failures(account),
                address_accounts=int(count),
                address_oldest=float(oldest[0][1]) if oldest else 0.0,
                address_has_account=entry is not None,
            )

        return await self._call(remote, lambda: self.local.read(key, now))

    async def claim(self, key: AttemptKey, claim: Claim, now: float) -> Ticket | None:
        async def remote() -> Ticket | None:
            keys, member = _keys(key)
            args: list[str | int] = [
                repr(now),
                claim.pair_count,
                "" if claim.account_count is None else claim.account_count,
                claim.address_limit,
                repr(self.policy.address_window),
                int(self.policy.forget_after * 1000),
                member,
            ]
            reply = await self._claim(keys=keys, args=args)
            if int(reply[0]) != 1:
                return None
            prior = reply[1]
            return Ticket(key=key, prior_address_entry=float(prior) if prior else None)

        async def local() -> Ticket | None:
            ticket = await self.local.claim(key, claim, now)
            return None if ticket is None else Ticket(ticket.key, ticket.prior_address_entry, True)

        return await self._call(remote, local)

    async def _settle_remote(self, ticket: Ticket, mode: str) -> None:
        keys, member = _keys(ticket.key)
        prior = "" if ticket.prior_address_entry is None else repr(ticket.prior_address_entry)

        async def remote() -> None:
            await self._settle(keys=keys, args=[mode, member, prior])

        async def skip() -> None:  # the claim stays in Redis (a failure more), as after a crash
            return None

        await self._call(remote, skip)

    async def succeeded(self, ticket: Ticket) -> None:
        if ticket.local:
            await self.local.succeeded(ticket)
        else:
            await self._settle_remote(ticket, "ok")

    async def cancel(self, ticket: Ticket) -> None:
        if ticket.local:
            await self.local.cancel(ticket)
        else:
            await self._settle_remote(ticket, "cancel")

    async def close(self) -> None:
        await self.local.close()
        with contextlib.suppress(*FAULTS):
            await asyncio.wait_for(self._redis.aclose(), 2 * TIMEOUT)


def create_throttle_store(redis_url: str, policy: LoginPolicy) -> ThrottleStore:
    """This process's memory (``redis_url`` empty), else Redis shared by every process."""
    return RedisThrottleStore(redis_url, policy) if redis_url else MemoryThrottleStore(policy)
