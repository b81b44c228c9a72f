"""Speaker health: online, busy, offline or unknown, and since when, from SIP OPTIONS and our calls.

Theory of operation: every ``speaker_health_interval`` seconds the hub sends each active speaker an
OPTIONS (RFC 3261 §11; the transaction retransmits it, so one lost datagram is not a miss). What
comes back decides the speaker's state:

- any final response means the device is there: ``online`` — except 486, which a speaker that is
  already in a call (someone else's) answers with: ``busy``;
- no response at all is a *miss*; ``misses_offline`` misses in a row make it ``offline`` (one lost
  check on a lossy street link does not flap the wall);
- while the hub itself has a call up to the speaker it is ``busy`` whatever OPTIONS says, and goes
  back to what the checks last said when the call ends.

``HealthTable`` holds that per speaker and returns only the statuses that changed, each with the
instant (``since``, wall-clock seconds) the state began, for the ``speakers`` state channel.
No I/O: the monitor (``monitor.py``) sends the OPTIONS and passes results in with ``now``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable


class SpeakerState(enum.Enum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    BUSY = "busy"
    OFFLINE = "offline"


LABELS = {
    SpeakerState.UNKNOWN: "未知",
    SpeakerState.ONLINE: "在线",
    SpeakerState.BUSY: "通话中",
    SpeakerState.OFFLINE: "离线",
}


@dataclasses.dataclass(frozen=True, slots=True)
class SpeakerStatus:
    speaker_id: int
    state: SpeakerState
    since: float | None  # wall-clock seconds (None: never checked)
    last_status: int | None  # the last OPTIONS answer (None: none)

    def to_json(self) -> dict[str, object]:
        from datetime import UTC, datetime

        return {
            "id": self.speaker_id,
            "state": self.state.value,
            "label": LABELS[self.state],
            "since": None
            if self.since is None
            else datetime.fromtimestamp(self.since, UTC).isoformat(),
            "sip_status": self.last_status,
        }


@dataclasses.dataclass(slots=True)
class _Entry:
    checked: SpeakerState = SpeakerState.UNKNOWN  # what OPTIONS says
    misses: int = 0
    calls: int = 0  # our calls up now
    last_status: int | None = None
    shown: SpeakerState = SpeakerState.UNKNOWN
    since: float | None = None


class HealthTable:
    def __init__(self, *, misses_offline: int = 2) -> None:
        if misses_offline < 1:
            raise ValueError("misses_offline must be at least 1")
        self.misses_offline = misses_offline
        self._entries: dict[int, _Entry] = {}

    def status(self, speaker_id: int) -> SpeakerStatus:
        e = self._entries.get(speaker_id) or _Entry()
        return SpeakerStatus(speaker_id, e.shown, e.since, e.last_status)

    def statuses(self) -> list[SpeakerStatus]:
        return [self.status(sid) for sid in sorted(self._entries)]

    def track(self, speaker_ids: Iterable[int]) -> tuple[list[SpeakerStatus], list[int]]:
        """The speakers to watch now: new ones start ``unknown`` (returned as changes), the ones no
        longer listed are forgotten (returned by id, to clear from the channel)."""
        wanted = set(speaker_ids)
        gone = sorted(set(self._entries) - wanted)
        for sid in gone:
            del self._entries[sid]
        added = []
        for sid in sorted(wanted - set(self._entries)):
            self._entries[sid] = _Entry()
            added.append(self.status(sid))
        return added, gone

    def checked(self, speaker_id: int, status: int | None, now: float) -> list[SpeakerStatus]:
        """An OPTIONS result: a final status, or None when nothing came back."""
        e = self._entries.setdefault(speaker_id, _Entry())
        if status is None:
            e.misses += 1
            if e.misses >= self.misses_offline or e.checked is SpeakerState.UNKNOWN:
                e.checked = SpeakerState.OFFLINE
        else:
            e.misses = 0
            e.last_status = status
            e.checked = SpeakerState.BUSY if status == 486 else SpeakerState.ONLINE
        return self._show(speaker_id, e, now)

    def call_started(self, speaker_id: int, now: float) -> list[SpeakerStatus]:
        e = self._entries.setdefault(speaker_id, _Entry())
        e.calls += 1
        return self._show(speaker_id, e, now)

    def call_ended(self, speaker_id: int, now: float, *, answered: bool) -> list[SpeakerStatus]:
        """Our call ended; one that was answered proves the speaker is online."""
        e = self._entries.setdefault(speaker_id, _Entry())
        e.calls = max(0, e.calls - 1)
        if answered:
            e.checked, e.misses = SpeakerState.ONLINE, 0
        return self._show(speaker_id, e, now)

    def _show(self, speaker_id: int, e: _Entry, now: float) -> list[SpeakerStatus]:
        state = SpeakerState.BUSY if e.calls else e.checked
        if state is e.shown and e.since is not None:
            return []
        e.shown, e.since = state, now
        return [self.status(speaker_id)]
