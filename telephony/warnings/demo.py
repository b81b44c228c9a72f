"""The demo city's loudspeakers: 22 simulated SIP speakers at street corners, their groups, and a
few warning clips, so that every voice-warning feature works on a fresh machine.

``start_demo_speakers(hub)`` starts ``SimulatedSpeakers`` (``simulator.py``) on a free loopback port
and upserts the demo speakers with URIs pointing at them (the port changes at each start, the rows
stay: the log keeps naming them). They stand at the centres of 22 unit grids spread over the five
streets, one group per street (the source reports: 22 sites in one district). The clips are made
with espeak-ng once (skipped, with a warning, where it is not installed).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from storage import voice as store
from storage.db import connect
from telephony.warnings import clips
from telephony.warnings.simulator import SimulatedSpeakers

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger(__name__)

DEMO_SPEAKERS = 22
#: The demo speakers' RTP ports (the hub's own are CITYHUB_RTP_PORTS).
DEMO_RTP_PORTS = (41000, 41999)
DEMO_CLIPS = (
    ("占道经营劝离", "占道经营", "请不要占道经营，请将商品摆放到店内，谢谢配合。"),
    ("乱扔垃圾提醒", "市容环境", "请不要乱扔垃圾，爱护市容环境，人人有责。"),
    ("违规停车提醒", "违规停车", "机动车请勿在人行道上停放，请尽快驶离。"),
)


def speaker_user(n: int) -> str:
    return f"spk-{n:02d}"


async def register_demo(hub: HubState, sim: SimulatedSpeakers) -> list[store.Speaker]:
    """Upsert the demo speakers (pointing at ``sim``), their street groups, and the clips."""
    async with connect(hub.pool) as conn:
        sites = await store.demo_sites(conn, DEMO_SPEAKERS)
        speakers = []
        by_street: dict[str, list[int]] = {}
        for n, site in enumerate(sites, start=1):
            fields = store.SpeakerFields(
                name=f"{site.grid_name}喇叭",
                uri=sim.uri(speaker_user(n)),
                lon=site.lon,
                lat=site.lat,
                grid_id=site.grid_id,
                auto_answer="call-info",
            )
            speaker, _ = await store.upsert_speaker(conn, fields)
            speakers.append(speaker)
            by_street.setdefault(site.street_name, []).append(speaker.id)
        for street, ids in by_street.items():
            name = f"{street}沿街喇叭"
            group = await store.get_group_by_name(conn, name)
            if group is None:
                async with conn.transaction():
                    await store.insert_group(
                        conn, name=name, description=f"{street}的全部喇叭", speaker_ids=ids
                    )
        if not await store.list_clips(conn):
            for name, category, text in DEMO_CLIPS:
                try:
                    prepared = await clips.synthesize(text, max_seconds=60)
                except Exception as exc:
                    log.warning("demo clip %s not made: %s", name, exc)
                    continue
                g711_sha, preview_sha = clips.store_clip(hub.attachments, prepared)
                await store.insert_clip(
                    conn,
                    name=name,
                    category=category,
                    duration_ms=prepared.duration_ms,
                    g711_sha256=g711_sha,
                    preview_sha256=preview_sha,
                    source="tts",
                    text=text,
                    created_by=None,
                )
    return speakers


@contextlib.asynccontextmanager
async def start_demo_speakers(hub: HubState) -> AsyncIterator[SimulatedSpeakers]:
    names = [speaker_user(n) for n in range(1, DEMO_SPEAKERS + 1)]
    async with SimulatedSpeakers(names, rtp_ports=DEMO_RTP_PORTS) as sim:
        speakers = await register_demo(hub, sim)
        log.info("demo: %d simulated speakers on %s", len(speakers), sim.agent.local_address)
        yield sim
