"""REGISTER refresh and retry arithmetic (RFC 3261 §10.2, RFC 5626 §4.5): pure, clock and random
injected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.register import (
    MAX_DELTA_SECONDS,
    BackoffPolicy,
    RefreshPolicy,
    expires_after_423,
    granted_expires,
    parse_delta_seconds,
)


class TestRfc3261Section20_19_DeltaSeconds:
    @pytest.mark.parametrize(("text", "value"), [("3600", 3600), (" 60\t", 60), ("0", 0)])
    def test_valid(self, text: str, value: int) -> None:
        assert parse_delta_seconds(text) == value

    def test_huge_values_are_capped(self) -> None:
        assert parse_delta_seconds("99999999999999") == MAX_DELTA_SECONDS

    @pytest.mark.parametrize("text", ["", "-1", "1.5", "abc", "6 0", "1" * 21, "３６００"])
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_delta_seconds(text)


class TestRfc3261Section10_2_4_GrantedExpires:
    def test_contact_expires_wins_over_the_header(self) -> None:
        assert granted_expires(contact_expires=600, expires_header=3600, requested=3600) == 600

    def test_expires_header_when_the_contact_has_none(self) -> None:
        assert granted_expires(contact_expires=None, expires_header=1800, requested=3600) == 1800

    def test_requested_when_neither(self) -> None:
        assert granted_expires(contact_expires=None, expires_header=None, requested=900) == 900

    def test_zero_is_kept_and_negative_refused(self) -> None:
        assert granted_expires(contact_expires=0, expires_header=3600, requested=3600) == 0
        with pytest.raises(ValueError):
            granted_expires(contact_expires=-5, expires_header=None, requested=60)


class TestRfc3261Section10_2_8_IntervalTooBrief:
    def test_min_expires(self) -> None:
        assert expires_after_423(min_expires=1800, requested=60) == 1800
        assert expires_after_423(min_expires=30, requested=60) == 60
        with pytest.raises(ValueError):
            expires_after_423(min_expires=-1, requested=60)


class TestRefreshPolicy:
    policy = RefreshPolicy()

    @pytest.mark.parametrize(
        ("granted", "delay"),
        [
            (3600, 1800.0),  # half the interval is earlier than 3568
            (120, 60.0),
            (60, 28.0),  # expires - 32 is earlier than 30
            (40, 8.0),
            (20, 5.0),  # -12 → the floor
            (1, 5.0),
        ],
    )
    def test_delay(self, granted: int, delay: float) -> None:
        assert self.policy.refresh_delay(granted) == delay

    def test_removed_binding_is_not_refreshed(self) -> None:
        assert self.policy.refresh_delay(0) is None
        assert self.policy.refresh_at(0, now=100.0) is None

    def test_absolute_times_use_the_given_now(self) -> None:
        assert self.policy.refresh_at(3600, now=1000.5) == 2800.5
        assert self.policy.expires_at(3600, now=1000.5) == 4600.5

    def test_custom_policy_and_bad_values(self) -> None:
        assert RefreshPolicy(margin=5.0, floor=1.0).refresh_delay(8) == 3.0
        with pytest.raises(ValueError):
            RefreshPolicy(floor=0)
        with pytest.raises(ValueError):
            self.policy.refresh_delay(-1)

    @settings(max_examples=300, deadline=None)
    @given(granted=st.integers(min_value=10, max_value=MAX_DELTA_SECONDS), now=st.floats(0, 1e9))
    def test_always_before_expiry_and_never_below_the_floor(self, granted: int, now: float) -> None:
        delay = self.policy.refresh_delay(granted)
        assert delay is not None
        assert self.policy.floor <= delay <= granted / 2 < granted
        assert self.policy.refresh_at(granted, now) == now + delay


class TestRfc5626Section4_5_Backoff:
    policy = BackoffPolicy()

    def test_first_failure_waits_between_half_and_all_of_w(self) -> None:
        # W = min(1800, 30 * 2**1) = 60 → [30, 60)
        assert self.policy.retry_delay(1, lambda: 0.0) == 30.0
        assert self.policy.retry_delay(1, lambda: 0.5) == 45.0
        assert 59.9 < self.policy.retry_delay(1, lambda: 0.999) < 60.0

    def test_exponential_then_capped(self) -> None:
        ceilings = [self.policy.ceiling(n) for n in range(1, 9)]
        assert ceilings == [60, 120, 240, 480, 960, 1800, 1800, 1800]
        assert self.policy.retry_delay(10_000, lambda: 0.0) == 900.0  # no overflow

    def test_retry_after_is_honoured_and_capped(self) -> None:
        assert self.policy.retry_delay(1, lambda: 0.0, retry_after=300) == 300.0
        assert self.policy.retry_delay(1, lambda: 0.0, retry_after=10) == 30.0
        assert self.policy.retry_delay(1, lambda: 0.0, retry_after=10**9) == 3600.0

    def test_bad_inputs(self) -> None:
        with pytest.raises(ValueError):
            self.policy.retry_delay(0, lambda: 0.0)
        with pytest.raises(ValueError):
            self.policy.retry_delay(1, lambda: 1.0)
        with pytest.raises(ValueError):
            BackoffPolicy(base_time=100, max_time=10)

    def test_some_flows_still_working_uses_a_longer_base(self) -> None:
        assert BackoffPolicy(base_time=90).retry_delay(1, lambda: 0.0) == 90.0

    @settings(max_examples=300, deadline=None)
    @given(
        failures=st.integers(1, 200),
        draw=st.floats(0.0, 1.0, exclude_max=True),
    )
    def test_bounds(self, failures: int, draw: float) -> None:
        delay = self.policy.retry_delay(failures, lambda: draw)
        ceiling = self.policy.ceiling(failures)
        assert ceiling / 2 <= delay <= ceiling <= self.policy.max_time
