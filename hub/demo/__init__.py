"""The demo city: grids, departments, users, components and ~8 months of case history, placed like
Qujing's Qilin district (county code 530302), for ``cityhub serve --demo``, the tests and the
benchmarks. It imports everything; nothing but those imports it.

One module per concept:

- ``geography``: the street grids and the lattice of unit grids (``grid_lattice``).
- ``organisation``: departments, which department handles what, the demo accounts (``DEMO_USERS``).
- ``text``: phrase tables (names, descriptions, notes, roads).
- ``media``: the demo photos (``demo_photos``).
- ``reports``: what is reported, when, where, and the fate drawn for each case.
- ``records``: the rows a history is made of and the records written with ``COPY``.
- ``history``: the case histories, played through the real workflow (``HistoryGenerator``).
- ``components``: water-supply manhole covers for the component registry.
- ``load``: ``load_demo``, once per database (``DemoSummary``).
"""

from __future__ import annotations

from hub.demo.geography import GridCell, grid_lattice
from hub.demo.history import HistoryGenerator
from hub.demo.load import DemoSummary, load_demo
from hub.demo.media import demo_photos
from hub.demo.organisation import DEMO_USERS

__all__ = [
    "DEMO_USERS",
    "DemoSummary",
    "GridCell",
    "HistoryGenerator",
    "demo_photos",
    "grid_lattice",
    "load_demo",
]
