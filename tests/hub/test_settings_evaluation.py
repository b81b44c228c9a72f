"""CITYHUB_POST_ALLOWANCES: the posts' on-time allowances in minutes, checked at start; a partial
list keeps the other defaults, a bad value is refused with a reason naming the setting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.settings import Settings, SettingsError
from storage.evaluation_posts import PostAllowances


def allowances(raw: str) -> PostAllowances:
    s = Settings.from_env({"CITYHUB_POST_ALLOWANCES": raw}, env_file=None)
    return PostAllowances.parse(s.post_allowances)


def test_defaults() -> None:
    s = Settings.from_env({}, env_file=None)
    assert PostAllowances.parse(s.post_allowances) == PostAllowances(
        accept=timedelta(minutes=10),
        register=timedelta(minutes=30),
        dispatch=timedelta(minutes=30),
        check=timedelta(minutes=60),
        confirm=timedelta(minutes=30),
    )


def test_a_full_and_a_partial_list() -> None:
    full = allowances("accept=15,register=45,dispatch=20,check=120,confirm=40")
    assert full == PostAllowances(
        accept=timedelta(minutes=15),
        register=timedelta(minutes=45),
        dispatch=timedelta(minutes=20),
        check=timedelta(minutes=120),
        confirm=timedelta(minutes=40),
    )
    partial = allowances("confirm=45")
    assert partial.confirm == timedelta(minutes=45)
    assert partial.check == timedelta(minutes=60) and partial.accept == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("confirm=0", "whole minutes from 1 to 10080"),
        ("confirm=half", "whole minutes"),
        ("confirm=2.5", "whole minutes"),
        ("check=10081", "whole minutes from 1 to 10080"),
        ("verify=30", "expected one of accept, register, dispatch, check, confirm"),
        ("confirm 30", "name=minutes"),
        ("confirm=30,confirm=40", "confirm given twice"),
    ],
)
def test_a_bad_value_stops_the_start(raw: str, reason: str) -> None:
    with pytest.raises(SettingsError, match="CITYHUB_POST_ALLOWANCES") as info:
        Settings.from_env({"CITYHUB_POST_ALLOWANCES": raw}, env_file=None)
    assert reason in info.value.message
