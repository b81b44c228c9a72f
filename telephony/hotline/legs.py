"""A hotline call's media: the caller's RTP leg and what it is bridged to, 20 ms at a time.

Theory of operation: one ``CallerLeg`` per call holds the caller's ``RtpStream`` (G.711 in the law
the caller's offer chose), what the caller hears — a prompt, hold music, or the agent — and the
agent's ``AgentLeg`` (WebRTC) once connected. All routing happens in two places, both on the event
loop, both one frame at a time, with no task per call:

- ``next_frame()`` is the caller stream's ``play_pull`` provider, asked by the shared media clock
  at each 20 ms slot: the prompt if one plays (its end is reported through ``on_prompt_end``),
  else, when connected and not held, the agent's newest frame (with a barging supervisor mixed
  in), else hold music (one loop, each call at its own place in it), else silence. The same tick
  moves the agents' frames of an attended transfer's consultation between the two agents, and
  gives the agent's frame to the recorder.
- ``caller_audio(payload)`` is the stream's ``on_audio`` (frames at playout, after the jitter
  buffer): to the agent (a whispering supervisor mixed in) unless held, to every monitoring
  supervisor mixed with the agent's last frame (they hear both sides), and to the recorder's caller
  channel.

Mixing decodes to 16-bit PCM, adds with saturation and encodes again (numpy, per frame). Frames of
the agents and supervisors wait in their legs' bounded queues; a tick takes the newest and drops
what piled up beyond ``AGENT_BACKLOG`` (the caller hears the agent with the least delay).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import Final, Protocol

import numpy as np

from telephony.g711 import G711Law
from telephony.hotline.recorder import CallRecorder
from telephony.rtp.session import RtpStream
from telephony.sip.call import Call, IncomingCall

FRAME: Final = 160
#: Agent frames kept waiting for the caller's slot; older ones are dropped.
AGENT_BACKLOG: Final = 3


class Mode(enum.Enum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


def mix(law: G711Law, *frames: bytes) -> bytes:
    """The sum of G.711 frames of one law, saturated to 16 bits."""
    if len(frames) == 1:
        return frames[0]
    total = np.zeros(FRAME, np.int32)
    for f in frames:
        pcm = law.decode(f)
        total[: len(pcm)] += pcm[:FRAME]
    return law.encode(np.clip(total, -32768, 32767).astype(np.int16))


def newest(q: asyncio.Queue[bytes] | None) -> bytes | None:
    """The newest frame of ``q`` after dropping all but ``AGENT_BACKLOG`` (None when empty)."""
    if q is None or q.empty():
        return None
    while q.qsize() > AGENT_BACKLOG:
        q.get_nowait()
    return q.get_nowait()


class AgentSide(Protocol):
    """What a call asks of an agent's leg: the browser's ``AgentLeg`` or a desk phone's
    ``phone.PhoneLeg``."""

    closed: asyncio.Event

    @property
    def codec(self) -> str | None: ...

    @property
    def passthrough(self) -> bool: ...

    def push(self, payload: bytes) -> None: ...

    def subscribe(self, maxsize: int = 10) -> asyncio.Queue[bytes]: ...

    async def close(self) -> None: ...


class Peer:
    """An agent or supervisor leg attached to the call, with its frame queue."""

    def __init__(self, user: str, leg: AgentSide) -> None:
        self.user = user
        self.leg = leg
        self.queue = leg.subscribe(maxsize=10)
        self.last: bytes | None = None

    def take(self) -> bytes | None:
        frame = newest(self.queue)
        self.last = frame
        return frame


class CallerLeg:
    def __init__(
        self,
        call_id: str,
        caller: str,
        incoming: IncomingCall,
        rtp: RtpStream,
        law: G711Law,
        music: bytes,
        arrived: float,
    ) -> None:
        self.id = call_id
        self.caller = caller
        self.incoming = incoming
        self.sip: Call | None = None
        self.rtp = rtp
        self.law = law
        self.arrived = arrived
        self.db_id: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.silence = bytes([law.silence]) * FRAME
        self._music = music if law is G711Law.ALAW else law.encode(G711Law.ALAW.decode(music))
        self._music_pos = 0
        self.music = False
        self.prompt: bytes | None = None
        self._prompt_pos = 0
        self.prompt_hangup = False
        self.on_prompt_end: Callable[[CallerLeg], None] | None = None
        self.agent: Peer | None = None
        self.consult: tuple[Peer, Peer] | None = None  # (the first agent, the consulted one)
        self.held = False
        self.monitors: dict[str, tuple[Peer, Mode]] = {}
        self.recorder: CallRecorder | None = None
        self.play_task: asyncio.Task[object] | None = None
        self.ended = False

    # -- what the caller hears -----------------------------------------------------------------

    def play_prompt(self, audio: bytes, *, hang_up: bool = False) -> None:
        """Play ``audio`` (A-law) now, replacing a prompt still playing."""
        self.prompt = (
            audio if self.law is G711Law.ALAW else self.law.encode(G711Law.ALAW.decode(audio))
        )
        self._prompt_pos = 0
        self.prompt_hangup = hang_up

    def next_frame(self) -> bytes | None:
        if self.ended:
            return None
        if self.consult is not None:
            first, second = self.consult
            a, b = first.take(), second.take()
            if a is not None:
                second.leg.push(a)
            if b is not None:
                first.leg.push(b)
        if self.prompt is not None:
            pos = self._prompt_pos
            piece = self.prompt[pos : pos + FRAME]
            self._prompt_pos = pos + FRAME
            if self._prompt_pos >= len(self.prompt):
                self.prompt = None
                if self.on_prompt_end is not None:
                    asyncio.get_running_loop().call_soon(self.on_prompt_end, self)
            if len(piece) < FRAME:
                piece += self.silence[len(piece) :]
            return piece
        agent = self.agent
        if agent is not None and self.consult is None:
            frame = agent.take()
            if self.recorder is not None:
                self.recorder.agent(self.law.decode(frame or self.silence))
            if not self.held:
                barge = [f for p, m in self.monitors.values() if m is Mode.BARGE
                         if (f := p.take()) is not None]  # fmt: skip
                if barge:
                    return mix(self.law, frame or self.silence, *barge)
                return frame if frame is not None else self.silence
        if self.music or self.held or self.consult is not None:
            return self._next_music()
        return self.silence

    def _next_music(self) -> bytes:
        music = self._music
        if not music:
            return self.silence
        pos = self._music_pos
        frame = music[pos : pos + FRAME]
        if len(frame) < FRAME:
            frame += music[: FRAME - len(frame)]
        self._music_pos = (pos + FRAME) % len(music)
        return frame

    # -- what the caller says ------------------------------------------------------------------

    def caller_audio(self, payload: bytes) -> None:
        if self.ended:
            return
        if self.recorder is not None and self.agent is not None:
            self.recorder.caller(self.law.decode(payload))
        agent = self.agent
        if agent is None or self.held or self.consult is not None:
            return
        whisper = [p.take() for p, m in self.monitors.values() if m is Mode.WHISPER]
        extra = [f for f in whisper if f is not None]
        agent.leg.push(mix(self.law, payload, *extra) if extra else payload)
        if self.monitors:  # every supervisor hears both sides, mixed, once per 20 ms
            both = payload if agent.last is None else mix(self.law, payload, agent.last)
            for peer, _mode in self.monitors.values():
                peer.leg.push(both)

    # -- ending --------------------------------------------------------------------------------

    def peers(self) -> list[AgentSide]:
        legs: list[AgentSide] = [] if self.agent is None else [self.agent.leg]
        if self.consult is not None:
            legs += [p.leg for p in self.consult]
        legs += [p.leg for p, _ in self.monitors.values()]
        return list(dict.fromkeys(legs))
