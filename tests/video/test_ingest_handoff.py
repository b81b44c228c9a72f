"""``rtsp.Handoff``: worker threads wake the loop together, a bounded number of times."""

from __future__ import annotations

import asyncio
import threading

from video.ingest.rtsp import Handoff


async def test_many_threads_few_wakes_nothing_lost() -> None:
    loop = asyncio.get_running_loop()
    handoff = Handoff(interval=0.02)
    handoff.attach(loop)
    threads = 20
    per_thread = 50
    seen = [0] * threads
    pending = [False] * threads

    def woke(i: int) -> None:
        pending[i] = False
        seen[i] += 1

    callbacks = [lambda i=i: woke(i) for i in range(threads)]

    def work(i: int) -> None:
        for _ in range(per_thread):
            if not pending[i]:
                pending[i] = True
                handoff.notify(callbacks[i])
            threading.Event().wait(0.002)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = loop.time()
    for t in workers:
        t.start()
    await asyncio.to_thread(lambda: [t.join() for t in workers])
    await asyncio.sleep(0.1)
    elapsed = loop.time() - start
    assert all(not p for p in pending)  # every request to be woken was served
    assert all(n >= 1 for n in seen)
    assert handoff.wakes <= elapsed / 0.02 + 2  # at most one wake per interval under load
    assert handoff.wakes < sum(seen)  # wakes were shared between threads


async def test_idle_loop_is_woken_at_once() -> None:
    loop = asyncio.get_running_loop()
    handoff = Handoff(interval=1.0)
    handoff.attach(loop)
    done = asyncio.Event()
    started = loop.time()
    await asyncio.to_thread(handoff.notify, done.set)
    await asyncio.wait_for(done.wait(), 0.5)
    assert loop.time() - started < 0.5
    await asyncio.sleep(1.1)  # the interval passes with nothing ready: the next one is immediate
    again = asyncio.Event()
    started = loop.time()
    await asyncio.to_thread(handoff.notify, again.set)
    await asyncio.wait_for(again.wait(), 0.5)
    assert loop.time() - started < 0.5
