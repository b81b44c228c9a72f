"""Voice-warning storage (``storage.voice``) against a real PostgreSQL: speakers, groups, clips, the
warning log and schedules, with the constraints of ``0004_voice_warnings.sql``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest

from storage import voice
from storage.errors import InvalidData, RecordConflict

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture
async def conn(fresh_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(fresh_dsn)
    try:
        yield c
    finally:
        await c.close()


async def _user_id(conn: asyncpg.Connection) -> int:
    uid: int = await conn.fetchval("SELECT id FROM users WHERE role = 'seat' ORDER BY id LIMIT 1")
    return uid


def spk(name: str, lon: float | None = None, lat: float | None = None) -> voice.SpeakerFields:
    return voice.SpeakerFields(
        name=name, uri=f"sip:{name}@127.0.0.1:5070", lon=lon, lat=lat, camera_codes=("C1", "C2")
    )


async def _clip(conn: asyncpg.Connection, name: str = "占道经营") -> voice.Clip:
    return await voice.insert_clip(
        conn,
        name=name,
        category="市容",
        duration_ms=3000,
        g711_sha256=SHA_A,
        preview_sha256=SHA_B,
        source="upload",
        text=None,
        created_by=await _user_id(conn),
    )


async def test_speakers_insert_update_upsert_delete(conn: asyncpg.Connection) -> None:
    a = await voice.insert_speaker(conn, spk("东门1号", 120.1, 30.2))
    assert a.camera_codes == ("C1", "C2") and a.active and a.auto_answer == "call-info"
    assert not a.has_credentials and a.group_ids == ()
    with pytest.raises(RecordConflict):
        await voice.insert_speaker(conn, spk("东门1号"))
    b = await voice.update_speaker(
        conn, a.id, {"username": "u1", "password": "pw-secret", "camera_codes": ["X"]}
    )
    assert b is not None and b.has_credentials and b.camera_codes == ("X",)
    assert "pw-secret" not in repr(b)
    assert await voice.update_speaker(conn, 999_999, {"active": False}) is None
    # Upsert by name: the same name updates, a new one inserts.
    again, created = await voice.upsert_speaker(
        conn, voice.SpeakerFields(name="东门1号", uri="sip:new@127.0.0.1", active=False)
    )
    assert not created and again.id == a.id and again.uri == "sip:new@127.0.0.1"
    assert not again.active and again.username is None
    other, created = await voice.upsert_speaker(conn, spk("西门"))
    assert created and other.id != a.id
    assert [s.name for s in await voice.list_speakers(conn)] == ["东门1号", "西门"]
    assert [s.name for s in await voice.list_speakers(conn, active_only=True)] == ["西门"]
    assert (await voice.get_speaker_by_name(conn, "西门")) == other
    assert [s.id for s in await voice.get_speakers(conn, [other.id, 999])] == [other.id]
    assert await voice.delete_speaker(conn, a.id)
    assert not await voice.delete_speaker(conn, a.id)


async def test_speaker_constraints(conn: asyncpg.Connection) -> None:
    with pytest.raises(InvalidData):  # a location is both coordinates or none
        await voice.insert_speaker(conn, spk("半个坐标", 120.0, None))
    with pytest.raises(InvalidData):
        await voice.insert_speaker(conn, voice.SpeakerFields(name="x", uri="http://127.0.0.1"))
    with pytest.raises(InvalidData):
        await voice.insert_speaker(
            conn, voice.SpeakerFields(name="x", uri="sip:a@127.0.0.1", auto_answer="shout")
        )
    with pytest.raises(InvalidData):  # a password without a username
        await voice.insert_speaker(
            conn, voice.SpeakerFields(name="x", uri="sip:a@127.0.0.1", password="p")
        )
    with pytest.raises(InvalidData):  # unknown grid
        await voice.insert_speaker(
            conn, voice.SpeakerFields(name="x", uri="sip:a@127.0.0.1", grid_id=999_999)
        )


async def test_nearest_speaker_is_the_closest_active_located_one(conn: asyncpg.Connection) -> None:
    assert await voice.nearest_speaker(conn, 120.0, 30.0) is None
    near = await voice.insert_speaker(conn, spk("近", 120.001, 30.0))
    await voice.insert_speaker(conn, spk("远", 120.01, 30.0))
    off = await voice.insert_speaker(conn, spk("停用", 120.0, 30.0))
    await voice.update_speaker(conn, off.id, {"active": False})
    await voice.insert_speaker(conn, spk("无坐标"))
    found = await voice.nearest_speaker(conn, 120.0, 30.0)
    assert found is not None
    speaker, distance = found
    assert speaker.id == near.id
    # 0.001° of longitude at 30°N is about 96 m.
    assert 90 < distance < 100
    assert await voice.nearest_speaker(conn, 120.0, 30.0, max_distance_m=50) is None


async def test_groups_and_their_speakers(conn: asyncpg.Connection) -> None:
    a = await voice.insert_speaker(conn, spk("a"))
    b = await voice.insert_speaker(conn, spk("b"))
    c = await voice.insert_speaker(conn, spk("c"))
    async with conn.transaction():
        g1 = await voice.insert_group(
            conn, name="中山路", description="沿街", speaker_ids=[b.id, a.id]
        )
    g2 = await voice.insert_group(conn, name="市场", speaker_ids=[c.id, b.id])
    assert g1.speaker_ids == (a.id, b.id) and g1.description == "沿街"
    with pytest.raises(RecordConflict):
        await voice.insert_group(conn, name="中山路")
    with pytest.raises(InvalidData):
        async with conn.transaction():
            await voice.insert_group(conn, name="坏", speaker_ids=[999_999])
    assert await voice.get_group_by_name(conn, "坏") is None
    assert await voice.speakers_of_groups(conn, [g1.id, g2.id]) == [a.id, b.id, c.id]
    await voice.update_speaker(conn, b.id, {"active": False})
    assert await voice.speakers_of_groups(conn, [g1.id, g2.id]) == [a.id, c.id]
    assert await voice.speakers_of_groups(conn, []) == []
    g1b = await voice.update_group(conn, g1.id, name="中山北路", speaker_ids=[c.id])
    assert g1b is not None and g1b.name == "中山北路" and g1b.speaker_ids == (c.id,)
    assert g1b.description == "沿街"
    await voice.set_speaker_groups(conn, a.id, [g1.id, g2.id])
    sa = await voice.get_speaker(conn, a.id)
    assert sa is not None and sa.group_ids == (g1.id, g2.id)
    assert await voice.delete_speaker(conn, c.id)
    g2b = await voice.get_group(conn, g2.id)
    assert g2b is not None and g2b.speaker_ids == (a.id, b.id)
    assert await voice.delete_group(conn, g1.id)
    assert await voice.update_group(conn, g1.id, name="x") is None
    assert [g.id for g in await voice.list_groups(conn)] == [g2.id]


async def test_clips_library_and_soft_delete(conn: asyncpg.Connection) -> None:
    clip = await _clip(conn)
    assert clip.created_by_name and clip.source == "upload" and clip.deleted_at is None
    tts = await voice.insert_clip(
        conn,
        name="请勿占道",
        category="市容",
        duration_ms=1500,
        g711_sha256=SHA_A,
        preview_sha256=SHA_B,
        source="tts",
        text="请勿占道经营",
        created_by=None,
    )
    assert tts.text == "请勿占道经营" and tts.created_by_name == ""
    with pytest.raises(InvalidData):  # tts needs its text
        await voice.insert_clip(
            conn,
            name="x",
            category="",
            duration_ms=1,
            g711_sha256=SHA_A,
            preview_sha256=SHA_B,
            source="tts",
            text=None,
            created_by=None,
        )
    assert [c.id for c in await voice.list_clips(conn)] == [clip.id, tts.id]
    assert await voice.delete_clip(conn, clip.id)
    assert not await voice.delete_clip(conn, clip.id)
    assert await voice.get_clip(conn, clip.id) is None
    kept = await voice.get_clip(conn, clip.id, include_deleted=True)
    assert kept is not None and kept.deleted_at is not None
    assert [c.id for c in await voice.list_clips(conn)] == [tts.id]


async def test_a_warning_from_start_to_end(conn: asyncpg.Connection) -> None:
    uid = await _user_id(conn)
    clip = await _clip(conn)
    a = await voice.insert_speaker(conn, spk("a"))
    b = await voice.insert_speaker(conn, spk("b"))
    case_id = await conn.fetchval("SELECT min(id) FROM cases")
    async with conn.transaction():
        w = await voice.create_warning(
            conn,
            started_by=uid,
            clip_id=clip.id,
            kind="clip",
            repeat=2,
            case_id=case_id,
            schedule_id=None,
            speaker_ids=[a.id, b.id, 999_999],
        )
    assert w.state == "running" and w.ended_at is None and w.clip_name == clip.name
    assert w.started_by_name and w.repeat == 2 and w.case_id == case_id
    assert [(t.speaker_id, t.speaker_name, t.outcome) for t in w.targets] == [
        (a.id, "a", "pending"),
        (b.id, "b", "pending"),
    ]
    now = datetime.now(UTC)
    t = await voice.update_target(conn, w.id, a.id, outcome="playing", attempts=1, started_at=now)
    assert t is not None and t.outcome == "playing" and t.attempts == 1
    t = await voice.update_target(
        conn, w.id, a.id, outcome="delivered", status=200, packets=300, ended_at=now
    )
    assert t is not None and t.attempts == 1 and t.packets == 300 and t.started_at == now
    assert await voice.update_target(conn, w.id, 999_999, outcome="failed") is None
    with pytest.raises(InvalidData):
        await voice.update_target(conn, w.id, b.id, outcome="exploded")
    # The speaker is removed: the log still names it.
    await voice.delete_speaker(conn, b.id)
    done = await voice.finish_warning(conn, w.id, "stopped", stopped_by=uid)
    assert done is not None and done.state == "stopped" and done.stopped_by == uid
    assert done.ended_at is not None
    assert [(t.speaker_name, t.outcome) for t in done.targets] == [
        ("a", "delivered"),
        ("b", "stopped"),
    ]
    assert await voice.finish_warning(conn, w.id, "done") is None  # the first to finish wins
    with pytest.raises(ValueError):
        await voice.finish_warning(conn, w.id, "running")
    assert [x.id for x in await voice.warnings_for_case(conn, case_id)] == [w.id]


async def test_live_warnings_need_no_clip_and_clip_warnings_need_one(
    conn: asyncpg.Connection,
) -> None:
    a = await voice.insert_speaker(conn, spk("a"))
    live = await voice.create_warning(
        conn,
        started_by=None,
        clip_id=None,
        kind="live",
        repeat=1,
        case_id=None,
        schedule_id=None,
        speaker_ids=[a.id],
    )
    assert live.kind == "live" and live.clip_name is None and live.started_by_name == ""
    with pytest.raises(InvalidData):
        await voice.create_warning(
            conn,
            started_by=None,
            clip_id=None,
            kind="clip",
            repeat=1,
            case_id=None,
            schedule_id=None,
            speaker_ids=[a.id],
        )
    assert [w.id for w in await voice.running_warnings(conn)] == [live.id]
    assert await voice.fail_running_warnings(conn) == 1
    failed = await voice.get_warning(conn, live.id)
    assert failed is not None and failed.state == "failed"
    assert failed.targets[0].outcome == "failed"


async def test_the_log_pages_newest_first(conn: asyncpg.Connection) -> None:
    a = await voice.insert_speaker(conn, spk("a"))
    ids = []
    for _ in range(5):
        w = await voice.create_warning(
            conn,
            started_by=None,
            clip_id=None,
            kind="live",
            repeat=1,
            case_id=None,
            schedule_id=None,
            speaker_ids=[a.id],
        )
        ids.append(w.id)
    first = await voice.list_warnings(conn, 2)
    assert [w.id for w in first] == ids[::-1][:2]
    rest = await voice.list_warnings(conn, 10, before=first[-1].id)
    assert [w.id for w in rest] == ids[::-1][2:]
    assert all(len(w.targets) == 1 for w in rest)
    assert await voice.get_warning(conn, 10**12) is None


def _fields(clip_id: int, speaker_ids: tuple[int, ...]) -> voice.ScheduleFields:
    return voice.ScheduleFields(
        name="市场门口",
        clip_id=clip_id,
        speaker_ids=speaker_ids,
        group_ids=(),
        repeat=1,
        every_minutes=15,
        from_time=time(8, 0),
        until_time=time(20, 0),
        weekdays=(1, 2, 3, 4, 5),
    )


async def test_schedules_crud_and_constraints(conn: asyncpg.Connection) -> None:
    clip = await _clip(conn)
    a = await voice.insert_speaker(conn, spk("a"))
    s = await voice.insert_schedule(conn, _fields(clip.id, (a.id,)), created_by=None)
    assert s.weekdays == (1, 2, 3, 4, 5) and s.last_fire_at is None and s.active
    s2 = await voice.update_schedule(conn, s.id, {"active": False, "weekdays": [6, 7]})
    assert s2 is not None and not s2.active and s2.weekdays == (6, 7)
    assert await voice.update_schedule(conn, s.id, {}) == s2
    assert await voice.update_schedule(conn, 999_999, {"active": True}) is None
    with pytest.raises(ValueError):
        await voice.update_schedule(conn, s.id, {"last_fire_at": None})
    assert [x.id for x in await voice.list_schedules(conn)] == [s.id]
    assert await voice.list_schedules(conn, active_only=True) == []
    for bad in (
        {"weekdays": [0]},
        {"weekdays": []},
        {"every_minutes": 0},
        {"repeat": 11},
        {"from_time": time(21, 0)},
        {"speaker_ids": []},
    ):
        with pytest.raises(InvalidData):
            await voice.update_schedule(conn, s.id, bad)
    # Removing its only speaker is refused by the constraint (a schedule needs a target).
    with pytest.raises(InvalidData):
        await voice.delete_speaker(conn, a.id)
    assert await voice.delete_schedule(conn, s.id)
    assert not await voice.delete_schedule(conn, s.id)
    assert await voice.get_schedule(conn, s.id) is None


async def test_a_deleted_schedule_leaves_its_warnings(conn: asyncpg.Connection) -> None:
    clip = await _clip(conn)
    a = await voice.insert_speaker(conn, spk("a"))
    s = await voice.insert_schedule(conn, _fields(clip.id, (a.id,)), created_by=None)
    w = await voice.create_warning(
        conn,
        started_by=None,
        clip_id=clip.id,
        kind="clip",
        repeat=1,
        case_id=None,
        schedule_id=s.id,
        speaker_ids=[a.id],
    )
    assert w.schedule_id == s.id
    await voice.delete_schedule(conn, s.id)
    kept = await voice.get_warning(conn, w.id)
    assert kept is not None and kept.schedule_id is None


async def test_one_slot_is_claimed_once_across_connections(fresh_dsn: str) -> None:
    conns = [await asyncpg.connect(fresh_dsn) for _ in range(4)]
    try:
        c0 = conns[0]
        clip = await _clip(c0)
        a = await voice.insert_speaker(c0, spk("a"))
        s = await voice.insert_schedule(c0, _fields(clip.id, (a.id,)), created_by=None)
        slot = datetime(2026, 12, 1, 8, 15, tzinfo=UTC)
        for _ in range(5):  # several rounds of four claimers racing for the same slot
            got = await asyncio.gather(*(voice.claim_schedule_fire(c, s.id, slot) for c in conns))
            assert sorted(got) == [False, False, False, True]
            slot_claimed_again = await voice.claim_schedule_fire(c0, s.id, slot)
            assert not slot_claimed_again
            slot += timedelta(minutes=15)
        # An earlier slot than the last fired one is never claimed (a clock stepping back).
        assert not await voice.claim_schedule_fire(c0, s.id, slot - timedelta(hours=2))
        # An inactive schedule claims nothing.
        await voice.update_schedule(c0, s.id, {"active": False})
        assert not await voice.claim_schedule_fire(c0, s.id, slot)
        stored = await voice.get_schedule(c0, s.id)
        assert stored is not None and stored.last_fire_at == slot - timedelta(minutes=15)
    finally:
        for c in conns:
            await c.close()
