"""The voice-warning service of one telephony process: speaker health, running warnings, live talk
and the schedules, on the process's shared SIP and media stack.

Theory of operation: ``VoiceService.running(hub, stack)`` opens everything on one ``AsyncExitStack``
and closes it in reverse. It calls out through the ``TelephonyStack`` (``telephony.stack``: the
``UserAgent``, the RTP ``PortPool`` and the ``MediaClock`` every stream shares, the registration to a
PBX), which the 12319 hotline shares too. The pieces it owns:

- the health monitor: OPTIONS to every active speaker each ``speaker_health_interval`` s; the
  ``HealthTable`` (``health.py``) turns answers and our own calls into online/busy/offline and
  since when, published on the ``speakers`` state channel;
- warnings: ``start_warning`` stores the warning and its targets (PostgreSQL first: the log is the
  truth), then a ``WarningRun`` (``player.py``) delivers it; every target change is stored and the
  warning is shown on the ``warnings`` state channel while it runs;
- live talk: a ``TalkSession`` (WebRTC from the seat's browser) feeds a live ``WarningRun``;
- the scheduler: every few seconds the active schedules' due slot (``schedule.py``) is *claimed* in
  PostgreSQL (``claim_schedule_fire``) and played only by the process whose claim succeeded.

Handlers reach the service through ``TelephonySubsystem.voice``; a process that does not run the
telephony role answers warning requests with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hub.core.errors import Conflict, NotFound, ValidationFailed
from storage import voice as store
from storage.db import connect
from telephony.rtp.session import RtpStream
from telephony.sip.agent import Credentials
from telephony.sip.registration import Registration
from telephony.warnings import clips
from telephony.warnings.delivery import Outcome, Target
from telephony.warnings.health import HealthTable, SpeakerStatus
from telephony.warnings.player import MediaDeps, SpeakerTarget, WarningRun
from telephony.warnings.schedule import Recurrence, ScheduleError

if TYPE_CHECKING:
    from hub.state import HubState
    from telephony.stack import TelephonyStack
    from telephony.warnings.talk import TalkSession

log = logging.getLogger(__name__)

#: Seconds between scheduler passes (a slot fires within this of its time).
SCHEDULER_PERIOD = 5.0
#: Concurrent OPTIONS checks.
HEALTH_CONCURRENCY = 32
#: Stored outcome of a target being called (the table's "calling" is "pending, attempts > 0").
STORED_OUTCOME = {Outcome.CALLING: "pending"}


def target_of(s: store.Speaker) -> SpeakerTarget:
    creds = None
    if s.username is not None:
        creds = Credentials(s.username, s.password or "")
    return SpeakerTarget(s.id, s.name, s.uri, creds, s.auto_answer)


def _instant(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class VoiceService:
    def __init__(self, hub: HubState, stack: TelephonyStack) -> None:
        self.hub = hub
        s = hub.settings
        self.settings = s
        self.stack = stack
        self.agent = stack.agent
        self.ports = stack.ports
        self.clock = stack.clock
        self.health = HealthTable()
        self.runs: dict[int, WarningRun] = {}
        self.streams: dict[tuple[int, int], RtpStream] = {}
        self.closed_packets = [0]
        self.talks: dict[str, tuple[TalkSession, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.tz = ZoneInfo(s.timezone)
        from telephony.warnings.talk import parse_networks, restrict_host_addresses

        self.webrtc_networks = parse_networks(s.webrtc_networks)
        if self.webrtc_networks:
            restrict_host_addresses(self.webrtc_networks)

    # -- life --------------------------------------------------------------------------------

    @property
    def registration(self) -> Registration | None:
        return self.stack.registration

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, hub: HubState, stack: TelephonyStack) -> AsyncIterator[VoiceService]:
        service = cls(hub, stack)
        async with contextlib.AsyncExitStack() as exits:
            exits.push_async_callback(service._stop_all)
            async with connect(hub.pool) as conn:
                ended = await store.fail_running_warnings(conn)
            if ended:
                log.warning("%d warnings left running by an earlier hub were marked failed", ended)
            service._spawn(service._monitor(), "speaker-health")
            service._spawn(service._scheduler(), "warning-schedules")
            yield service

    async def _stop_all(self) -> None:
        for talk, _ in list(self.talks.values()):
            await talk.close()
        await asyncio.gather(*(run.stop() for run in list(self.runs.values())))
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _publish(self, channel: str, key: str, value: Any) -> None:
        fanout = self.hub.fanout
        if fanout is not None:
            fanout.set_state(channel, key, value)

    def _publish_health(self, statuses: Sequence[SpeakerStatus]) -> None:
        for st in statuses:
            self._publish("speakers", str(st.speaker_id), st.to_json())

    # -- observability -----------------------------------------------------------------------

    def health_check(self) -> str:
        return f"{self.stack.health_summary()}, {len(self.runs)} warnings playing"

    def metrics_lines(self) -> list[str]:
        """Prometheus text: SIP counters, calls by state, RTP totals, and loss and jitter per
        stream up now (labelled by warning and speaker), speakers by state."""
        out = self.stack.metrics_lines()
        live = list(self.streams.items())
        sent = self.closed_packets[0] + sum(s.stats.packets_sent for _, s in live)
        out += [
            "# TYPE cityhub_rtp_packets_sent_total counter",
            f"cityhub_rtp_packets_sent_total {sent}",
        ]
        out += ["# TYPE cityhub_rtp_stream gauge"]
        for (wid, sid), s in live:
            x = s.stats
            label = f'warning="{wid}",speaker="{sid}"'
            out.append(f'cityhub_rtp_stream{{{label},what="packets_sent"}} {x.packets_sent}')
            out.append(
                f'cityhub_rtp_stream{{{label},what="packets_received"}} {x.packets_received}'
            )
            out.append(f'cityhub_rtp_stream{{{label},what="lost"}} {x.packets_lost}')
            out.append(f'cityhub_rtp_stream{{{label},what="jitter_ms"}} {x.jitter_ms:.2f}')
            if x.remote_lost is not None:
                out.append(f'cityhub_rtp_stream{{{label},what="remote_lost"}} {x.remote_lost}')
        out.append("# TYPE cityhub_speakers gauge")
        by_state: dict[str, int] = {}
        for status in self.health.statuses():
            by_state[status.state.value] = by_state.get(status.state.value, 0) + 1
        for state, n in sorted(by_state.items()):
            out.append(f'cityhub_speakers{{state="{state}"}} {n}')
        out += [
            "# TYPE cityhub_warnings_running gauge",
            f"cityhub_warnings_running {len(self.runs)}",
        ]
        return out

    # -- health ------------------------------------------------------------------------------

    async def check_speakers(self) -> None:
        """One round of OPTIONS to every active speaker."""
        async with connect(self.hub.pool) as conn:
            speakers = await store.list_speakers(conn, active_only=True)
        added, gone = self.health.track(s.id for s in speakers)
        self._publish_health(added)
        for sid in gone:
            self._publish("speakers", str(sid), None)
        gate = asyncio.Semaphore(HEALTH_CONCURRENCY)

        async def check(s: store.Speaker) -> None:
            async with gate:
                t = target_of(s)
                try:
                    status = await self.agent.options(t.uri, credentials=t.credentials)
                except Exception:
                    log.exception("OPTIONS to speaker %s failed", s.id)
                    status = None
                self._publish_health(self.health.checked(s.id, status, time.time()))

        await asyncio.gather(*(check(s) for s in speakers))

    def speakers_changed(self) -> None:
        """Run a health round now (a speaker was registered or changed), not at the next interval."""
        self._spawn(self._safe_check(), "speaker-health-now")

    async def _safe_check(self) -> None:
        try:
            await self.check_speakers()
        except Exception:
            log.exception("speaker health round failed")

    async def _monitor(self) -> None:
        while True:
            try:
                await self.check_speakers()
            except Exception:  # a database outage: report, try again next round
                log.exception("speaker health round failed")
            await asyncio.sleep(self.settings.speaker_health_interval)

    def _busy(self, speaker_id: int, answered: bool | None) -> None:
        now = time.time()
        if answered is None:
            self._publish_health(self.health.call_started(speaker_id, now))
        else:
            self._publish_health(self.health.call_ended(speaker_id, now, answered=answered))

    # -- warnings ----------------------------------------------------------------------------

    def _deps(self) -> MediaDeps:
        s = self.settings
        return MediaDeps(
            agent=self.agent,
            ports=self.ports,
            clock=self.clock,
            address=s.sip_address,
            ring_timeout=s.warning_ring_timeout,
            retries=s.warning_retries,
            retry_delay=s.warning_retry_delay,
            busy=self._busy,
            streams=self.streams,
            closed_packets=self.closed_packets,
        )

    async def _resolve(
        self, conn: Any, speaker_ids: Sequence[int], group_ids: Sequence[int]
    ) -> list[store.Speaker]:
        for gid in group_ids:
            if await store.get_group(conn, gid) is None:
                raise NotFound(f"喇叭分组 {gid} 不存在")
        ids = sorted(set(speaker_ids) | set(await store.speakers_of_groups(conn, list(group_ids))))
        if not ids:
            raise ValidationFailed("请至少选择一个喇叭或分组", code="no_speakers")
        speakers = await store.get_speakers(conn, ids)
        missing = sorted(set(ids) - {s.id for s in speakers})
        if missing:
            raise NotFound(f"喇叭不存在：{', '.join(map(str, missing))}")
        inactive = [s.name for s in speakers if not s.active and s.id in set(speaker_ids)]
        if inactive:
            raise Conflict(f"喇叭已停用：{'、'.join(inactive)}", code="speaker_inactive")
        active = [s for s in speakers if s.active]
        if not active:
            raise Conflict("所选分组中没有启用的喇叭", code="speaker_inactive")
        return active

    async def start_warning(
        self,
        *,
        user_id: int | None,
        clip_id: int,
        speaker_ids: Sequence[int] = (),
        group_ids: Sequence[int] = (),
        repeat: int = 1,
        case_id: int | None = None,
        schedule_id: int | None = None,
    ) -> store.Warning:
        async with connect(self.hub.pool) as conn:
            clip = await store.get_clip(conn, clip_id)
            if clip is None:
                raise NotFound("录音不存在或已删除")
            speakers = await self._resolve(conn, speaker_ids, group_ids)
            payload = await clips.load_alaw(self.hub.attachments, clip)
            warning = await store.create_warning(
                conn,
                started_by=user_id,
                clip_id=clip.id,
                kind="clip",
                repeat=repeat,
                case_id=case_id,
                schedule_id=schedule_id,
                speaker_ids=[s.id for s in speakers],
            )
        run = WarningRun(
            warning.id,
            [target_of(s) for s in speakers],
            self._deps(),
            self._on_change,
            clip=payload,
            repeat=repeat,
        )
        self._launch(run, warning)
        return warning

    def _launch(self, run: WarningRun, warning: store.Warning) -> None:
        self.runs[run.warning_id] = run
        self._publish("warnings", str(run.warning_id), warning_json(warning))
        self._spawn(self._play(run), f"warning-{run.warning_id}")

    async def _play(self, run: WarningRun) -> None:
        state = "failed"
        try:
            state = await run.run()
        except Exception:
            log.exception("warning %s failed", run.warning_id)
        finally:
            self.runs.pop(run.warning_id, None)
            with contextlib.suppress(Exception):
                async with connect(self.hub.pool) as conn:
                    await store.finish_warning(conn, run.warning_id, state, run.stopped_by)
            run.recorded.set()
            self._publish("warnings", str(run.warning_id), None)

    async def _on_change(self, run: WarningRun, targets: list[Target]) -> None:
        async with connect(self.hub.pool) as conn:
            for t in targets:
                await store.update_target(
                    conn,
                    run.warning_id,
                    t.speaker_id,
                    outcome=STORED_OUTCOME.get(t.outcome, t.outcome.value),
                    status=t.status,
                    attempts=t.attempts,
                    packets=t.packets,
                    started_at=_instant(t.started_at),
                    ended_at=_instant(t.ended_at),
                )
            warning = await store.get_warning(conn, run.warning_id)
        if warning is not None and run.warning_id in self.runs:
            self._publish("warnings", str(run.warning_id), warning_json(warning))

    async def stop_warning(self, warning_id: int, by: int | None) -> store.Warning:
        run = self.runs.get(warning_id)
        if run is None:
            async with connect(self.hub.pool) as conn:
                found = await store.get_warning(conn, warning_id)
            if found is None:
                raise NotFound("警示记录不存在")
            raise Conflict("该警示已结束", code="warning_ended")
        await run.stop(by)
        talk = next((k for k, (_, wid) in self.talks.items() if wid == warning_id), None)
        if talk is not None:
            await self.stop_talk(talk)
        # _play stores the end; wait for it so the answer shows the final outcomes
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await run.recorded.wait()
        async with connect(self.hub.pool) as conn:
            found = await store.get_warning(conn, warning_id)
        assert found is not None
        return found

    # -- live talk ---------------------------------------------------------------------------

    async def start_talk(
        self,
        *,
        user_id: int,
        offer_sdp: str,
        speaker_ids: Sequence[int],
        group_ids: Sequence[int],
    ) -> tuple[str, store.Warning, str]:
        from telephony.warnings.talk import TalkSession

        async with connect(self.hub.pool) as conn:
            speakers = await self._resolve(conn, speaker_ids, group_ids)
        talk = TalkSession(networks=self.webrtc_networks)
        try:
            answer = await talk.answer(offer_sdp)
        except Exception as exc:
            await talk.close()
            raise ValidationFailed(f"无法建立对讲连接：{exc}", code="bad_offer") from None
        async with connect(self.hub.pool) as conn:
            warning = await store.create_warning(
                conn,
                started_by=user_id,
                clip_id=None,
                kind="live",
                repeat=1,
                case_id=None,
                schedule_id=None,
                speaker_ids=[s.id for s in speakers],
            )
        talk_id = secrets.token_urlsafe(12)
        self.talks[talk_id] = (talk, warning.id)
        run = WarningRun(
            warning.id, [target_of(s) for s in speakers], self._deps(), self._on_change, live=talk
        )
        self._launch(run, warning)

        async def end_with_peer() -> None:
            await talk.closed.wait()
            if talk_id in self.talks:
                await self.stop_talk(talk_id)

        self._spawn(end_with_peer(), f"talk-{talk_id}")
        return talk_id, warning, answer

    async def stop_talk(self, talk_id: str) -> int:
        entry = self.talks.pop(talk_id, None)
        if entry is None:
            raise NotFound("对讲不存在或已结束")
        talk, warning_id = entry
        await talk.close()  # each speaker's stream ends after what is queued, then hangs up
        run = self.runs.get(warning_id)
        if run is not None:
            try:
                async with asyncio.timeout(2.0):
                    await run.done.wait()
            except TimeoutError:
                await run.stop(None)
        return warning_id

    # -- schedules ---------------------------------------------------------------------------

    async def fire_due(self, now: datetime) -> list[int]:
        """One scheduler pass: start every schedule whose slot is due and whose claim we win."""
        started: list[int] = []
        async with connect(self.hub.pool) as conn:
            schedules = await store.list_schedules(conn, active_only=True)
        for sc in schedules:
            try:
                rec = Recurrence(
                    sc.every_minutes, sc.from_time, sc.until_time, frozenset(sc.weekdays), self.tz
                )
            except ScheduleError:
                log.warning("schedule %s cannot fire: %s", sc.id, sc.name)
                continue
            slot = rec.due(sc.last_fire_at, now)
            if slot is None:
                continue
            async with connect(self.hub.pool) as conn:
                if not await store.claim_schedule_fire(conn, sc.id, slot):
                    continue
            try:
                w = await self.start_warning(
                    user_id=sc.created_by,
                    clip_id=sc.clip_id,
                    speaker_ids=sc.speaker_ids,
                    group_ids=sc.group_ids,
                    repeat=sc.repeat,
                    schedule_id=sc.id,
                )
                started.append(w.id)
            except Exception as exc:  # a deleted clip or speaker: log, the next slot tries again
                log.warning("schedule %s (%s) slot %s not played: %s", sc.id, sc.name, slot, exc)
        return started

    async def _scheduler(self) -> None:
        while True:
            try:
                await self.fire_due(datetime.now(UTC))
            except Exception:
                log.exception("scheduler pass failed")
            await asyncio.sleep(SCHEDULER_PERIOD)


def warning_json(w: store.Warning) -> dict[str, Any]:
    return {
        "id": w.id,
        "kind": w.kind,
        "clip": None if w.clip_id is None else {"id": w.clip_id, "name": w.clip_name},
        "repeat": w.repeat,
        "case_id": w.case_id,
        "schedule_id": w.schedule_id,
        "state": w.state,
        "started_by": None
        if w.started_by is None
        else {"id": w.started_by, "name": w.started_by_name},
        "started_at": w.started_at.isoformat(),
        "ended_at": None if w.ended_at is None else w.ended_at.isoformat(),
        "stopped_by": w.stopped_by,
        "targets": [target_json(t) for t in w.targets],
    }


def target_json(t: store.WarningTarget) -> Mapping[str, Any]:
    return {
        "speaker_id": t.speaker_id,
        "speaker_name": t.speaker_name,
        "outcome": t.outcome,
        "status": t.status,
        "attempts": t.attempts,
        "packets": t.packets,
        "started_at": None if t.started_at is None else t.started_at.isoformat(),
        "ended_at": None if t.ended_at is None else t.ended_at.isoformat(),
    }
