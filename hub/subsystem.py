"""The seam subsystems plug into: what a subsystem brings to the hub, and how a process picks them.

A subsystem (the case web app, telephony, video) hands the kernel

- ``routes()``: its HTTP API routes (``ApiRoute``: method, path, handler, the roles allowed — the
  one declaration that is both enforced and published in ``/openapi.json``), and ``web_routes()``:
  anything else it serves over HTTP (pages, static files), outside the API description;
- ``state_channels()``: the state channels it produces and who may read them. Every process knows the
  state channels of every *installed* subsystem, whether it runs it or not, so that a browser on a web
  process can subscribe to cameras produced by a video process;
- ``run(hub)``: an async context manager that starts its background work on entry and stops it on
  exit. The app enters the selected subsystems' contexts in order on one ``AsyncExitStack``, so
  teardown runs in reverse by construction;
- ``cli_commands()``: subcommands of ``cityhub``.

Installed subsystems: the built-in ``web`` (``hub.web.subsystem``) and whatever the
``cityhub.subsystems`` entry-point group names (``pyproject.toml``): adding a subsystem edits no other
package. ``cityhub serve --roles web,telephony`` (or ``CITYHUB_ROLES``) chooses which of them this
process runs; the default is all.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import metadata
from typing import TYPE_CHECKING, Protocol

from hub.core.workflow import Role

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from hub.state import HubState
    from hub.web.http import ApiRoute

ENTRY_POINT_GROUP = "cityhub.subsystems"


@dataclasses.dataclass(frozen=True, slots=True)
class StateChannel:
    """A state channel (a current value per key: snapshot, then changes) and who may read it."""

    name: str
    readers: frozenset[Role]
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class CliCommand:
    """A ``cityhub`` subcommand: ``configure`` adds its arguments, ``run`` returns the exit code."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class Subsystem(Protocol):
    #: The role name of ``--roles`` (lowercase ASCII).
    name: str

    def routes(self) -> Sequence[ApiRoute]: ...

    def web_routes(self) -> Sequence[BaseRoute]: ...

    def state_channels(self) -> Sequence[StateChannel]: ...

    def cli_commands(self) -> Sequence[CliCommand]: ...

    def run(self, hub: HubState) -> AbstractAsyncContextManager[None]: ...


class SubsystemError(ValueError):
    pass


def installed() -> list[Subsystem]:
    """The built-in web subsystem, then the entry points' subsystems in name order."""
    from hub.web.subsystem import WebSubsystem

    found: list[Subsystem] = [WebSubsystem()]
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        factory = ep.load()
        sub: Subsystem = factory()
        if sub.name != ep.name:
            raise SubsystemError(f"entry point {ep.name!r} gives a subsystem named {sub.name!r}")
        found.append(sub)
    return found


def select(subsystems: Sequence[Subsystem], roles: Collection[str]) -> list[Subsystem]:
    """The subsystems a process runs: those named in ``roles`` (all when ``roles`` is empty), in
    installed order. An unknown name is refused with the known ones."""
    known = {s.name for s in subsystems}
    unknown = sorted(set(roles) - known)
    if unknown:
        raise SubsystemError(
            f"unknown role(s) {', '.join(unknown)}; this installation has: {', '.join(sorted(known))}"
        )
    return [s for s in subsystems if not roles or s.name in roles]


def state_channels(subsystems: Iterable[Subsystem]) -> Mapping[str, frozenset[Role]]:
    """Every state channel the subsystems declare, with its readers; a name declared twice is a
    mistake and refused."""
    out: dict[str, frozenset[Role]] = {}
    for sub in subsystems:
        for ch in sub.state_channels():
            if ch.name in out:
                raise SubsystemError(f"state channel {ch.name!r} declared twice")
            out[ch.name] = ch.readers
    return out
