"""``cityhub call``: place a test call to the hotline from the shell, as a citizen's phone would.

Theory of operation: a ``UserAgent`` on a free loopback port (or ``--bind``) sends the INVITE to
``--hub`` (default: the hub's ``CITYHUB_SIP_HOST:CITYHUB_SIP_PORT``) for ``--to`` (the hotline
number), with the caller number ``--from`` in the From header, offering PCMA and PCMU and
telephone-event. Once answered it sends a tone (``--tone`` Hz, 0 for silence) as the caller's voice,
presses ``--digits`` (RFC 4733) after ``--digits-after`` seconds (``1``: the callback key), prints
once a second how loud what it hears is (the welcome prompt, the hold music, the agent), and hangs
up after ``--seconds`` or when the hub hangs up. The exit code is 0 when the call was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time

import numpy as np

from hub.settings import Settings
from hub.subsystem import CliCommand
from telephony.errors import CallFailed
from telephony.g711 import G711Law
from telephony.rtp.session import PortPool, RtpStream
from telephony.sdp import (
    PCMA,
    PCMU,
    Direction,
    LocalMedia,
    SdpSession,
    build_offer,
    negotiate_answer,
)
from telephony.sip.agent import UserAgent


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub", help="the hub's SIP address host:port (default: from the settings)")
    p.add_argument("--to", default=None, help="the number dialled (default: the hotline number)")
    p.add_argument("--from", dest="caller", default="13800138000", help="the caller's number")
    p.add_argument("--seconds", type=float, default=30.0, help="hang up after this long")
    p.add_argument("--tone", type=float, default=440.0, help="the caller's tone in Hz (0: silent)")
    p.add_argument("--digits", default="", help="keys to press, e.g. 1 for the callback")
    p.add_argument("--digits-after", type=float, default=12.0, help="seconds before the keys")
    p.add_argument("--bind", default="127.0.0.1", help="the local address to call from")


def level_db(pcm: np.ndarray) -> float:
    """The RMS level of 16-bit samples in dBFS (−120 for silence)."""
    if not len(pcm):
        return -120.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return -120.0 if rms < 1 else 20 * np.log10(rms / 32768)


async def place_call(args: argparse.Namespace, settings: Settings) -> int:
    hub = args.hub or f"{settings.sip_host}:{settings.sip_port}"
    number = args.to or settings.hotline_number
    ua = UserAgent(args.bind, 0, user=args.caller)
    await ua.start()
    stream: RtpStream | None = None
    try:
        stream = await RtpStream.open(PortPool(47000, 47999), args.bind)
        local = LocalMedia(args.bind, stream.local_port, Direction.SENDRECV, codecs=(PCMA, PCMU))
        _, offer = build_offer(SdpSession(secrets.randbelow(2**31), 1, args.bind), local)
        print(f"拨打 sip:{number}@{hub}（主叫 {args.caller}）…", flush=True)
        try:
            call = await ua.invite(f"sip:{number}@{hub}", offer, ring_timeout=30)
        except CallFailed as exc:
            print(f"未接通：{exc.outcome} {exc.status or ''} {exc.reason}".rstrip())
            return 1
        media = negotiate_answer(offer, call.remote_sdp)
        law = G711Law.from_payload_type(media.codec.payload_type)
        stream.set_remote((media.remote_address, media.remote_port), media.codec.payload_type,
                          event_payload_type=media.telephone_event)  # fmt: skip
        print(f"已接通（{media.codec.encoding}）", flush=True)
        heard = bytearray()
        stream.on_audio = heard.extend
        t = np.arange(int(8000 * max(args.seconds, 1))) / 8000
        tone = (np.sin(2 * np.pi * args.tone * t) * 8000).astype(np.int16)
        voice = law.encode(tone if args.tone > 0 else np.zeros_like(tone))
        start = time.monotonic()
        sender = asyncio.get_running_loop().create_task(stream.play(voice))
        pressed = not args.digits
        while time.monotonic() - start < args.seconds and not call.ended.done():
            await asyncio.wait([call.ended], timeout=1.0)
            second = law.decode(bytes(heard[-8000:]))
            print(
                f"{time.monotonic() - start:5.1f} s  听到 {level_db(second):6.1f} dBFS", flush=True
            )
            if not pressed and time.monotonic() - start >= args.digits_after:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
                sent = await stream.send_digits(args.digits)
                print(f"按键 {args.digits}（{sent} 个 RTP 事件包）", flush=True)
                pressed = True
        if call.ended.done():
            print(f"对方挂断（{call.ended.result()}）")
        else:
            await call.hangup()
            print("已挂断")
        sender.cancel()
        return 0
    finally:
        if stream is not None:
            stream.close()
        ua.close()
        await ua.wait_closed()


def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        return asyncio.run(place_call(args, settings))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"无法拨打：{exc}", file=sys.stderr)
        return 2


CALL_CLI = CliCommand("call", "拨打 12319 热线测试（模拟市民来电）", _configure, _run)
