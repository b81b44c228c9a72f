"""Warnings to sipp speakers (the issue's acceptance tests): sipp plays the auto-answer loudspeaker
(``uas``) and answers with an SDP whose media port is the test's own UDP socket, so the RTP the hub
sends is captured, decoded and compared with the clip — content, order, pacing, completeness. One
speaker, a group of ten at once, speakers that refuse (486, 603) or never answer, and speakers whose
SIP link loses 10% of the messages (``-lost 10``): every warning still arrives whole."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hub.state import HubState
from storage import voice as store
from storage.db import connect
from telephony import g711
from tests.telephony.test_sip_endpoint import sipp_or_skip
from tests.telephony.test_sip_sipp import free_udp_port
from tests.telephony.warnings.test_warnings_play import add_clip, wait_ended

pytestmark = pytest.mark.timeout(120)
SCENARIOS = Path(__file__).parent / "sipp"


class Capture(asyncio.DatagramProtocol):
    """The speaker's RTP socket: every datagram with its arrival time."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets.append((time.monotonic(), data))

    def rtp(self) -> list[tuple[float, int, int, int, bytes]]:
        """(arrival, sequence, timestamp, payload type, payload) of the RTP packets."""
        out = []
        for at, d in self.packets:
            if len(d) < 12 or d[0] >> 6 != 2 or 72 <= (d[1] & 0x7F) <= 76:
                continue
            seq, ts = struct.unpack_from("!HI", d, 2)
            cc = d[0] & 0x0F
            out.append((at, seq, ts, d[1] & 0x7F, d[12 + 4 * cc :]))
        return out


@dataclasses.dataclass
class SippSpeaker:
    port: int
    capture: Capture
    proc: asyncio.subprocess.Process
    cwd: Path

    @property
    def uri(self) -> str:
        return f"sip:speaker@127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def sipp_speaker(
    tmp: Path, scenario: str = "speaker.xml", *, lost: int = 0, **keys: str
) -> AsyncIterator[SippSpeaker]:
    sipp = sipp_or_skip()
    loop = asyncio.get_running_loop()
    capture = Capture()
    transport, _ = await loop.create_datagram_endpoint(lambda: capture, local_addr=("127.0.0.1", 0))
    rtp_port = transport.get_extra_info("sockname")[1]
    port = free_udp_port()
    cwd = tmp / f"sipp-{port}"
    cwd.mkdir()
    args = ["-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port)]
    args += ["-mp", str(free_udp_port(pair=True)), "-m", "1", "-timeout", "60s", "-nostdin"]
    args += ["-key", "rtpport", str(rtp_port), "-key", "pt", "8", "-key", "codec", "PCMA"]
    for k, v in keys.items():
        args += ["-key", k, v]
    if lost:
        args += ["-lost", str(lost)]
    proc = await asyncio.create_subprocess_exec(
        sipp,
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.3)  # sipp binds its socket
    try:
        yield SippSpeaker(port, capture, proc, cwd)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        transport.close()


async def add_speakers(hub: HubState, uris: list[str], group: str | None = None) -> list[int]:
    ids = []
    async with connect(hub.pool) as conn:
        for n, uri in enumerate(uris):
            sp, _ = await store.upsert_speaker(
                conn, store.SpeakerFields(name=f"sipp喇叭{n:02d}", uri=uri)
            )
            ids.append(sp.id)
        if group is not None:
            async with conn.transaction():
                g = await store.insert_group(conn, name=group, speaker_ids=ids)
            return [g.id]
    return ids


def check_stream(capture: Capture, alaw: bytes, repeat: int) -> None:
    """What a listener at the speaker would check: the whole clip, in order, at 20 ms."""
    packets = capture.rtp()
    assert len(packets) == len(alaw) // 160 * repeat
    assert {p[3] for p in packets} == {8}
    seqs = [p[1] for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    stamps = [p[2] for p in packets]
    assert all((b - a) % 2**32 == 160 for a, b in itertools.pairwise(stamps))
    assert b"".join(p[4] for p in packets) == alaw * repeat
    arrivals = np.array([p[0] for p in packets])
    gaps = np.diff(arrivals) * 1000
    assert 19.0 < gaps.mean() < 21.0, gaps.mean()  # paced, not burst
    # and the audio is the clip's: the tone's frequency survives the trip
    pcm = g711.alaw_decode(b"".join(p[4] for p in packets)).astype(float)
    peak = np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / pcm.size
    assert abs(peak - 440) < 5


async def play(seat: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = await seat.post("/api/warnings", json=body)
    assert r.status_code == 202, r.text
    return await wait_ended(seat, r.json()["id"], timeout=60)


async def test_a_clip_plays_whole_to_one_sipp_speaker(
    hub_state: HubState, login: Any, tmp_path: Path
) -> None:
    clip_id, alaw = await add_clip(hub_state, 2.0)
    seat = await login("seat1")
    async with sipp_speaker(tmp_path) as spk:
        ids = await add_speakers(hub_state, [spk.uri])
        w = await play(seat, {"clip_id": clip_id, "speaker_ids": ids, "repeat": 2})
        assert w["state"] == "done"
        assert w["targets"][0]["outcome"] == "delivered"
        assert w["targets"][0]["packets"] == 200
        check_stream(spk.capture, alaw, 2)
        async with asyncio.timeout(10):
            assert await spk.proc.wait() == 0  # sipp saw INVITE, ACK, BYE: its call succeeded


async def test_a_group_of_ten_sipp_speakers_at_once(
    hub_state: HubState, login: Any, tmp_path: Path
) -> None:
    clip_id, alaw = await add_clip(hub_state, 1.0)
    seat = await login("seat1")
    async with contextlib.AsyncExitStack() as stack:
        speakers = [await stack.enter_async_context(sipp_speaker(tmp_path)) for _ in range(10)]
        (gid,) = await add_speakers(hub_state, [s.uri for s in speakers], group="十个喇叭")
        w = await play(seat, {"clip_id": clip_id, "group_ids": [gid]})
        assert w["state"] == "done"
        assert [t["outcome"] for t in w["targets"]] == ["delivered"] * 10
        for spk in speakers:
            check_stream(spk.capture, alaw, 1)
        # all ten were sent together: their first packets left within a few ms of each other
        firsts = [spk.capture.rtp()[0][0] for spk in speakers]
        assert max(firsts) - min(firsts) < 1.0


async def test_refusing_and_silent_sipp_speakers_are_reported(
    hub_state: HubState, login: Any, tmp_path: Path
) -> None:
    voice = hub_state.services["voice"]
    voice.settings = dataclasses.replace(
        voice.settings, warning_retries=0, warning_ring_timeout=2.0
    )
    clip_id, alaw = await add_clip(hub_state, 0.4)
    seat = await login("seat1")
    async with (
        sipp_speaker(tmp_path, "speaker_busy.xml") as busy,
        sipp_speaker(tmp_path, "speaker_decline.xml") as declined,
        sipp_speaker(tmp_path, "speaker_silent.xml") as silent,
        sipp_speaker(tmp_path) as fine,
    ):
        ids = await add_speakers(hub_state, [busy.uri, declined.uri, silent.uri, fine.uri])
        w = await play(seat, {"clip_id": clip_id, "speaker_ids": ids})
        got = {t["speaker_id"]: (t["outcome"], t["status"]) for t in w["targets"]}
        assert got == {
            ids[0]: ("busy", 486),
            ids[1]: ("rejected", 603),
            ids[2]: ("no_answer", 487),
            ids[3]: ("delivered", None),
        }
        assert w["state"] == "done"
        check_stream(fine.capture, alaw, 1)
        for spk in (busy, declined, silent):
            assert spk.capture.rtp() == []
        async with asyncio.timeout(10):
            # each sipp saw its scenario through: the CANCEL came, the 487 was ACKed
            assert [await s.proc.wait() for s in (busy, declined, silent)] == [0, 0, 0]


async def test_with_ten_percent_sip_loss_every_warning_still_arrives_whole(
    hub_state: HubState, login: Any, tmp_path: Path
) -> None:
    clip_id, alaw = await add_clip(hub_state, 1.0)
    seat = await login("seat1")
    async with contextlib.AsyncExitStack() as stack:
        speakers = [
            await stack.enter_async_context(sipp_speaker(tmp_path, lost=10)) for _ in range(5)
        ]
        ids = await add_speakers(hub_state, [s.uri for s in speakers])
        w = await play(seat, {"clip_id": clip_id, "speaker_ids": ids})
        assert [t["outcome"] for t in w["targets"]] == ["delivered"] * 5
        for spk in speakers:
            check_stream(spk.capture, alaw, 1)
