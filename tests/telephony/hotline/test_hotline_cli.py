"""``cityhub call`` against a running hub: the call is answered, the welcome is heard, the
callback key pressed while queued makes a callback record and the hub says goodbye and hangs up."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from hub.state import HubState
from storage import hotline as store
from storage import hotline_queue as queue_store
from storage.db import connect
from telephony.hotline.cli import level_db, place_call
from tests.telephony.hotline.support import hotline

pytestmark = pytest.mark.timeout(120)


def test_level_db() -> None:
    import numpy as np

    assert level_db(np.zeros(160, np.int16)) == -120.0
    full = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 32767).astype(np.int16)
    assert -4.0 < level_db(full) < -2.0  # a full-scale sine is −3 dBFS


async def test_a_shell_call_presses_the_callback_key(
    hub: HubState, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = hotline(hub).stack.agent.local_address
    args = argparse.Namespace(
        hub=f"{host}:{port}", to=None, caller="13912345678", seconds=40.0, tone=440.0,
        digits="1", digits_after=13.0, bind="127.0.0.1",
    )  # fmt: skip
    rc = await asyncio.wait_for(place_call(args, hub.settings), 60)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "已接通" in out and "按键 1" in out and "对方挂断" in out  # the hub said goodbye
    levels = [float(line.split("听到")[1].split("dBFS")[0]) for line in out.splitlines()
              if "听到" in line]  # fmt: skip
    assert max(levels[:8]) > -40  # the welcome prompt, not silence
    async with connect(hub.pool) as conn:
        callbacks = await queue_store.open_callbacks(conn)
        calls = await store.list_calls(conn)
    assert [c.number for c in callbacks] == ["13912345678"]
    assert calls[0].outcome == "callback" and calls[0].caller == "13912345678"


async def test_unknown_number_is_refused(hub: HubState, capsys: pytest.CaptureFixture[str]) -> None:
    host, port = hotline(hub).stack.agent.local_address
    args = argparse.Namespace(hub=f"{host}:{port}", to="110", caller="1", seconds=5.0,
                              tone=0.0, digits="", digits_after=0.0, bind="127.0.0.1")  # fmt: skip
    assert await place_call(args, hub.settings) == 1
    assert "404" in capsys.readouterr().out
