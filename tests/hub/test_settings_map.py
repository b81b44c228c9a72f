"""CITYHUB_MAP_TILES is checked at start: a template the pages could not use is refused with a
reason, and the tile server's origin is what the pages' CSP lets in."""

from __future__ import annotations

import pytest

from hub.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("https://tiles.example.cn/{z}/{x}.png", "{z}, {x} and {y}"),
        ("ftp://tiles.example.cn/{z}/{x}/{y}.png", "http(s) URL"),
        ("tiles/{z}/{x}/{y}.png", "http(s) URL"),
        ("https://tiles.example.cn/{z}/{x}/{y}.png' ; script-src *", "http(s) URL"),
    ],
)
def test_bad_templates_are_refused(template: str, reason: str) -> None:
    with pytest.raises(SettingsError, match="CITYHUB_MAP_TILES") as info:
        Settings.from_env({"CITYHUB_MAP_TILES": template}, env_file=None)
    assert reason in info.value.message


def test_the_origin_of_the_tiles() -> None:
    s = Settings.from_env(
        {"CITYHUB_MAP_TILES": "https://tiles.example.cn:8443/base/{z}/{x}/{y}.png"}, env_file=None
    )
    assert s.map_tiles_origin == "https://tiles.example.cn:8443"
    own = Settings.from_env({"CITYHUB_MAP_TILES": "/tiles/{z}/{x}/{y}.png"}, env_file=None)
    assert own.map_tiles_origin == ""
    assert Settings.from_env({}, env_file=None).map_tiles == ""
