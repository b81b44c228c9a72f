"""Telephony settings refuse what would fail later or leak: a bad RTP range, a registrar that is not
a SIP URI or carries a password, TLS halves, and missing certificate files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings, SettingsError


def settings(**env: str) -> Settings:
    return Settings.from_env({f"CITYHUB_{k.upper()}": v for k, v in env.items()}, env_file=None)


def test_defaults() -> None:
    s = settings()
    assert (s.sip_host, s.sip_port, s.rtp_port_range) == ("127.0.0.1", 5060, (20000, 20999))
    assert s.sip_address == "127.0.0.1" and not s.tls
    assert settings(sip_advertise="10.1.2.3").sip_address == "10.1.2.3"
    h = settings()
    assert (h.hotline_number, h.hotline_max_queue, h.hotline_max_wait) == ("12319", 100, 600.0)
    assert (h.hotline_hours, h.hotline_trunks, h.hotline_callback_key) == ("", (), "1")
    t = settings(hotline_hours="08:00-20:00", hotline_trunks="10.0.0.0/8, 192.0.2.7")
    assert t.hotline_trunks == ("10.0.0.0/8", "192.0.2.7")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"rtp_ports": "20001-20999"}, "CITYHUB_RTP_PORTS"),
        ({"rtp_ports": "20000"}, "CITYHUB_RTP_PORTS"),
        ({"rtp_ports": "900-2000"}, "CITYHUB_RTP_PORTS"),
        ({"sip_port": "70000"}, "CITYHUB_SIP_PORT"),
        ({"sip_registrar": "pbx.example"}, "CITYHUB_SIP_REGISTRAR"),
        ({"sip_registrar": "sip:hub:secret@pbx.example"}, "no password"),
        ({"sip_register_expires": "0"}, "CITYHUB_SIP_REGISTER_EXPIRES"),
        ({"warning_retries": "-1"}, "CITYHUB_WARNING_RETRIES"),
        ({"hotline_number": "12 319"}, "CITYHUB_HOTLINE_NUMBER"),
        ({"hotline_max_wait": "0"}, "_MAX_WAIT"),
        ({"hotline_max_queue": "-1"}, "CITYHUB_HOTLINE_MAX_QUEUE"),
        ({"hotline_callback_key": "12"}, "CITYHUB_HOTLINE_CALLBACK_KEY"),
        ({"hotline_hours": "8-20"}, "CITYHUB_HOTLINE_HOURS"),
        ({"hotline_trunks": "pbx.example"}, "CITYHUB_HOTLINE_TRUNKS"),
        ({"tls_cert": "/nonexistent.pem"}, "go together"),
        ({"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}, "no such file"),
    ],
)
def test_refused_with_the_setting_named(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError) as e:
        settings(**env)
    assert says in str(e.value)


def test_tls_with_both_files(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    s = settings(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem"))
    assert s.tls


def test_the_registrar_password_is_a_secret() -> None:
    s = settings(sip_registrar="sip:pbx.example", sip_password="hunter2")
    assert "hunter2" not in repr(s) and s.sip_password.reveal() == "hunter2"
