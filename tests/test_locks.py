"""The two dependency locks say what pyproject.toml says: `make run` installs requirements.lock (the
runtime only), `make test` adds requirements-dev.lock. A failure here after editing pyproject.toml
means: run `make lock`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*$")
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / lock).read_text(encoding="utf-8").splitlines():
        m = PIN.match(line)
        if m:
            out[canonical(m[1])] = m[2]
    return out


def requirement_names(reqs: list[str]) -> set[str]:
    names = set()
    for req in reqs:
        m = NAME.match(req)
        assert m, req
        names.add(canonical(m[1]))
    return names


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = requirement_names(PROJECT["dependencies"])
DEV = requirement_names(PROJECT["optional-dependencies"]["dev"])


def test_runtime_lock_has_the_runtime_and_no_dev_tool() -> None:
    runtime = pins("requirements.lock")
    assert set(runtime) >= RUNTIME, RUNTIME - set(runtime)
    assert not (DEV - RUNTIME) & set(runtime), (DEV - RUNTIME) & set(runtime)


def test_dev_lock_has_everything_at_the_same_versions() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert set(dev) >= (RUNTIME | DEV), (RUNTIME | DEV) - set(dev)
    assert {n: dev.get(n) for n in runtime} == runtime


def test_makefile_run_installs_only_the_runtime_lock() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    rules = dict(re.findall(r"^([$()A-Za-z_-]+):[^\n]*\n((?:\t[^\n]*\n)*)", text, re.M))
    run_stamp = rules["$(RUN_STAMP)"]
    assert "-r requirements.lock" in run_stamp and "requirements-dev.lock" not in run_stamp
    assert re.search(r"^run: install\s*$", text, re.M)
    assert re.search(r"^test: install-dev\b", text, re.M)
