"""``python -m video.simulator``: run the camera simulator by hand until Ctrl-C.

Prints the mounts' URLs (credentials redacted) and takes control lines on stdin: ``stop N`` and
``start N`` make camera N go away and come back, ``quit`` stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from video.simulator.control import CameraSimulator, SimulatorError


async def run(args: argparse.Namespace) -> None:
    password = os.environ.get("CITYHUB_SIM_PASSWORD") if args.user else None
    sim = CameraSimulator(
        args.count,
        port=args.port,
        clock=not args.no_clock,
        user=args.user,
        password=password,
        seconds=args.seconds,
        labels=args.labels,
        one_media=args.one_media,
    )
    async with sim:
        shown = "user:***@" if args.user else ""
        print(f"camera simulator on rtsp://{shown}127.0.0.1:{sim.port}", flush=True)
        for n in range(1, sim.count + 1):
            print(f"  {sim.url(n, credentials=False)}", flush=True)
        if sim.clock:
            print(f"  rtsp://127.0.0.1:{sim.port}/clock", flush=True)
        print("commands: stop N | start N | quit", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            words = line.split()
            if not line or words[:1] == ["quit"]:
                return
            try:
                if len(words) == 2 and words[0] == "stop":
                    print(f"closed {await sim.stop_mount(int(words[1]))} client(s)", flush=True)
                elif len(words) == 2 and words[0] == "start":
                    await sim.start_mount(int(words[1]))
                    print("started", flush=True)
                elif words:
                    print("commands: stop N | start N | quit", flush=True)
            except (ValueError, SimulatorError) as exc:
                print(f"error: {exc}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m video.simulator", description=__doc__)
    parser.add_argument("--count", type=int, default=48, help="cameras (default 48)")
    parser.add_argument("--port", type=int, default=8554, help="RTSP port (0: any free one)")
    parser.add_argument("--no-clock", action="store_true", help="no /clock mount")
    parser.add_argument("--user", help="basic auth user (password from $CITYHUB_SIM_PASSWORD)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--labels", action="store_true", help="one clip per camera, labelled")
    parser.add_argument(
        "--one-media", action="store_true", help="all mounts share one media (least CPU)"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
