"""The hub as a SIP registrar (RFC 3261 §10.3, digest §22 / RFC 2617): every branch of
``Registrar.register`` on requests built here, answered by the client side's digest maths
(``telephony.sip.digest.authorize``) and checked once by hand; replayed and forged digests; and the
``UserAgent``'s REGISTER hook over real UDP (501 without a registrar, the registrar's answers with
one, a malformed REGISTER 400, a storm of garbage that leaves the agent answering)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from telephony.sip.agent import UserAgent
from telephony.sip.digest import Credentials, authorize, parse_challenges
from telephony.sip.headers import Headers, NameAddr, Via, param
from telephony.sip.message import Request, Response, parse
from telephony.sip.registrar import Binding, PhoneAccount, Registrar, ha1

REALM = "cityhub"
URI = "sip:127.0.0.1:5060"
PHONE = PhoneAccount("8001", ha1("8001", REALM, "desk#Pass1"), owner="7")
T0 = 1_800_000_000.0


def register(
    *contacts: str,
    user: str = "8001",
    expires: str | None = None,
    cseq: int = 1,
    call_id: str = "reg-1@phone",
    auth: str | None = None,
    uri: str = URI,
) -> Request:
    pairs = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKphone" + str(cseq)),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{user}@127.0.0.1>;tag=ph1"),
        ("To", f"<sip:{user}@127.0.0.1>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
    ]
    pairs += [("Contact", c) for c in contacts]
    if expires is not None:
        pairs.append(("Expires", expires))
    if auth is not None:
        pairs.append(("Authorization", auth))
    return Request("REGISTER", uri, Headers.of(pairs))


def challenge_of(response: Response) -> str:
    assert response.status == 401, response
    return response.header_all("WWW-Authenticate")[0]


def answer(
    response: Response,
    *,
    password: str = "desk#Pass1",
    user: str = "8001",
    nc: int = 1,
    uri: str = URI,
    cnonce: str = "c0ffee",
) -> str:
    (challenge,) = parse_challenges(challenge_of(response))
    auth = authorize(challenge, Credentials(user, password), method="REGISTER", uri=uri,
                     cnonce=cnonce, nc=nc)  # fmt: skip
    return auth.serialize()


def contacts(response: Response) -> dict[str, str | None]:
    out = {}
    for value in response.header_all("Contact"):
        addr = NameAddr.parse(value)
        out[addr.uri] = param(addr.params, "expires")
    return out


@pytest.fixture
def reg() -> Registrar:
    return Registrar(REALM, secret=b"k" * 32, min_expires=60, max_expires=3600, max_bindings=2)


def accounts(user: str) -> PhoneAccount | None:
    return PHONE if user == PHONE.sip_user else None


def authed(reg: Registrar, *contacts_: str, now: float = T0, **kw: object) -> Response:
    """A REGISTER challenged, then sent again with the right credentials (CSeq + 1)."""
    cseq = int(kw.pop("cseq", 1))  # type: ignore[call-overload]
    first = reg.register(register(*contacts_, cseq=cseq, **kw), now, PHONE).response  # type: ignore[arg-type]
    auth = answer(first)
    again = register(*contacts_, cseq=cseq + 1, auth=auth, **kw)  # type: ignore[arg-type]
    return reg.register(again, now, PHONE).response


class TestSection22_4_TheChallenge:
    def test_no_credentials_is_401_with_an_md5_auth_challenge(self, reg: Registrar) -> None:
        r = reg.register(register("<sip:8001@127.0.0.1:5999>"), T0, PHONE).response
        value = challenge_of(r)
        assert value.startswith("Digest ")
        assert 'realm="cityhub"' in value and "algorithm=MD5" in value and 'qop="auth"' in value
        (c,) = parse_challenges(value)
        assert reg.nonce_state(c.nonce, T0) == "ok" and not c.stale
        assert r.to_tag is not None
        assert reg.lookup("8001", T0) == []

    def test_an_unknown_user_is_challenged_like_a_known_one(self, reg: Registrar) -> None:
        r = reg.register(register("<sip:9999@127.0.0.1:5999>", user="9999"), T0, None).response
        assert r.status == 401  # nothing tells a stranger which users exist

    def test_the_right_answer_binds_and_200_lists_the_binding(self, reg: Registrar) -> None:
        r = authed(reg, "<sip:8001@127.0.0.1:5999>", expires="600")
        assert r.status == 200, r
        assert contacts(r) == {"sip:8001@127.0.0.1:5999": "600"}
        assert r.header("Date") is not None
        (b,) = reg.lookup("8001", T0 + 1)
        assert b.contact == "sip:8001@127.0.0.1:5999" and b.expires_at == T0 + 600
        assert reg.lookup("8001", T0 + 601) == []  # lapsed

    def test_the_digest_is_the_rfc_2617_maths_on_the_stored_ha1(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@127.0.0.1:5999>"), T0, PHONE).response
        (c,) = parse_challenges(challenge_of(first))
        md5 = hashlib.md5  # RFC 2617 by hand
        h1 = md5(b"8001:cityhub:desk#Pass1").hexdigest()
        h2 = md5(f"REGISTER:{URI}".encode()).hexdigest()
        resp = md5(f"{h1}:{c.nonce}:00000001:abc:auth:{h2}".encode()).hexdigest()
        auth = (f'Digest username="8001", realm="cityhub", nonce="{c.nonce}", uri="{URI}", '
                f'response="{resp}", algorithm=MD5, cnonce="abc", qop=auth, nc=00000001')  # fmt: skip
        r = reg.register(register("<sip:8001@127.0.0.1:5999>", cseq=2, auth=auth), T0, PHONE)
        assert r.response.status == 200 and r.changed and r.authenticated

    def test_wrong_password_is_403(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@127.0.0.1:5999>"), T0, PHONE).response
        auth = answer(first, password="guess")
        r = reg.register(register("<sip:8001@127.0.0.1:5999>", cseq=2, auth=auth), T0, PHONE)
        assert r.response.status == 403 and not r.changed
        assert reg.lookup("8001", T0) == []

    def test_unknown_user_with_credentials_is_403(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:9@h>", user="9999"), T0, None).response
        auth = answer(first, user="9999")
        r = reg.register(register("<sip:9@h>", user="9999", cseq=2, auth=auth), T0, None)
        assert r.response.status == 403

    def test_another_phones_credentials_for_this_aor_are_403(self, reg: Registrar) -> None:
        other = PhoneAccount("8002", ha1("8002", REALM, "p2"), owner="8")
        first = reg.register(register("<sip:x@h>"), T0, PHONE).response
        auth = answer(first, user="8002", password="p2")  # valid for 8002, used for 8001's AOR
        r = reg.register(register("<sip:x@h>", cseq=2, auth=auth), T0, PHONE)
        assert r.response.status == 403
        r = reg.register(register("<sip:x@h>", cseq=3, auth=auth), T0, other)
        assert r.response.status == 403

    def test_an_old_nonce_is_stale_true_and_a_new_one_works(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@h>"), T0, PHONE).response
        auth = answer(first)
        late = T0 + 301
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=auth), late, PHONE).response
        assert r.status == 401
        (c,) = parse_challenges(challenge_of(r))
        assert c.stale
        auth = answer(r)
        r = reg.register(register("<sip:8001@h>", cseq=3, auth=auth), late, PHONE).response
        assert r.status == 200

    def test_a_stale_nonce_with_a_wrong_password_is_still_403(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@h>"), T0, PHONE).response
        auth = answer(first, password="nope")
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=auth), T0 + 400, PHONE).response
        assert r.status == 403


class TestForgedAndReplayedDigests:
    def test_a_forged_nonce_is_challenged_again(self, reg: Registrar) -> None:
        other = Registrar(REALM, secret=b"x" * 32)  # another hub's nonce: its MAC does not match
        first = other.register(register("<sip:8001@h>"), T0, PHONE).response
        auth = answer(first)
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=auth), T0, PHONE).response
        assert r.status == 401
        assert reg.nonce_state("zz", T0) == "bad"
        assert reg.nonce_state(reg.nonce(T0 + 60), T0) == "bad"  # from the future

    def test_a_wrong_response_is_403(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@h>"), T0, PHONE).response
        good = answer(first)
        start = good.index('response="') + 10
        forged = good[:start] + ("0" if good[start] != "0" else "1") + good[start + 1 :]
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=forged), T0, PHONE).response
        assert r.status == 403

    def test_an_answer_for_another_uri_is_400(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@h>"), T0, PHONE).response
        auth = answer(first, uri="sip:elsewhere.example")
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=auth), T0, PHONE).response
        assert r.status == 400
        # the same digest moved onto a request for that URI is right there, wrong here: the
        # uri check is what refuses a digest lifted from another request
        moved = register("<sip:8001@h>", cseq=3, auth=auth, uri="sip:elsewhere.example")
        assert reg.register(moved, T0, PHONE).response.status == 200

    def test_a_replayed_nonce_count_is_refused(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@h>"), T0, PHONE).response
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=answer(first, nc=1)), T0, PHONE)
        assert r.response.status == 200
        r = reg.register(register("<sip:8001@h>", cseq=3, auth=answer(first, nc=2)), T0, PHONE)
        assert r.response.status == 200  # a phone counting up reuses the nonce (preemptive)
        replay = register("<sip:8001@h>", cseq=4, auth=answer(first, nc=2))
        assert reg.register(replay, T0, PHONE).response.status == 401
        lower = register("<sip:8001@h>", cseq=5, auth=answer(first, nc=1, cnonce="other"))
        assert reg.register(lower, T0, PHONE).response.status == 401

    def test_without_qop_or_with_another_algorithm_is_challenged(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@h>"), T0, PHONE).response
        (c,) = parse_challenges(challenge_of(first))
        rfc2069 = (f'Digest username="8001", realm="cityhub", nonce="{c.nonce}", uri="{URI}", '
                   f'response="{"0" * 32}"')  # fmt: skip
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=rfc2069), T0, PHONE).response
        assert r.status == 401
        sha = answer(first).replace("algorithm=MD5", "algorithm=SHA-256")
        r = reg.register(register("<sip:8001@h>", cseq=3, auth=sha), T0, PHONE).response
        assert r.status == 401

    def test_credentials_for_another_realm_are_not_ours(self, reg: Registrar) -> None:
        first = reg.register(register("<sip:8001@h>"), T0, PHONE).response
        auth = answer(first).replace('realm="cityhub"', 'realm="pbx"')
        r = reg.register(register("<sip:8001@h>", cseq=2, auth=auth), T0, PHONE).response
        assert r.status == 401

    def test_a_malformed_authorization_is_400(self, reg: Registrar) -> None:
        r = reg.register(register("<sip:8001@h>", auth='Digest username="8001'), T0, PHONE)
        assert r.response.status == 400


class TestSection10_3_Bindings:
    def test_expires_parameter_header_default_and_the_maximum(self, reg: Registrar) -> None:
        r = authed(reg, "<sip:a@127.0.0.1:5001>;expires=120", expires="900")
        assert contacts(r) == {"sip:a@127.0.0.1:5001": "120"}  # the parameter wins
        r = authed(reg, "<sip:a@127.0.0.1:5001>", expires="900", cseq=5)
        assert contacts(r) == {"sip:a@127.0.0.1:5001": "900"}  # else the header
        r = authed(reg, "<sip:a@127.0.0.1:5001>", cseq=9)
        assert contacts(r) == {"sip:a@127.0.0.1:5001": "3600"}  # else the default
        r = authed(reg, "<sip:a@127.0.0.1:5001>;expires=99999", cseq=13)
        assert contacts(r) == {"sip:a@127.0.0.1:5001": "3600"}  # shortened to the maximum

    def test_below_min_expires_is_423_with_min_expires(self, reg: Registrar) -> None:
        r = authed(reg, "<sip:a@127.0.0.1:5001>;expires=30")
        assert r.status == 423 and r.header("Min-Expires") == "60"
        assert reg.lookup("8001", T0) == []

    def test_expires_zero_removes_one_binding(self, reg: Registrar) -> None:
        authed(reg, "<sip:a@127.0.0.1:5001>", "<sip:b@127.0.0.1:5002>", expires="600")
        assert len(reg.lookup("8001", T0)) == 2
        r = authed(reg, "<sip:a@127.0.0.1:5001>;expires=0", cseq=5)
        assert contacts(r) == {"sip:b@127.0.0.1:5002": "600"}

    def test_star_with_expires_zero_removes_all(self, reg: Registrar) -> None:
        authed(reg, "<sip:a@127.0.0.1:5001>", "<sip:b@127.0.0.1:5002>", expires="600")
        r = authed(reg, "*", expires="0", cseq=5)
        assert r.status == 200 and contacts(r) == {}
        assert reg.lookup("8001", T0) == []

    def test_star_otherwise_is_400(self, reg: Registrar) -> None:
        r = reg.register(register("*", expires="60"), T0, PHONE).response
        assert r.status == 400
        r = reg.register(register("*", "<sip:a@h>", expires="0"), T0, PHONE).response
        assert r.status == 400
        r = reg.register(register("*"), T0, PHONE).response
        assert r.status == 400

    def test_no_contact_is_a_query(self, reg: Registrar) -> None:
        authed(reg, "<sip:a@127.0.0.1:5001>", expires="600")
        r = authed(reg, cseq=5, now=T0 + 100)
        assert r.status == 200 and contacts(r) == {"sip:a@127.0.0.1:5001": "500"}

    def test_an_older_cseq_in_the_same_call_id_is_refused(self, reg: Registrar) -> None:
        authed(reg, "<sip:a@127.0.0.1:5001>", expires="600", cseq=10)  # bound at CSeq 11
        r = authed(reg, "<sip:a@127.0.0.1:5001>", expires="60", cseq=3)  # CSeq 4 < 11
        assert r.status == 500
        assert reg.lookup("8001", T0)[0].expires_at == T0 + 600
        r = authed(reg, "<sip:a@127.0.0.1:5001>", expires="60", cseq=3, call_id="rebooted")
        assert r.status == 200  # a new Call-ID (the phone restarted) replaces it
        assert reg.lookup("8001", T0)[0].expires_at == T0 + 60

    def test_max_bindings_keeps_the_newest(self, reg: Registrar) -> None:
        authed(reg, "<sip:a@127.0.0.1:5001>", expires="600", now=T0)
        authed(reg, "<sip:b@127.0.0.1:5002>", expires="600", cseq=5, now=T0 + 10)
        r = authed(reg, "<sip:c@127.0.0.1:5003>", expires="600", cseq=9, now=T0 + 20)
        assert set(contacts(r)) == {"sip:b@127.0.0.1:5002", "sip:c@127.0.0.1:5003"}

    def test_contacts_compare_without_host_case_and_with_the_default_port(
        self, reg: Registrar
    ) -> None:
        authed(reg, "<sip:a@PHONE.local>", expires="600")
        r = authed(reg, "<sip:a@phone.local:5060>", expires="300", cseq=5)
        assert len(contacts(r)) == 1 and list(contacts(r).values()) == ["300"]

    def test_malformed_contact_or_expires_is_400_before_any_challenge(self, reg: Registrar) -> None:
        for bad in (
            register("<sip:a@h>;expires=soon"),
            register("<sip:a@h>", expires="-1"),
            register("<not a uri>"),
            register("<sip:a@h>", user=""),
        ):
            r = reg.register(bad, T0, PHONE).response
            assert r.status == 400, (bad, r)

    def test_lapsed_bindings_go(self, reg: Registrar) -> None:
        authed(reg, "<sip:a@127.0.0.1:5001>", expires="60")
        assert reg.next_expiry() == T0 + 60
        assert reg.expire(T0 + 59) == []
        assert reg.expire(T0 + 61) == ["8001"]
        assert reg.next_expiry() is None

    def test_another_method_is_405(self, reg: Registrar) -> None:
        req = register()
        other = Request("OPTIONS", req.uri, req.headers.replace("CSeq", ["1 OPTIONS"]))
        assert reg.register(other, T0, PHONE).response.status == 405


# ---- the UserAgent's hook ------------------------------------------------------------------------


class RawPhone:
    """A UDP socket sending hand-made REGISTERs and reading the answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    async def send(self, data: bytes, to: tuple[str, int]) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, to)

    async def recv(self, timeout: float = 2.0) -> Response:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            for _ in range(20):
                data = await loop.sock_recv(self.sock, 65536)
                message = parse(data)
                if isinstance(message, Response) and message.status >= 200:
                    return message
        raise AssertionError("no final response")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def ua() -> AsyncIterator[UserAgent]:
    async with UserAgent("127.0.0.1", 0, user="hub") as agent:
        yield agent


@pytest.fixture
def phone() -> Iterator[RawPhone]:
    p = RawPhone()
    yield p
    p.close()


def wire(request: Request, port: int) -> bytes:
    """``request`` with a Via naming the phone's socket (a branch per CSeq: a new transaction)."""
    number = request.cseq.number if request.cseq else 0
    via = Via.parse(f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKraw{number}")
    return request.with_top_via(via).serialize()


class TestRestoredBindings:
    """``restore``: the bindings a restarted hub read back from the database."""

    def test_what_a_restarted_registrar_restores_answers_lookups_and_guards_order(
        self, reg: Registrar
    ) -> None:
        assert authed(reg, "<sip:8001@127.0.0.1:5999>", expires="600", call_id="c1").status == 200
        (held,) = reg.lookup("8001", T0)
        fresh = Registrar(REALM, secret=b"other" * 8, max_bindings=2)
        fresh.restore("8001", [held], T0 + 10)
        assert fresh.lookup("8001", T0 + 10) == [held]
        assert fresh.next_expiry() == held.expires_at
        # the same Call-ID with an older CSeq is still out of order after the restart (§10.3 7)
        stale = register("<sip:8001@127.0.0.1:5999>", cseq=1, call_id="c1")
        first = fresh.register(stale, T0 + 10, PHONE).response
        again = register("<sip:8001@127.0.0.1:5999>", cseq=held.cseq, call_id="c1",
                         auth=answer(first))  # fmt: skip
        assert fresh.register(again, T0 + 10, PHONE).response.status == 500
        assert fresh.lookup("8001", T0 + 601) == []  # and it lapses when it was going to

    def test_lapsed_ones_are_left_out_and_the_longest_lived_kept(self, reg: Registrar) -> None:
        def mk(port: int, until: float) -> Binding:
            return Binding(f"sip:8001@127.0.0.1:{port}", until, "c", 1)

        reg.restore("8001", [mk(1, T0 - 1), mk(2, T0 + 50), mk(3, T0 + 900), mk(4, T0 + 300)], T0)
        assert [b.contact for b in reg.lookup("8001", T0)] == [
            "sip:8001@127.0.0.1:3",
            "sip:8001@127.0.0.1:4",
        ]  # max_bindings=2
        reg.restore("8001", [mk(1, T0 - 1)], T0)
        assert reg.lookup("8001", T0) == [] and "8001" not in reg.bindings


class TestTheUserAgentHook:
    async def test_without_a_registrar_register_is_501(
        self, ua: UserAgent, phone: RawPhone
    ) -> None:
        await phone.send(wire(register("<sip:a@h>"), phone.port), ua.local_address)
        r = await phone.recv()
        assert r.status == 501 and r.to_tag is not None
        assert "REGISTER" not in r.header_all("Allow")  # RFC 3261 §21.5.2: what it does allow

    async def test_options_names_register_only_while_a_registrar_answers(
        self, ua: UserAgent, phone: RawPhone
    ) -> None:
        def options(cseq: int) -> bytes:
            request = register(cseq=cseq, call_id=f"opt-{cseq}@phone")
            text = wire(request, phone.port).replace(b"REGISTER", b"OPTIONS")
            return text

        await phone.send(options(1), ua.local_address)
        plain = await phone.recv()
        assert plain.status == 200 and "REGISTER" not in plain.header_all("Allow")
        reg = Registrar(REALM, secret=b"s" * 32)
        ua.on_register = lambda request, source: reg.register(request, 1000.0, PHONE).response
        await phone.send(options(2), ua.local_address)
        served = await phone.recv()
        assert served.status == 200 and "REGISTER" in served.header_all("Allow")

    async def test_the_registrar_answers_and_binds(self, ua: UserAgent, phone: RawPhone) -> None:
        reg = Registrar(REALM, secret=b"s" * 32)
        ua.on_register = lambda request, source: (
            reg.register(request, 1000.0, accounts(Registrar.aor_user(request) or "")).response
        )
        contact = f"<sip:8001@127.0.0.1:{phone.port}>"
        await phone.send(wire(register(contact), phone.port), ua.local_address)
        first = await phone.recv()
        assert first.status == 401
        again = register(contact, cseq=2, auth=answer(first), expires="120")
        await phone.send(wire(again, phone.port), ua.local_address)
        ok = await phone.recv()
        assert ok.status == 200 and contacts(ok) == {f"sip:8001@127.0.0.1:{phone.port}": "120"}
        assert [b.contact for b in reg.lookup("8001", 1000.0)] == [
            f"sip:8001@127.0.0.1:{phone.port}"
        ]

    async def test_a_failing_registrar_is_500_and_the_agent_goes_on(
        self, ua: UserAgent, phone: RawPhone
    ) -> None:
        def broken(request: Request, source: tuple[str, int]) -> Response | None:
            raise RuntimeError("bug")

        ua.on_register = broken
        await phone.send(wire(register("<sip:a@h>"), phone.port), ua.local_address)
        assert (await phone.recv()).status == 500
        ua.on_register = None
        await phone.send(wire(register("<sip:a@h>", cseq=7), phone.port), ua.local_address)
        assert (await phone.recv()).status == 501

    async def test_malformed_register_is_400_and_a_storm_of_garbage_changes_nothing(
        self, ua: UserAgent, phone: RawPhone
    ) -> None:
        reg = Registrar(REALM, secret=b"s" * 32)
        ua.on_register = lambda request, source: reg.register(request, 1000.0, PHONE).response
        bad = (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{phone.port};"
               "branch=z9hG4bKbad\r\nFrom: <sip:8001@h>;tag=1\r\nTo: <sip:8001@h>\r\n"
               "Call-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n").encode()  # fmt: skip
        await phone.send(bad, ua.local_address)
        assert (await phone.recv()).status == 400  # CSeq method mismatch: the parser's 400
        bad_contact = register("<sip:a@h>;expires=tomorrow", cseq=3)
        await phone.send(wire(bad_contact, phone.port), ua.local_address)
        assert (await phone.recv()).status == 400  # the registrar's 400
        for i in range(500):
            junk = bytes((i * 7 + k) % 256 for k in range(i % 300 + 1))
            await phone.send(b"REGISTER " + junk, ua.local_address)
            if i % 50 == 0:
                await phone.send(wire(register("<sip:a@h>", cseq=100 + i), phone.port),
                                 ua.local_address)  # fmt: skip
        # the agent still answers, promptly
        await asyncio.sleep(0.2)
        while True:
            try:
                phone.sock.recv(65536)
            except BlockingIOError:
                break
        await phone.send(wire(register("<sip:a@h>", cseq=999), phone.port), ua.local_address)
        assert (await phone.recv()).status == 401
        assert reg.lookup("8001", 1000.0) == []
