"""Video settings: the defaults the issue's promises rest on (a camera nobody watches is checked
often enough to show offline within 15 s), and values that would break them are refused with the
setting named."""

from __future__ import annotations

import pytest

from hub.settings import Settings, SettingsError


def settings(**env: str) -> Settings:
    return Settings.from_env({f"CITYHUB_{k.upper()}": v for k, v in env.items()}, env_file=None)


def test_defaults() -> None:
    s = settings()
    assert (s.video_probe_interval, s.video_linger, s.video_stall_timeout) == (5.0, 10.0, 5.0)
    assert (s.video_clip_seconds, s.video_live_per_seat) == (10.0, 4)
    t = settings(video_clip_seconds="0", video_probe_interval="2.5", video_live_per_seat="2")
    assert (t.video_clip_seconds, t.video_probe_interval, t.video_live_per_seat) == (0, 2.5, 2)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"video_probe_interval": "30"}, "CITYHUB_VIDEO_PROBE_INTERVAL"),
        ({"video_probe_interval": "0"}, "CITYHUB_VIDEO_PROBE_INTERVAL"),
        ({"video_linger": "-1"}, "CITYHUB_VIDEO_LINGER"),
        ({"video_stall_timeout": "0"}, "CITYHUB_VIDEO_STALL_TIMEOUT"),
        ({"video_clip_seconds": "61"}, "CITYHUB_VIDEO_CLIP_SECONDS"),
        ({"video_live_per_seat": "0"}, "CITYHUB_VIDEO_LIVE_PER_SEAT"),
        ({"video_linger": "soon"}, "CITYHUB_VIDEO_LINGER"),
    ],
)
def test_refused_with_the_setting_named(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError) as e:
        settings(**env)
    assert says in str(e.value)
