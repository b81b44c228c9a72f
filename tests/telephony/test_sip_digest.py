"""SIP digest authentication as a client (RFC 3261 §22, RFC 7616, RFC 8760), on header values.

Published vectors: RFC 7616 §3.9.1 (MD5 and SHA-256, "Mufasa" / "Circle of Life") and RFC 2617 §3.5
("Circle Of Life"); these are HTTP examples, the computation is the same in SIP. Other expected
responses are recomputed here straight from the RFC 7616 §3.4.1 formulas with hashlib, independently
of the module's code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.errors import DigestError, TelephonyError
from telephony.sip.digest import (
    MAX_NC,
    SUPPORTED,
    Algorithm,
    Authorization,
    Challenge,
    Credentials,
    DigestClient,
    authorize,
    choose_challenges,
    compute_response,
    parse_challenges,
)

PASSWORD = "Circle of Life"
MUFASA = Credentials("Mufasa", PASSWORD)

# RFC 7616 §3.9.1: the server's two challenges (one header line each) and the client's cnonce.
RFC7616_SHA256 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_MD5 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

# An Asterisk 18 res_pjsip 401 to a REGISTER (lower-case algorithm token, no spaces after commas).
ASTERISK_401 = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/UDP 10.20.1.15:5060;rport=5060;received=10.20.1.15;branch=z9hG4bK-524287-1---a1b2c3d4e5f6a7b8\r\n"
    b"Call-ID: 5f0d7a3a8c1e4b2f9d6e0a1b2c3d4e5f\r\n"
    b"From: <sip:speaker-017@10.20.0.2>;tag=71a2f3b4\r\n"
    b"To: <sip:speaker-017@10.20.0.2>;tag=z9hG4bK-524287-1---a1b2c3d4e5f6a7b8\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="asterisk",nonce="1733091023/8d3e5f0b1c2a4d6e8f0a1b2c3d4e5f60",'
    b'opaque="3c1f5e7d0b2a4c6e",algorithm=md5,qop="auth"\r\n'
    b"Server: Asterisk PBX 18.20.0\r\n"
    b"Content-Length:  0\r\n"
    b"\r\n"
)

# A FreeSWITCH 407 to an INVITE: spaces after commas, algorithm in capitals, a UUID nonce.
FREESWITCH_407 = (
    b"SIP/2.0 407 Proxy Authentication Required\r\n"
    b"Via: SIP/2.0/UDP 10.20.1.15:5060;branch=z9hG4bK7f3a9c2e;rport=5060\r\n"
    b"From: <sip:hub@10.20.1.15>;tag=a9d01c\r\n"
    b"To: <sip:8001@10.20.0.3>;tag=QgF1r3yN8c6vD\r\n"
    b"Call-ID: 8b2c7d1e-3f4a-4b5c-9d6e-7f8a9b0c1d2e\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"User-Agent: FreeSWITCH-mod_sofia/1.10.11-release~64bit\r\n"
    b"Accept: application/sdp\r\n"
    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY\r\n"
    b'Proxy-Authenticate: Digest realm="10.20.0.3", nonce="0c5e6f1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b", '
    b'algorithm=MD5, qop="auth"\r\n'
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# A Kamailio (auth module, auth_algorithm SHA-256 plus MD5) 407: two Proxy-Authenticate lines.
KAMAILIO_407 = (
    b"SIP/2.0 407 Proxy Authentication Required\r\n"
    b"Via: SIP/2.0/UDP 10.20.1.15:5060;branch=z9hG4bK3d9e1f;rport=5060;received=10.20.1.15\r\n"
    b"From: <sip:hub@city.example>;tag=5c1e\r\n"
    b"To: <sip:12319@city.example>;tag=b27e1a3b4d5c6e7f8a9b0c1d2e3f4a5b-9c1d\r\n"
    b"Call-ID: c3d4e5f6a7b8\r\n"
    b"CSeq: 2 INVITE\r\n"
    b'Proxy-Authenticate: Digest realm="city.example", nonce="Z0x1c2Vj9m5Yb3Q4cDdEd2VzZW4xMjM0NTY=", '
    b'qop="auth", algorithm=SHA-256\r\n'
    b'Proxy-Authenticate: Digest realm="city.example", nonce="Z0x1c2Vj9m5Yb3Q4cDdEd2VzZW4xMjM0NTY=", '
    b'qop="auth", algorithm=MD5\r\n'
    b"Server: kamailio (5.7.4 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def header_values(message: bytes, name: str) -> list[str]:
    """The values of every ``name`` header line of a captured message (no folding in these)."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    out = []
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            out.append(value.strip())
    return out


def reference_response(
    hash_name: str,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str,
    body: bytes = b"",
    sess: bool = False,
) -> str:
    """RFC 7616 §3.4.1-3.4.3 written out longhand."""

    def h(data: bytes) -> str:
        return hashlib.new(hash_name, data).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}".encode())
    if sess:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    a2 = f"{method}:{uri}" + (f":{h(body)}" if qop == "auth-int" else "")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{h(a2.encode())}".encode())


class TestRfc7616Section3_9_1_Examples:
    def test_sha256_response(self) -> None:
        (challenge,) = parse_challenges(RFC7616_SHA256)
        auth = authorize(
            challenge, MUFASA, method="GET", uri="/dir/index.html", cnonce=RFC7616_CNONCE
        )
        assert auth.response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        assert auth.algorithm is Algorithm.SHA256
        assert (auth.qop, auth.nc, auth.cnonce) == ("auth", 1, RFC7616_CNONCE)
        assert auth.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"

    def test_md5_response(self) -> None:
        (challenge,) = parse_challenges(RFC7616_MD5)
        auth = authorize(
            challenge, MUFASA, method="GET", uri="/dir/index.html", cnonce=RFC7616_CNONCE
        )
        assert auth.response == "8ca523f5e9506fed4657c9700eebdbec"

    def test_serialized_authorization_echoes_everything(self) -> None:
        (challenge,) = parse_challenges(RFC7616_SHA256)
        value = authorize(
            challenge, MUFASA, method="GET", uri="/dir/index.html", cnonce=RFC7616_CNONCE
        ).serialize()
        assert value.startswith("Digest ")
        for part in (
            'username="Mufasa"',
            'realm="http-auth@example.org"',
            'uri="/dir/index.html"',
            "algorithm=SHA-256",
            "qop=auth",
            "nc=00000001",
            f'cnonce="{RFC7616_CNONCE}"',
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"',
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
            'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"',
        ):
            assert part in value
        assert PASSWORD not in value

    def test_both_headers_the_stronger_is_chosen_whatever_the_order(self) -> None:
        for values in ([RFC7616_SHA256, RFC7616_MD5], [RFC7616_MD5, RFC7616_SHA256]):
            (chosen,) = choose_challenges(parse_challenges(values))
            assert chosen.algorithm is Algorithm.SHA256

    def test_both_challenges_in_one_header_value(self) -> None:
        challenges = parse_challenges(f"{RFC7616_MD5}, {RFC7616_SHA256}")
        assert [c.algorithm for c in challenges] == [Algorithm.MD5, Algorithm.SHA256]
        assert choose_challenges(challenges)[0].algorithm is Algorithm.SHA256


class TestRfc2617Section3_5_Example:
    CHALLENGE = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )

    def test_response(self) -> None:
        (challenge,) = parse_challenges(self.CHALLENGE)
        assert challenge.algorithm is Algorithm.MD5  # absent means MD5
        auth = authorize(
            challenge,
            Credentials("Mufasa", "Circle Of Life"),
            method="GET",
            uri="/dir/index.html",
            cnonce="0a4f113b",
        )
        assert auth.response == "6629fae49393a05397450978507c4ef1"
        assert "algorithm=MD5" in auth.serialize()  # echoed even when the challenge left it out


class TestRfc7616Section3_3_Challenge:
    def test_parameters(self) -> None:
        (c,) = parse_challenges(
            'Digest realm="biloxi.com", domain="sip:biloxi.com sip:ss1.biloxi.com", '
            'nonce="abc", opaque="xyz", stale=TRUE, algorithm=SHA-256-sess, qop="auth-int"'
        )
        assert c == Challenge(
            realm="biloxi.com",
            nonce="abc",
            algorithm=Algorithm.SHA256_SESS,
            qop=("auth-int",),
            opaque="xyz",
            stale=True,
            domain=("sip:biloxi.com", "sip:ss1.biloxi.com"),
        )

    def test_names_and_scheme_are_case_insensitive_and_unknown_params_ignored(self) -> None:
        (c,) = parse_challenges('DIGEST Realm="r", NONCE="n", Algorithm="md5", charset=UTF-8')
        assert (c.realm, c.nonce, c.algorithm) == ("r", "n", Algorithm.MD5)

    def test_quoted_string_escapes(self) -> None:
        (c,) = parse_challenges(r'Digest realm="a \"quoted\" realm\\x, y", nonce="n\,1"')
        assert c.realm == 'a "quoted" realm\\x, y'
        assert c.nonce == "n,1"
        assert r'realm="a \"quoted\" realm\\x, y"' in str(c)  # escaped again on the way out

    def test_unquoted_qop_and_stale_false(self) -> None:
        (c,) = parse_challenges('Digest realm="r", nonce="n", qop=auth, stale=false')
        assert c.qop == ("auth",) and c.stale is False

    def test_other_schemes_are_skipped(self) -> None:
        challenges = parse_challenges('Basic realm="r", Digest realm="r", nonce="n"')
        assert len(challenges) == 1 and challenges[0].nonce == "n"

    def test_unknown_algorithm_is_skipped_and_nothing_left_is_an_error(self) -> None:
        assert parse_challenges('Digest realm="r", nonce="n", algorithm=SHA-1024') == ()
        with pytest.raises(DigestError):
            choose_challenges(parse_challenges('Digest realm="r", nonce="n", algorithm=X'))

    def test_unsupported_qop_only_is_unusable(self) -> None:
        (c,) = parse_challenges('Digest realm="r", nonce="n", qop="auth-conf"')
        assert not c.usable
        with pytest.raises(DigestError):
            choose_challenges([c])

    def test_sess_without_qop_is_unusable(self) -> None:
        (c,) = parse_challenges('Digest realm="r", nonce="n", algorithm=MD5-sess')
        assert not c.usable

    def test_serialize_round_trip(self) -> None:
        (c,) = parse_challenges(RFC7616_SHA256, proxy=True)
        assert parse_challenges(c.serialize(), proxy=True) == (c,)
        assert c.header_name == "Proxy-Authorization"

    @pytest.mark.parametrize(
        "value",
        [
            'Digest nonce="n"',  # no realm
            'Digest realm="r"',  # no nonce
            'Digest realm="r", nonce=""',
            'Digest realm="r", realm="s", nonce="n"',  # duplicate
            'Digest realm="r, nonce="n"',  # unterminated quote
            'Digest realm="r" nonce="n"',  # missing comma
            'realm="r", nonce="n"',  # no scheme
            'Digest realm=, nonce="n"',
            'Digest realm="r",\r\n nonce="n"',  # control characters (unfolded already)
            'Digest realm="r\x00", nonce="n"',
            "Digest\x7f",
            '"Digest" realm="r"',
            'Digest realm="r", nonce="n", =x',
        ],
    )
    def test_malformed(self, value: str) -> None:
        with pytest.raises(DigestError):
            parse_challenges(value)

    def test_limits(self) -> None:
        long_nonce = "n" * 5000
        with pytest.raises(DigestError, match="longer"):
            parse_challenges(f'Digest realm="r", nonce="{long_nonce}"')
        many = ", ".join(f"p{i}=x" for i in range(30))
        with pytest.raises(DigestError, match="parameters"):
            parse_challenges(f'Digest realm="r", nonce="n", {many}')
        with pytest.raises(DigestError, match="challenges"):
            parse_challenges(", ".join(['Digest realm="r", nonce="n"'] * 9))
        with pytest.raises(DigestError, match="challenges"):
            parse_challenges(
                ['Digest realm="r", nonce="n"'] * 5 + ["Basic a=b, Basic c=d, Basic"] * 2
            )
        assert len(parse_challenges(", ".join(['Digest realm="r", nonce="n"'] * 8))) == 8

    def test_digest_error_is_a_telephony_error(self) -> None:
        with pytest.raises(TelephonyError):
            parse_challenges("Digest realm")


class TestRfc7616Section3_4_Response:
    def test_auth_int_when_only_auth_int_is_offered(self) -> None:
        (c,) = parse_challenges('Digest realm="r", nonce="n1", qop="auth-int", algorithm=SHA-256')
        body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n"
        auth = authorize(c, MUFASA, method="INVITE", uri="sip:8001@r", cnonce="c1", body=body)
        assert auth.qop == "auth-int"
        assert auth.response == reference_response(
            "sha256",
            username="Mufasa",
            realm="r",
            password=PASSWORD,
            method="INVITE",
            uri="sip:8001@r",
            nonce="n1",
            nc="00000001",
            cnonce="c1",
            qop="auth-int",
            body=body,
        )
        other = authorize(c, MUFASA, method="INVITE", uri="sip:8001@r", cnonce="c1", body=b"x")
        assert other.response != auth.response  # the body is in the digest

    def test_auth_is_preferred_over_auth_int(self) -> None:
        (c,) = parse_challenges('Digest realm="r", nonce="n", qop="auth-int,auth"')
        assert authorize(c, MUFASA, method="REGISTER", uri="sip:r", cnonce="c").qop == "auth"

    @pytest.mark.parametrize(
        ("token", "hash_name"),
        [("MD5-sess", "md5"), ("SHA-256-sess", "sha256")],
    )
    def test_sess_algorithms(self, token: str, hash_name: str) -> None:
        (c,) = parse_challenges(f'Digest realm="r", nonce="n", qop="auth", algorithm={token}')
        auth = authorize(c, MUFASA, method="REGISTER", uri="sip:r", cnonce="cc", nc=7)
        assert auth.response == reference_response(
            hash_name,
            username="Mufasa",
            realm="r",
            password=PASSWORD,
            method="REGISTER",
            uri="sip:r",
            nonce="n",
            nc="00000007",
            cnonce="cc",
            qop="auth",
            sess=True,
        )
        assert f"algorithm={token}" in auth.serialize() and "nc=00000007" in auth.serialize()

    @pytest.mark.skipif(Algorithm.SHA512_256 not in SUPPORTED, reason="no SHA-512/256 in OpenSSL")
    def test_sha512_256_is_strongest(self) -> None:
        values = [
            'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256',
            'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-512-256',
        ]
        (c,) = choose_challenges(parse_challenges(values))
        assert c.algorithm is Algorithm.SHA512_256
        auth = authorize(c, MUFASA, method="REGISTER", uri="sip:r", cnonce="c")
        assert len(auth.response) == 64 and auth.response == reference_response(
            "sha512_256",
            username="Mufasa",
            realm="r",
            password=PASSWORD,
            method="REGISTER",
            uri="sip:r",
            nonce="n",
            nc="00000001",
            cnonce="c",
            qop="auth",
        )

    def test_rfc2069_mode_without_qop(self) -> None:
        # RFC 3261 §22.4: no qop, response = H(H(A1):nonce:H(A2)), neither cnonce nor nc sent.
        (c,) = parse_challenges('Digest algorithm=MD5, realm="asterisk", nonce="6a3b1b4e"')
        auth = authorize(c, MUFASA, method="REGISTER", uri="sip:10.20.0.2", cnonce="unused")
        md5 = "md5"  # the algorithm under test, not our choice

        def h(data: bytes) -> str:
            return hashlib.new(md5, data).hexdigest()

        ha1 = h(f"Mufasa:asterisk:{PASSWORD}".encode())
        ha2 = h(b"REGISTER:sip:10.20.0.2")
        assert auth.response == h(f"{ha1}:6a3b1b4e:{ha2}".encode())
        text = auth.serialize()
        assert "cnonce" not in text and "nc=" not in text and "qop" not in text

    def test_username_with_quote_is_escaped_and_parses_back(self) -> None:
        (c,) = parse_challenges(RFC7616_SHA256)
        auth = authorize(c, Credentials('a"b\\c', "pw"), method="REGISTER", uri="sip:x", cnonce="c")
        assert r'username="a\"b\\c"' in auth.serialize()
        assert Authorization.parse(auth.serialize()) == auth

    def test_authorization_parse_round_trip_and_errors(self) -> None:
        (c,) = parse_challenges(RFC7616_MD5)
        auth = authorize(c, MUFASA, method="GET", uri="/dir/index.html", cnonce=RFC7616_CNONCE)
        assert Authorization.parse(str(auth)) == auth
        with pytest.raises(DigestError):
            Authorization.parse('Digest username="u", realm="r"')
        with pytest.raises(DigestError):
            Authorization.parse("Basic abc=")
        with pytest.raises(DigestError):
            Authorization.parse(str(auth).replace("nc=00000001", "nc=1"))

    def test_bad_inputs(self) -> None:
        (c,) = parse_challenges(RFC7616_MD5)
        with pytest.raises(DigestError):
            authorize(c, MUFASA, method="GET", uri="/", cnonce="c", nc=0)
        with pytest.raises(DigestError):
            authorize(c, MUFASA, method="GET", uri="/\r\nX: y", cnonce="c")
        with pytest.raises(DigestError):
            Credentials("a\nb", "pw")
        with pytest.raises(DigestError):
            compute_response(
                algorithm=Algorithm.MD5_SESS,
                username="u",
                realm="r",
                password="p",
                method="M",
                uri="u",
                nonce="n",
                qop=None,
            )


class TestRfc8760Section2_4_MultipleChallenges:
    def test_asterisk_offering_sha256_and_md5(self) -> None:
        values = [
            'Digest realm="asterisk",nonce="1733091023/aa",opaque="0b",algorithm=SHA-256,qop="auth"',
            'Digest realm="asterisk",nonce="1733091023/aa",opaque="0b",algorithm=MD5,qop="auth"',
        ]
        (c,) = choose_challenges(parse_challenges(values))
        assert c.algorithm is Algorithm.SHA256

    def test_one_challenge_per_realm(self) -> None:
        values = [
            'Digest realm="proxy.city", nonce="p1", algorithm=MD5, qop="auth"',
            'Digest realm="pbx.city", nonce="x1", algorithm=MD5, qop="auth"',
            'Digest realm="proxy.city", nonce="p2", algorithm=SHA-256, qop="auth"',
        ]
        chosen = choose_challenges(parse_challenges(values))
        assert [(c.realm, c.nonce) for c in chosen] == [("proxy.city", "p2"), ("pbx.city", "x1")]

    def test_equal_strength_keeps_the_first(self) -> None:
        values = [
            'Digest realm="r", nonce="first", algorithm=SHA-256-sess, qop="auth"',
            'Digest realm="r", nonce="second", algorithm=SHA-256, qop="auth"',
        ]
        assert choose_challenges(parse_challenges(values))[0].nonce == "first"


class TestRealWorldCaptures:
    def test_asterisk_401(self) -> None:
        values = header_values(ASTERISK_401, "WWW-Authenticate")
        client = DigestClient(Credentials("speaker-017", "s3cret!"), cnonce=lambda: "a1b2c3d4")
        (c,) = client.challenged(values)
        assert (c.realm, c.algorithm, c.qop, c.opaque) == (
            "asterisk",
            Algorithm.MD5,
            ("auth",),
            "3c1f5e7d0b2a4c6e",
        )
        header = client.authorization("asterisk", "REGISTER", "sip:10.20.0.2")
        assert header is not None
        name, value = header
        assert name == "Authorization"
        auth = Authorization.parse(value)
        assert auth.response == reference_response(
            "md5",
            username="speaker-017",
            realm="asterisk",
            password="s3cret!",
            method="REGISTER",
            uri="sip:10.20.0.2",
            nonce="1733091023/8d3e5f0b1c2a4d6e8f0a1b2c3d4e5f60",
            nc="00000001",
            cnonce="a1b2c3d4",
            qop="auth",
        )
        assert auth.opaque == "3c1f5e7d0b2a4c6e" and auth.algorithm is Algorithm.MD5

    def test_freeswitch_407(self) -> None:
        values = header_values(FREESWITCH_407, "Proxy-Authenticate")
        client = DigestClient(Credentials("1001", "1234"), cnonce=lambda: "0f0e0d0c")
        client.challenged(values, proxy=True)
        ((name, value),) = client.authorizations("INVITE", "sip:8001@10.20.0.3")
        assert name == "Proxy-Authorization"
        auth = Authorization.parse(value)
        assert auth.realm == "10.20.0.3" and auth.opaque is None and "opaque" not in value
        assert auth.response == reference_response(
            "md5",
            username="1001",
            realm="10.20.0.3",
            password="1234",
            method="INVITE",
            uri="sip:8001@10.20.0.3",
            nonce="0c5e6f1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
            nc="00000001",
            cnonce="0f0e0d0c",
            qop="auth",
        )

    def test_kamailio_407_sha256_chosen(self) -> None:
        values = header_values(KAMAILIO_407, "Proxy-Authenticate")
        assert len(values) == 2
        client = DigestClient(Credentials("hub", "pw"), cnonce=lambda: "cafe")
        (c,) = client.challenged(values, proxy=True)
        assert c.algorithm is Algorithm.SHA256
        ((_, value),) = client.authorizations("INVITE", "sip:12319@city.example")
        assert "algorithm=SHA-256" in value
        assert 'nonce="Z0x1c2Vj9m5Yb3Q4cDdEd2VzZW4xMjM0NTY="' in value


class TestRfc3261Section22_2_UacClient:
    CHALLENGE = 'Digest realm="pbx", nonce="N1", opaque="op", algorithm=MD5, qop="auth"'

    def make(self) -> DigestClient:
        counter = itertools.count(1)
        return DigestClient(MUFASA, cnonce=lambda: f"c{next(counter)}")

    def test_nonce_reused_and_nc_increments(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        seen = []
        for _ in range(3):
            header = client.authorization("pbx", "REGISTER", "sip:pbx")
            assert header is not None
            seen.append(Authorization.parse(header[1]))
        assert [a.nc for a in seen] == [1, 2, 3]
        assert {a.nonce for a in seen} == {"N1"}
        assert [a.cnonce for a in seen] == ["c1", "c2", "c3"]
        assert len({a.response for a in seen}) == 3
        assert client.nonce_count("pbx") == 3

    def test_stale_restarts_with_the_new_nonce(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        client.authorizations("REGISTER", "sip:pbx")
        client.authorizations("REGISTER", "sip:pbx")
        stale = self.CHALLENGE.replace('"N1"', '"N2"') + ", stale=true"
        client.challenged(stale, retried=True)  # not a rejection
        ((_, value),) = client.authorizations("REGISTER", "sip:pbx")
        auth = Authorization.parse(value)
        assert (auth.nonce, auth.nc) == ("N2", 1)

    def test_retried_without_stale_is_a_rejection(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        client.authorizations("REGISTER", "sip:pbx")
        with pytest.raises(DigestError) as caught:
            client.challenged(self.CHALLENGE.replace('"N1"', '"N9"'), retried=True)
        assert caught.value.rejected and caught.value.realm == "pbx"
        assert client.realms == ()  # forgotten: the next request goes without credentials
        assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value.details)

    def test_same_nonce_rechallenged_is_a_rejection_even_if_not_flagged(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        client.authorizations("REGISTER", "sip:pbx")
        with pytest.raises(DigestError, match="rejected"):
            client.challenged(self.CHALLENGE)

    def test_new_nonce_for_an_unanswered_request_is_accepted(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        client.authorizations("REGISTER", "sip:pbx")
        client.challenged(self.CHALLENGE.replace('"N1"', '"N3"'))  # e.g. the nonce expired
        assert client.nonce_count("pbx") == 0

    def test_proxy_and_registrar_realms_together(self) -> None:
        client = self.make()
        client.challenged('Digest realm="proxy", nonce="P", qop="auth"', proxy=True)
        client.challenged('Digest realm="pbx", nonce="R", qop="auth"')
        headers = client.authorizations("INVITE", "sip:8001@pbx")
        assert [name for name, _ in headers] == ["Proxy-Authorization", "Authorization"]
        assert client.authorization("nobody", "INVITE", "sip:x") is None

    def test_realm_count_is_bounded(self) -> None:
        client = DigestClient(MUFASA, cnonce=lambda: "c", max_realms=2)
        for realm in ("a", "b", "c"):
            client.challenged(f'Digest realm="{realm}", nonce="n", qop="auth"')
        assert client.realms == ("b", "c")

    def test_nonce_count_exhausted_drops_the_realm(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        client._realms["pbx"].nc = MAX_NC - 1  # jump to the end of the 8-hex-digit counter
        header = client.authorization("pbx", "REGISTER", "sip:pbx")
        assert header is not None and "nc=ffffffff" in header[1]
        assert client.authorization("pbx", "REGISTER", "sip:pbx") is None
        assert client.realms == ()

    def test_forget(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        client.forget("pbx")
        assert client.authorizations("REGISTER", "sip:pbx") == []
        client.challenged(self.CHALLENGE)
        client.forget()
        assert client.realms == ()

    def test_malformed_challenge_leaves_the_state_alone(self) -> None:
        client = self.make()
        client.challenged(self.CHALLENGE)
        with pytest.raises(DigestError):
            client.challenged('Digest realm="pbx", nonce=')
        assert client.realms == ("pbx",)


class TestPasswordsNeverShown:
    def test_repr_and_str(self) -> None:
        client = DigestClient(MUFASA, cnonce=lambda: "c")
        (challenge,) = client.challenged(RFC7616_SHA256)
        header = client.authorization("http-auth@example.org", "REGISTER", "sip:x")
        assert header is not None
        auth = Authorization.parse(header[1])
        for obj in (MUFASA, client, challenge, auth, header):
            assert PASSWORD not in repr(obj)
            assert PASSWORD not in str(obj)
        assert "Mufasa" in repr(MUFASA)  # the username is fine to show

    def test_errors_do_not_carry_it(self) -> None:
        client = DigestClient(MUFASA, cnonce=lambda: "c")
        client.challenged(RFC7616_SHA256)
        client.authorizations("REGISTER", "sip:x")
        for bad in ('Digest realm="x"', RFC7616_SHA256):
            try:
                client.challenged(bad, retried=True)
            except DigestError as exc:
                assert PASSWORD not in f"{exc} {exc!r} {exc.details!r} {exc.to_json()!r}"
            else:  # pragma: no cover
                pytest.fail("expected DigestError")


_PARAM_NAMES = st.sampled_from(
    ["realm", "nonce", "opaque", "algorithm", "qop", "stale", "domain", "x", "Realm"]
)
_VALUES = st.one_of(
    st.text(alphabet='ab"\\, =\t\x00\u00e9-/', max_size=12).map(lambda s: f'"{s}"'),
    st.sampled_from(["MD5", "SHA-256", "md5-sess", "auth", "true", "", "=", '"']),
)
_CHALLENGE_TEXT = st.lists(st.tuples(_PARAM_NAMES, _VALUES), min_size=0, max_size=6).map(
    lambda ps: "Digest " + ", ".join(f"{k}={v}" for k, v in ps)
)


class TestFuzz:
    @settings(max_examples=400, deadline=None)
    @given(st.one_of(st.text(max_size=300), _CHALLENGE_TEXT, st.lists(_CHALLENGE_TEXT, max_size=3)))
    def test_parser_raises_only_digest_error(self, value: str | list[str]) -> None:
        try:
            challenges = parse_challenges(value)
            chosen = choose_challenges(challenges)
        except DigestError:
            return
        for challenge in chosen:
            auth = authorize(challenge, MUFASA, method="REGISTER", uri="sip:x", cnonce="c")
            assert Authorization.parse(auth.serialize()).response == auth.response

    @settings(max_examples=200, deadline=None)
    @given(
        realm=st.text(max_size=20).filter(lambda s: not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", s)),
        nonce=st.text(alphabet="abcXYZ0129+/=-_.", min_size=1, max_size=40),
        algorithm=st.sampled_from(sorted(SUPPORTED, key=lambda a: a.value)),
        qop=st.sampled_from([("auth",), ("auth-int",), ("auth", "auth-int")]),
        stale=st.booleans(),
    )
    def test_serialize_parse_round_trip(
        self, realm: str, nonce: str, algorithm: Algorithm, qop: tuple[str, ...], stale: bool
    ) -> None:
        c = Challenge(realm=realm, nonce=nonce, algorithm=algorithm, qop=qop, stale=stale)
        assert parse_challenges(c.serialize()) == (c,)


class TestValuesCheckThemselves:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"realm": "r\r\nX: y", "nonce": "n"},
            {"realm": "r", "nonce": ""},
            {"realm": "r", "nonce": "n", "opaque": "o\n"},
            {"realm": "r", "nonce": "n", "qop": ("auth int",)},
            {"realm": "r", "nonce": "n", "domain": ("sip:a sip:b",)},
        ],
    )
    def test_challenge(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(DigestError):
            Challenge(**kwargs)  # type: ignore[arg-type]

    def test_authorization(self) -> None:
        base = Authorization(username="u", realm="r", nonce="n", uri="sip:x", response="00")
        with pytest.raises(DigestError):
            dataclasses.replace(base, uri="sip:x\r\nVia: evil")
        with pytest.raises(DigestError):
            dataclasses.replace(base, qop="auth, auth-int")
        with pytest.raises(DigestError):
            dataclasses.replace(base, nc=MAX_NC + 1)
