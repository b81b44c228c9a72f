"""Login throttling (``hub.web.throttle``): the pure policy, the stores, the client address behind
trusted proxies (``hub.web.forwarded``), and the login API as a command center behind one address
sees it; the records shared between two hubs through a real Redis, and a Redis outage."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from hub.core.errors import TooManyRequests, Unauthenticated
from hub.demo import DEMO_USERS
from hub.settings import Settings, SettingsError
from hub.state import HubState
from hub.web import throttle_redis
from hub.web.app import create_app
from hub.web.auth import Authenticator, login_policy
from hub.web.forwarded import client_address, parse_address, parse_networks
from hub.web.throttle import (
    AttemptKey,
    Claim,
    Failures,
    LoginPolicy,
    MemoryThrottleStore,
    Refusal,
    Scope,
    Seen,
    Ticket,
    admit,
    throttle_address,
)
from hub.web.throttle_redis import RedisThrottleStore
from storage.errors import StorageUnavailable
from tests.redis_fixture import RedisServer, redis_running, redis_server  # noqa: F401

POLICY = (
    LoginPolicy()
)  # the defaults: 5 free, 1 s doubling to 15 min, 20 per account, 30 per address
T0 = 1_000_000.0


def pw(username: str) -> str:
    return DEMO_USERS[username][1]


# -- the policy ------------------------------------------------------------------------------------


class TestPolicy:
    def test_delays_grow_from_one_second_and_stop_at_fifteen_minutes(self) -> None:
        delays = [POLICY.pair_delay(n) for n in range(20)]
        assert delays[:5] == [0.0] * 5
        assert delays[5:15] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        assert delays[15:] == [900.0] * 5
        assert POLICY.pair_delay(10_000) == 900.0
        assert POLICY.account_delay(19) == 0.0 and POLICY.account_delay(20) == 1.0

    def test_free_failures_then_a_delay_after_the_last_one(self) -> None:
        for n in range(5):
            assert isinstance(POLICY.check(Seen(pair=Failures(n, T0)), T0), Claim)
        refusal = POLICY.check(Seen(pair=Failures(6, T0)), T0 + 0.5)
        assert refusal == Refusal(1.5, Scope.PAIR) and refusal.retry_after == 2
        assert isinstance(POLICY.check(Seen(pair=Failures(6, T0)), T0 + 2.0), Claim)

    def test_account_under_attack_does_not_refuse_an_address_with_a_clean_record(self) -> None:
        attacked = Failures(500, T0)  # the account failed a moment ago, many times, elsewhere
        for pair_failures in range(5):
            verdict = POLICY.check(Seen(pair=Failures(pair_failures, T0), account=attacked), T0)
            assert isinstance(verdict, Claim)
            assert verdict.account_count is None  # the account's count is not part of it
        # An address that has used its free tries shares the account's slow lane.
        refusal = POLICY.check(Seen(pair=Failures(5, T0 - 60), account=attacked), T0 + 1)
        assert refusal == Refusal(899.0, Scope.ACCOUNT)
        verdict = POLICY.check(Seen(pair=Failures(5, T0 - 60), account=attacked), T0 + 900)
        assert isinstance(verdict, Claim) and verdict.account_count == 500

    def test_address_budget_counts_distinct_accounts(self) -> None:
        full = Seen(address_accounts=30, address_oldest=T0)
        refusal = POLICY.check(full, T0 + 100)
        assert refusal == Refusal(500.0, Scope.ADDRESS)
        # An account already among the thirty goes on under its own rules.
        assert isinstance(
            POLICY.check(dataclasses.replace(full, address_has_account=True), T0 + 100), Claim
        )
        assert isinstance(POLICY.check(dataclasses.replace(full, address_accounts=29), T0), Claim)
        assert isinstance(POLICY.check(full, T0 + 600), Claim)  # the oldest left the window

    def test_longest_wait_wins(self) -> None:
        seen = Seen(pair=Failures(14, T0), address_accounts=30, address_oldest=T0 - 590)
        assert POLICY.check(seen, T0) == Refusal(512.0, Scope.PAIR)

    def test_bad_budgets_are_refused(self) -> None:
        with pytest.raises(ValueError):
            LoginPolicy(pair_free=0)
        with pytest.raises(ValueError):
            LoginPolicy(max_delay=7200.0, forget_after=3600.0)

    def test_settings_feed_the_policy(self) -> None:
        s = Settings(login_max_attempts=3, login_window_seconds=120)
        assert login_policy(s) == LoginPolicy(pair_free=3, address_window=120.0)


class TestThrottleAddress:
    def test_ipv6_clients_are_throttled_per_64(self) -> None:
        assert throttle_address("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
        assert throttle_address("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
        assert throttle_address("2001:db8:1:3::1") == "2001:db8:1:3::/64"

    def test_ipv4_and_others(self) -> None:
        assert throttle_address("203.0.113.5") == "203.0.113.5"
        assert throttle_address("::ffff:203.0.113.5") == "203.0.113.5"
        assert throttle_address("testclient") == "testclient"
        assert throttle_address("") == ""


# -- the memory store -------------------------------------------------------------------------------

KEY = AttemptKey("seat1", "10.0.0.1")


async def fail(store: MemoryThrottleStore, key: AttemptKey, now: float) -> None:
    ticket = await admit(store, key, now)
    assert isinstance(ticket, Ticket), ticket  # kept: the failure


class TestMemoryStore:
    async def test_a_claim_records_a_failure_and_a_stale_claim_loses(self) -> None:
        store = MemoryThrottleStore()
        seen = await store.read(KEY, T0)
        claim = POLICY.check(seen, T0)
        assert isinstance(claim, Claim)
        assert await store.claim(KEY, claim, T0) is not None
        assert await store.claim(KEY, claim, T0) is None  # decided on records that changed
        after = await store.read(KEY, T0)
        assert after.pair == Failures(1, T0) and after.account == Failures(1, T0)
        assert after.address_accounts == 1 and after.address_has_account

    async def test_a_full_address_set_refuses_a_claim_for_another_account(self) -> None:
        store = MemoryThrottleStore()
        for i in range(30):
            await fail(store, AttemptKey(f"user{i}", "10.0.0.1"), T0)
        stale = Claim(pair_count=0, account_count=None, address_limit=30)
        assert await store.claim(AttemptKey("seat1", "10.0.0.1"), stale, T0) is None
        assert await store.claim(AttemptKey("user3", "10.0.0.1"), Claim(1, None, 30), T0)

    async def test_success_clears_the_pair_but_not_the_account(self) -> None:
        store = MemoryThrottleStore()
        for _ in range(5):
            await fail(store, AttemptKey("seat1", "10.9.9.9"), T0)  # an attacker
        for _ in range(3):
            await fail(store, KEY, T0)
        ticket = await admit(store, KEY, T0)
        assert isinstance(ticket, Ticket)
        await store.succeeded(ticket)
        seen = await store.read(KEY, T0)
        assert seen.pair == Failures() and not seen.address_has_account
        assert seen.account.count == 8  # the attacker's 5 and the user's 3 wrong tries

    async def test_cancel_undoes_the_claim(self) -> None:
        store = MemoryThrottleStore()
        await fail(store, KEY, T0)
        before = await store.read(KEY, T0 + 1)
        ticket = await admit(store, KEY, T0 + 1)
        assert isinstance(ticket, Ticket)
        await store.cancel(ticket)
        after = await store.read(KEY, T0 + 1)
        assert after.pair.count == before.pair.count == 1
        assert after.account.count == 1 and after.address_oldest == before.address_oldest == T0

    async def test_records_are_forgotten(self) -> None:
        store = MemoryThrottleStore()
        for _ in range(5):
            await fail(store, KEY, T0)
        assert await admit(store, KEY, T0 + 0.5) == Refusal(0.5, Scope.PAIR)
        assert (await store.read(KEY, T0 + 599)).address_accounts == 1
        assert (await store.read(KEY, T0 + 600)).address_accounts == 0
        assert (await store.read(KEY, T0 + 3599)).pair.count == 5
        assert (await store.read(KEY, T0 + 3600)).pair == Failures()

    async def test_memory_is_bounded(self) -> None:
        store = MemoryThrottleStore(max_keys=50)
        for i in range(500):
            await fail(store, AttemptKey(f"u{i}", f"10.0.{i // 250}.{i % 250}"), T0)
        assert len(store._pairs) == len(store._accounts) == 50
        assert len(store._addresses) <= 50


# -- X-Forwarded-For -------------------------------------------------------------------------------

PROXIES = parse_networks(["10.0.0.5", "192.168.10.0/24", "fd00::/8"])


class TestForwardedFor:
    def test_ignored_unless_the_peer_is_a_trusted_proxy(self) -> None:
        assert client_address("203.0.113.9", ["198.51.100.1"], PROXIES) == "203.0.113.9"
        assert client_address("10.0.0.5", ["198.51.100.1"], ()) == "10.0.0.5"
        assert client_address("10.0.0.6", ["198.51.100.1"], PROXIES) == "10.0.0.6"

    def test_right_most_address_that_is_not_a_trusted_proxy(self) -> None:
        assert client_address("10.0.0.5", ["198.51.100.1"], PROXIES) == "198.51.100.1"
        # The client wrote the left part; the proxies appended the rest.
        hops = ["6.6.6.6, 198.51.100.1, 192.168.10.7"]
        assert client_address("10.0.0.5", hops, PROXIES) == "198.51.100.1"
        assert client_address("10.0.0.5", ["6.6.6.6", "198.51.100.1"], PROXIES) == "198.51.100.1"
        assert client_address("fd00::1", ["2001:db8::7"], PROXIES) == "2001:db8::7"
        assert client_address("::ffff:10.0.0.5", ["198.51.100.1:4711"], PROXIES) == "198.51.100.1"
        assert client_address("10.0.0.5", ["[2001:db8::7]:443"], PROXIES) == "2001:db8::7"

    def test_garbage_left_of_the_client_is_never_read(self) -> None:
        assert client_address("10.0.0.5", ["<script>, 198.51.100.1"], PROXIES) == "198.51.100.1"
        long = ",".join(["1.1.1.1"] * 1000) + ",198.51.100.1"
        assert client_address("10.0.0.5", [long], PROXIES) == "198.51.100.1"

    def test_malformed_headers_are_ignored(self) -> None:
        for bad in ["", "unknown", "198.51.100.1,,", "198.51.100.1, nonsense", "1.2.3.4:http"]:
            assert client_address("10.0.0.5", [bad], PROXIES) == "10.0.0.5", bad
        too_many = ", ".join(["192.168.10.1"] * 40)
        assert client_address("10.0.0.5", [too_many], PROXIES) == "10.0.0.5"

    def test_a_chain_of_proxies_only(self) -> None:
        assert client_address("10.0.0.5", ["192.168.10.3, 192.168.10.4"], PROXIES) == (
            "192.168.10.3"
        )

    def test_addresses(self) -> None:
        assert str(parse_address(" [::1]:80 ")) == "::1"
        assert parse_address("[::1]x") is None and parse_address("[::1") is None
        assert parse_address("localhost") is None
        assert parse_networks(["::ffff:10.0.0.0/104"]) == parse_networks(["10.0.0.0/8"])

    def test_setting_from_the_environment(self) -> None:
        env = {"CITYHUB_TRUSTED_PROXIES": "10.0.0.5, 192.168.10.0/24"}
        s = Settings.from_env(env, env_file=None)
        assert s.trusted_proxies == ("10.0.0.5", "192.168.10.0/24")
        assert Settings.from_env({}, env_file=None).trusted_proxies == ()
        with pytest.raises(SettingsError, match="CITYHUB_TRUSTED_PROXIES"):
            Settings.from_env({"CITYHUB_TRUSTED_PROXIES": "10.0.0.5, proxy.local"}, env_file=None)


# -- through the API --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))  # whole seconds: sums of halves stay exact

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(hub_state: HubState) -> Clock:
    c = Clock()
    hub_state.auth.clock = c
    return c


@pytest.fixture
async def from_address(hub_state: HubState) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """Clients whose direct peer is the given address (the ``client`` fixture's is 127.0.0.1)."""
    app = create_app(hub_state.settings)
    app.state.hub = hub_state
    opened: list[httpx.AsyncClient] = []

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        c = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        opened.append(c)
        return c

    try:
        yield make
    finally:
        for c in opened:
            await c.aclose()


async def attempt(
    client: httpx.AsyncClient, username: str, password: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/auth/login",
        json={"username": username, "password": password, "token": True},
        headers=headers,
    )


def status(r: httpx.Response) -> int:
    return r.status_code


def assert_throttled(r: httpx.Response, retry_after: int, words: str = "登录失败次数过多") -> None:
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert err["code"] == "too_many_requests" and words in err["message"]
    assert int(r.headers["retry-after"]) == retry_after
    unit = "秒" if retry_after < 120 else "分钟"
    assert unit in err["message"], err["message"]


async def audit_ips(hub_state: HubState, action: str) -> list[str]:
    async with hub_state.pool.acquire() as conn:
        rows = await conn.fetch("SELECT ip FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [r["ip"] for r in rows]


class TestLoginApi:
    async def test_a_mistyping_colleague_does_not_block_the_others(
        self, client: httpx.AsyncClient, clock: Clock
    ) -> None:
        codes = [status(await attempt(client, "seat2", "wrong-pass1")) for _ in range(5)]
        assert codes == [401] * 5
        assert_throttled(await attempt(client, "seat2", "wrong-pass1"), 1)
        for user in ("seat1", "seat3", "dispatch1"):  # the same address, the same minute
            assert status(await attempt(client, user, pw(user))) == 200
        assert_throttled(await attempt(client, "seat2", pw("seat2")), 1)  # still waits

    async def test_delays_grow_for_one_account_from_one_address(
        self, client: httpx.AsyncClient, clock: Clock
    ) -> None:
        for _ in range(5):
            assert status(await attempt(client, "seat2", "wrong-pass1")) == 401
        for expected in (1, 2, 4, 8):
            assert_throttled(await attempt(client, "seat2", "wrong-pass1"), expected)
            # During the wait even the right password is refused, before it is looked at.
            assert_throttled(await attempt(client, "seat2", pw("seat2")), expected)
            clock.now += expected - 0.5
            assert_throttled(await attempt(client, "seat2", pw("seat2")), 1)
            clock.now += 0.5
            assert status(await attempt(client, "seat2", "wrong-pass1")) == 401
        assert_throttled(await attempt(client, "seat2", "wrong-pass1"), 16)
        clock.now += 16
        assert status(await attempt(client, "seat2", pw("seat2"))) == 200
        # A success clears the record: a new typo costs nothing.
        assert status(await attempt(client, "seat2", "wrong-pass1")) == 401
        assert status(await attempt(client, "seat2", pw("seat2"))) == 200

    async def test_the_delay_is_minutes_at_most_fifteen(
        self, client: httpx.AsyncClient, clock: Clock
    ) -> None:
        for _ in range(5):
            await attempt(client, "seat2", "wrong-pass1")
        for n in range(12):
            clock.now += 900
            assert status(await attempt(client, "seat2", "wrong-pass1")) == 401, n
        assert_throttled(await attempt(client, "seat2", "wrong-pass1"), 900)
        r = await attempt(client, "seat2", pw("seat2"))
        assert "请 15 分钟后再试" in r.json()["error"]["message"]

    async def test_concurrent_guesses_cannot_slip_through_a_delay_together(
        self, client: httpx.AsyncClient, clock: Clock
    ) -> None:
        for _ in range(6):
            await attempt(client, "seat2", "wrong-pass1")
        clock.now += 2  # the delay (1 s) is over: exactly one more guess
        rs = await asyncio.gather(*(attempt(client, "seat2", f"guess-{i}") for i in range(8)))
        assert sorted(map(status, rs)) == [401] + [429] * 7

    async def test_an_attacked_account_still_signs_in_from_its_own_seat(
        self,
        client: httpx.AsyncClient,
        from_address: Callable[[str], httpx.AsyncClient],
        clock: Clock,
    ) -> None:
        # Guesses at seat1's password from eight addresses elsewhere, each until it is made to wait.
        attackers = [from_address(f"198.51.100.{i}") for i in range(1, 9)]
        for bot in attackers:
            for _ in range(5):
                assert status(await attempt(bot, "seat1", "guess-123")) == 401
        clock.now += 5  # every address's own delay is over; the account's is not (40 failures)
        assert_throttled(await attempt(attackers[0], "seat1", "guess-123"), 895)
        assert_throttled(await attempt(attackers[0], "seat1", pw("seat1")), 895)
        # seat1, from the center's address that has not been failing for seat1, gets in at once.
        assert status(await attempt(client, "seat1", pw("seat1"))) == 200
        # Two typos there cost nothing either.
        assert status(await attempt(client, "seat1", "typo-1")) == 401
        assert status(await attempt(client, "seat1", "typo-2")) == 401
        assert status(await attempt(client, "seat1", pw("seat1"))) == 200

    async def test_an_address_trying_many_accounts_is_slowed(
        self,
        client: httpx.AsyncClient,
        from_address: Callable[[str], httpx.AsyncClient],
        clock: Clock,
    ) -> None:
        for i in range(29):
            assert status(await attempt(client, f"ghost{i:02}", "guess-123")) == 401
        assert status(await attempt(client, "seat3", pw("seat3"))) == 200  # 29 do not stop anyone
        clock.now += 60
        assert status(await attempt(client, "ghost29", "guess-123")) == 401  # the 30th account
        assert_throttled(await attempt(client, "seat1", pw("seat1")), 540, "此网络地址")
        assert_throttled(await attempt(client, "ghost30", "guess-123"), 540, "此网络地址")
        # Accounts already counted go on under their own rules; other addresses are not affected.
        assert status(await attempt(client, "ghost05", "guess-123")) == 401
        assert status(await attempt(from_address("198.51.100.1"), "seat1", pw("seat1"))) == 200
        clock.now += 540  # the 28 failures of the first minute left the window
        assert status(await attempt(client, "seat1", pw("seat1"))) == 200

    async def test_forwarded_for_is_believed_from_a_trusted_proxy(
        self, hub_state: HubState, client: httpx.AsyncClient, clock: Clock
    ) -> None:
        hub_state.settings = dataclasses.replace(hub_state.settings, trusted_proxies=("127.0.0.1",))
        behind = {"x-forwarded-for": "203.0.113.7"}
        for _ in range(5):
            assert status(await attempt(client, "seat2", "wrong-pass1", **behind)) == 401
        assert_throttled(await attempt(client, "seat2", pw("seat2"), **behind), 1)
        # The client cannot escape by writing its own header: the proxy appends the real address.
        spoof = {"x-forwarded-for": "192.0.2.1, 203.0.113.7"}
        assert_throttled(await attempt(client, "seat2", pw("seat2"), **spoof), 1)
        # A colleague behind the same proxy, at another address, is not affected.
        other = {"x-forwarded-for": "203.0.113.8"}
        assert status(await attempt(client, "seat2", pw("seat2"), **other)) == 200
        assert await audit_ips(hub_state, "login_failed") == ["203.0.113.7"] * 5
        assert await audit_ips(hub_state, "login") == ["203.0.113.8"]

    async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
        self, hub_state: HubState, client: httpx.AsyncClient, clock: Clock
    ) -> None:
        hub_state.settings = dataclasses.replace(
            hub_state.settings, trusted_proxies=("10.0.0.0/8",)
        )
        for i in range(5):
            spoof = {"x-forwarded-for": f"203.0.113.{i + 1}"}
            assert status(await attempt(client, "seat2", "wrong-pass1", **spoof)) == 401
        assert_throttled(
            await attempt(client, "seat2", pw("seat2"), **{"x-forwarded-for": "203.0.113.99"}), 1
        )
        assert await audit_ips(hub_state, "login_failed") == ["127.0.0.1"] * 5

    async def test_a_database_fault_is_not_counted_as_a_failure(
        self, hub_state: HubState, clock: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        auth = hub_state.auth
        for _ in range(4):
            with pytest.raises(Unauthenticated):
                await auth.login(
                    "seat2", "wrong-pass1", kind="bearer", client="10.1.1.1", user_agent=""
                )

        async def down(*args: Any, **kwargs: Any) -> None:
            raise ConnectionError("database down")

        monkeypatch.setattr("storage.users.get_user_for_login", down)
        for _ in range(3):
            with pytest.raises((ConnectionError, StorageUnavailable)):
                await auth.login(
                    "seat2", pw("seat2"), kind="bearer", client="10.1.1.1", user_agent=""
                )
        monkeypatch.undo()
        with pytest.raises(Unauthenticated):  # the fifth failure: still a free one
            await auth.login(
                "seat2", "wrong-pass1", kind="bearer", client="10.1.1.1", user_agent=""
            )
        with pytest.raises(TooManyRequests):
            await auth.login("seat2", pw("seat2"), kind="bearer", client="10.1.1.1", user_agent="")


# -- shared through Redis ---------------------------------------------------------------------------


def redis_auth(hub_state: HubState, url: str, clock: Clock) -> Authenticator:
    store = RedisThrottleStore(url, login_policy(hub_state.settings))
    auth = Authenticator(hub_state.settings, hub_state.pool, hub_state.catalog_ref, store)
    auth.clock = clock
    return auth


async def sign_in(auth: Authenticator, username: str, password: str, client: str) -> str:
    """ "ok", "wrong" or "wait"."""
    try:
        await auth.login(username, password, kind="bearer", client=client, user_agent="test")
    except Unauthenticated:
        return "wrong"
    except TooManyRequests:
        return "wait"
    return "ok"


class TestSharedThroughRedis:
    async def test_two_hubs_see_the_same_records(
        self,
        hub_state: HubState,
        redis_server: RedisServer,  # noqa: F811
    ) -> None:
        clock = Clock()
        a, b = (
            redis_auth(hub_state, redis_server.url, clock),
            redis_auth(hub_state, redis_server.url, clock),
        )
        try:
            assert isinstance(a.throttle, RedisThrottleStore)
            for _ in range(5):
                assert await sign_in(a, "seat2", "wrong-pass1", "10.2.2.2") == "wrong"
            assert await sign_in(b, "seat2", pw("seat2"), "10.2.2.2") == "wait"
            assert await sign_in(b, "seat2", pw("seat2"), "10.2.2.3") == "ok"
            clock.now += 1
            # One more guess for the pair, whichever hub the requests reach.
            outcomes = await asyncio.gather(
                *(sign_in((a, b)[i % 2], "seat2", f"guess-{i}", "10.2.2.2") for i in range(6))
            )
            assert sorted(outcomes) == ["wait"] * 5 + ["wrong"]
            # The per-address set of distinct accounts is shared too.
            for i in range(30):
                hub = (a, b)[i % 2]
                assert await sign_in(hub, f"ghost{i:02}", "guess-123", "10.3.3.3") == "wrong"
            assert await sign_in(a, "seat1", pw("seat1"), "10.3.3.3") == "wait"
            assert await sign_in(b, "seat1", pw("seat1"), "10.3.3.3") == "wait"
            assert a.throttle.healthy and b.throttle.healthy
        finally:
            await a.close()
            await b.close()

    async def test_a_redis_outage_does_not_block_logins(
        self,
        hub_state: HubState,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(throttle_redis, "RETRY_AFTER", 0.2)
        caplog.set_level(logging.INFO, logger="cityhub.throttle")
        clock = Clock()
        with redis_running(password="s3cr3t-Pw") as server:
            auth = redis_auth(hub_state, server.url, clock)
            try:
                assert await sign_in(auth, "seat2", "wrong-pass1", "10.4.4.4") == "wrong"
                server.kill()
                t0 = time.monotonic()
                assert await sign_in(auth, "seat1", pw("seat1"), "10.4.4.4") == "ok"
                assert time.monotonic() - t0 < 3.0
                assert not auth.throttle.healthy
                # Meanwhile this process counts on its own.
                for _ in range(5):
                    assert await sign_in(auth, "seat3", "wrong-pass1", "10.4.4.4") == "wrong"
                assert await sign_in(auth, "seat3", pw("seat3"), "10.4.4.4") == "wait"
                warnings = [
                    r
                    for r in caplog.records
                    if r.name == "cityhub.throttle" and r.levelno >= logging.WARNING
                ]
                assert len(warnings) == 1 and "Redis unavailable" in warnings[0].getMessage()
                server.start()
                await asyncio.sleep(0.3)
                # Back on Redis (a new, empty server): shared again with another hub.
                for _ in range(5):
                    assert await sign_in(auth, "seat2", "wrong-pass1", "10.4.4.4") == "wrong"
                assert auth.throttle.healthy
                other = redis_auth(hub_state, server.url, clock)
                try:
                    assert await sign_in(other, "seat2", pw("seat2"), "10.4.4.4") == "wait"
                finally:
                    await other.close()
                assert any("Redis is back" in r.getMessage() for r in caplog.records)
                assert "s3cr3t-Pw" not in caplog.text
            finally:
                await auth.close()
