"""The 12319 ACD, scenario by scenario as the issue tells them: a call welcomed, queued, offered to the
longest-idle agent and answered; ring timeouts; the callback key; overflow; service hours;
announcements; hold; transfers; supervisors; and bad events refused without a change."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from telephony.errors import (
    AgentNotReady,
    AgentNotSignedIn,
    HotlineError,
    HotlineStateError,
    UnknownCall,
)
from telephony.hotline.acd import QUEUE, Acd, AcdConfig
from telephony.hotline.commands import (
    AgentChanged,
    AgentState,
    CallEnded,
    CancelOffer,
    Command,
    Connect,
    Consult,
    Disconnect,
    EndConsult,
    Hangup,
    Monitor,
    MonitorMode,
    Offer,
    PlayPrompt,
    Prompt,
    Queued,
    RecordCallback,
    StartMusic,
    StopMusic,
    Transferred,
    Unmonitor,
)
from telephony.hotline.hours import parse_hours
from telephony.hotline.states import CallState
from telephony.hotline.stats import Outcome

T = TypeVar("T")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def of(commands: list[Command], kind: type[T]) -> list[T]:
    return [c for c in commands if isinstance(c, kind)]


def ended(commands: list[Command]) -> CallEnded:
    (end,) = of(commands, CallEnded)
    return end


def queued(acd: Acd, call_id: str, now: float, caller: str = "13800138000") -> list[Command]:
    """A caller dials in and hears the welcome to its end: the call is queued."""
    first = acd.call_arrived(call_id, caller, now)
    assert first == [PlayPrompt(call_id, Prompt.WELCOME)]
    return acd.prompt_done(call_id, now)


def ready(acd: Acd, agent_id: str, now: float) -> list[Command]:
    acd.sign_in(agent_id, now)
    return acd.set_ready(agent_id, now)


def connected(acd: Acd, call_id: str, agent_id: str, now: float) -> None:
    ready(acd, agent_id, now)
    out = queued(acd, call_id, now)
    assert Offer(call_id, agent_id, "13800138000") in out
    acd.accept(agent_id, call_id, now)


def state(acd: Acd) -> Any:
    return copy.deepcopy((acd.calls, acd.agents, acd.monitoring, list(acd._handle)))


def agent(acd: Acd, agent_id: str) -> Any:
    return next(a for a in acd.agents_view() if a.agent == agent_id)


class TestCallFlow:
    def test_welcomed_queued_offered_to_the_longest_idle_agent_answered_and_ended(self) -> None:
        acd = Acd()
        ready(acd, "a", 0.0)
        ready(acd, "b", 5.0)
        assert acd.call_arrived("c1", "13800138000", 10.0) == [PlayPrompt("c1", Prompt.WELCOME)]
        out = acd.prompt_done("c1", 16.0)
        assert out[:2] == [Queued("c1", 1), StartMusic("c1")]
        assert of(out, Offer) == [Offer("c1", "a", "13800138000")]  # a has been idle longer
        assert not of(out, PlayPrompt)  # offered at once: no position announcement
        assert agent(acd, "a").state is AgentState.OFFERED
        out = acd.accept("a", "c1", 20.0)
        assert out[-2:] == [StopMusic("c1"), Connect("c1", "a")]
        assert agent(acd, "a").state is AgentState.TALKING and agent(acd, "a").call == "c1"
        out = acd.agent_hangup("a", "c1", 80.0)
        assert out[:2] == [Hangup("c1"), Disconnect("c1", "a")]
        end = ended(out)
        assert (end.outcome, end.agent, end.waited, end.talked) == (Outcome.ANSWERED, "a", 4, 60)
        assert (end.arrived, end.queued_at, end.answered_at, end.ended) == (10, 16, 20, 80)
        assert "c1" not in acd.calls

    def test_the_next_call_goes_to_the_agent_idle_longest_not_the_one_just_freed(self) -> None:
        acd = Acd(AcdConfig(wrapup=10))
        connected(acd, "c1", "a", 0.0)
        ready(acd, "b", 5.0)
        acd.agent_hangup("a", "c1", 30.0)
        acd.tick(40.0)  # a's wrap-up ends: ready since 40, b since 5
        assert of(queued(acd, "c2", 50.0), Offer) == [Offer("c2", "b", "13800138000")]

    def test_arrival_order_is_kept_in_the_queue(self) -> None:
        acd = Acd()
        for k in range(1, 4):
            assert of(queued(acd, f"c{k}", float(k)), Queued) == [Queued(f"c{k}", k)]
        assert [(e.call, e.position) for e in acd.queue_view(10.0)] == [
            ("c1", 1),
            ("c2", 2),
            ("c3", 3),
        ]
        assert [e.wait for e in acd.queue_view(10.0)] == [9.0, 8.0, 7.0]


class TestRingTimeout:
    def test_requeues_at_the_old_position_and_marks_the_agent_not_ready(self) -> None:
        acd = Acd(AcdConfig(ring_timeout=15))
        ready(acd, "a", 0.0)
        for k in (1, 2, 3):
            queued(acd, f"c{k}", float(k))
        assert acd.next_deadline() == 16.0  # c1 rings a from t=1
        out = acd.tick(16.0)
        assert of(out, CancelOffer) == [CancelOffer("c1", "a", "ring_timeout")]
        assert of(out, Queued) == [Queued("c1", 1)]
        a = agent(acd, "a")
        assert (a.state, a.reason) == (AgentState.NOT_READY, "未接听")
        assert [e.call for e in acd.queue_view(16.0)] == ["c1", "c2", "c3"]
        # the next agent to become ready gets c1, the oldest call, not c2
        assert of(ready(acd, "b", 20.0), Offer) == [Offer("c1", "b", "13800138000")]

    def test_a_declined_offer_goes_to_the_next_ready_agent_at_once(self) -> None:
        acd = Acd()
        ready(acd, "a", 0.0)
        ready(acd, "b", 1.0)
        queued(acd, "c1", 2.0)
        out = acd.decline("a", "c1", 3.0)
        assert of(out, CancelOffer) == [CancelOffer("c1", "a", "declined")]
        assert of(out, Offer) == [Offer("c1", "b", "13800138000")]
        assert (agent(acd, "a").state, agent(acd, "a").reason) == (AgentState.NOT_READY, "拒接")

    def test_a_late_tick_fires_the_timeout_and_the_next_offer_rings_afresh(self) -> None:
        acd = Acd(AcdConfig(ring_timeout=15))
        ready(acd, "a", 0.0)
        ready(acd, "b", 0.5)
        queued(acd, "c1", 1.0)
        acd.tick(20.0)  # 4 s late
        assert agent(acd, "b").state is AgentState.OFFERED
        assert acd.next_deadline() == 35.0


class TestCallback:
    def test_the_callback_key_in_the_queue_records_a_callback_and_hangs_up(self) -> None:
        acd = Acd()
        queued(acd, "c1", 0.0, caller="13900001111")
        assert acd.dtmf("c1", "2", 5.0) == []  # other keys are ignored
        out = acd.dtmf("c1", "1", 6.0)
        assert out[:2] == [StopMusic("c1"), RecordCallback("c1", "13900001111", 6.0)]
        assert out[-1] == PlayPrompt("c1", Prompt.CALLBACK_CONFIRMED, hang_up=True)
        end = ended(out)
        assert (end.outcome, end.waited) == (Outcome.CALLBACK, 6.0)
        assert acd.queue_view(7.0) == []
        assert acd.next_deadline() is None
        assert acd.prompt_done("c1", 10.0) == []  # the confirmation played: forgotten
        with pytest.raises(UnknownCall):
            acd.caller_hangup("c1", 11.0)

    def test_the_callback_key_while_ringing_an_agent_cancels_the_offer(self) -> None:
        acd = Acd()
        ready(acd, "a", 0.0)
        queued(acd, "c1", 1.0)
        out = acd.dtmf("c1", "1", 3.0)
        assert of(out, CancelOffer) == [CancelOffer("c1", "a", "callback")]
        a = agent(acd, "a")
        assert (a.state, a.idle_since) == (AgentState.READY, 0.0)  # keeps its place
        assert acd.caller_hangup("c1", 4.0) == []  # hung up during the confirmation
        assert ended(out).outcome is Outcome.CALLBACK

    def test_a_configured_key(self) -> None:
        acd = Acd(AcdConfig(callback_key="#"))
        queued(acd, "c1", 0.0)
        assert acd.dtmf("c1", "1", 1.0) == []
        assert ended(acd.dtmf("c1", "#", 2.0)).outcome is Outcome.CALLBACK


class TestOverflow:
    def test_a_full_queue_turns_the_next_caller_away(self) -> None:
        acd = Acd(AcdConfig(max_queue=2))
        queued(acd, "c1", 0.0)
        acd.call_arrived("c2", "1", 1.0)  # still in the welcome: holds a place
        out = acd.call_arrived("c3", "1", 2.0)
        end = ended(out)
        assert (end.outcome, end.queued_at, end.waited) == (Outcome.OVERFLOW, None, 0.0)
        assert out[-1] == PlayPrompt("c3", Prompt.OVERFLOW, hang_up=True)
        acd.caller_hangup("c1", 3.0)  # a place frees up
        assert acd.call_arrived("c4", "1", 4.0) == [PlayPrompt("c4", Prompt.WELCOME)]

    def test_the_maximum_wait_plays_the_overflow_message_and_hangs_up(self) -> None:
        acd = Acd(AcdConfig(max_wait=600, announce_every=1000))
        queued(acd, "c1", 100.0)
        assert acd.next_deadline() == 700.0
        assert acd.tick(699.0) == []
        out = acd.tick(700.0)
        assert out[0] == StopMusic("c1")
        assert out[-1] == PlayPrompt("c1", Prompt.OVERFLOW, hang_up=True)
        end = ended(out)
        assert (end.outcome, end.waited) == (Outcome.OVERFLOW, 600.0)
        assert acd.calls["c1"].state is CallState.FAREWELL
        assert acd.prompt_done("c1", 705.0) == [] and "c1" not in acd.calls


class TestServiceHours:
    def at(self, hhmm: str) -> float:
        return datetime.fromisoformat(f"2026-12-02T{hhmm}:00+08:00").timestamp()

    def acd(self) -> Acd:
        return Acd(AcdConfig(open_at=parse_hours("08:00-20:00", SHANGHAI).open_at))

    def test_out_of_hours_the_caller_hears_the_other_prompt_and_is_hung_up(self) -> None:
        acd = self.acd()
        assert acd.call_arrived("c1", "1", self.at("21:00")) == [
            PlayPrompt("c1", Prompt.OUT_OF_HOURS)
        ]
        out = acd.prompt_done("c1", self.at("21:00") + 12)
        assert out[0] == Hangup("c1")
        assert ended(out).outcome is Outcome.OUT_OF_HOURS
        assert acd.calls == {}

    def test_out_of_hours_the_callback_key_is_offered(self) -> None:
        acd = self.acd()
        acd.call_arrived("c1", "13900001111", self.at("07:59"))
        out = acd.dtmf("c1", "1", self.at("07:59") + 5)
        assert of(out, RecordCallback)[0].caller == "13900001111"
        assert ended(out).outcome is Outcome.CALLBACK

    def test_in_hours_the_welcome(self) -> None:
        acd = self.acd()
        assert acd.call_arrived("c1", "1", self.at("08:00")) == [PlayPrompt("c1", Prompt.WELCOME)]

    def test_hanging_up_during_the_out_of_hours_prompt(self) -> None:
        acd = self.acd()
        acd.call_arrived("c1", "1", self.at("23:00"))
        assert ended(acd.caller_hangup("c1", self.at("23:00") + 3)).outcome is Outcome.OUT_OF_HOURS


class TestAnnouncements:
    def test_every_30_s_with_the_position_and_expected_wait(self) -> None:
        acd = Acd(AcdConfig(announce_every=30, default_handle_time=180))
        acd.sign_in("a", 0.0)  # signed in but not ready: one agent to share the queue
        assert of(queued(acd, "c1", 0.0), PlayPrompt) == [
            PlayPrompt("c1", Prompt.QUEUE_POSITION, position=1, wait_minutes=3)
        ]
        assert of(queued(acd, "c2", 10.0), PlayPrompt) == [
            PlayPrompt("c2", Prompt.QUEUE_POSITION, position=2, wait_minutes=6)
        ]
        assert acd.next_deadline() == 30.0
        assert acd.tick(30.0) == [PlayPrompt("c1", Prompt.QUEUE_POSITION, 1, 3)]
        assert acd.next_deadline() == 40.0
        assert acd.tick(40.0) == [PlayPrompt("c2", Prompt.QUEUE_POSITION, 2, 6)]
        acd.caller_hangup("c1", 45.0)
        assert acd.tick(60.0) == []
        assert acd.tick(70.0) == [PlayPrompt("c2", Prompt.QUEUE_POSITION, 1, 3)]  # moved up

    def test_a_second_agent_halves_the_expected_wait(self) -> None:
        acd = Acd()
        acd.sign_in("a", 0.0)
        acd.sign_in("b", 0.0)
        assert of(queued(acd, "c1", 0.0), PlayPrompt)[0].wait_minutes == 2  # 1 × 180 s ÷ 2

    def test_the_handle_time_of_answered_calls_replaces_the_default(self) -> None:
        acd = Acd(AcdConfig(wrapup=30, default_handle_time=600))
        connected(acd, "c1", "a", 0.0)
        acd.agent_hangup("a", "c1", 100.0)  # 100 s talk
        acd.tick(130.0)  # + 30 s wrap-up = 130 s handled
        acd.set_not_ready("a", "午休", 131.0)
        assert acd.expected_wait(2) == 260.0
        assert of(queued(acd, "c2", 140.0), PlayPrompt)[0].wait_minutes == 3  # 130 s → 3 min

    def test_a_late_tick_announces_once_and_keeps_the_rhythm(self) -> None:
        acd = Acd(AcdConfig(announce_every=30))
        queued(acd, "c1", 0.0)
        assert len(acd.tick(95.0)) == 1
        assert acd.next_deadline() == 120.0


class TestHold:
    def test_hold_plays_music_to_the_caller_and_unhold_stops_it(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        assert acd.hold("c1", 10.0) == [StartMusic("c1")]
        with pytest.raises(HotlineStateError):
            acd.hold("c1", 11.0)
        assert acd.unhold("c1", 20.0) == [StopMusic("c1")]
        with pytest.raises(HotlineStateError):
            acd.unhold("c1", 21.0)

    def test_a_queued_call_cannot_be_held(self) -> None:
        acd = Acd()
        queued(acd, "c1", 0.0)
        with pytest.raises(HotlineStateError):
            acd.hold("c1", 1.0)


class TestHangups:
    def test_the_caller_hangs_up_while_offered_the_offer_is_cancelled(self) -> None:
        acd = Acd()
        ready(acd, "a", 0.0)
        queued(acd, "c1", 2.0)
        out = acd.caller_hangup("c1", 7.0)
        assert of(out, CancelOffer) == [CancelOffer("c1", "a", "abandoned")]
        end = ended(out)
        assert (end.outcome, end.agent, end.waited) == (Outcome.ABANDONED, None, 5.0)
        assert agent(acd, "a").state is AgentState.READY
        assert acd.next_deadline() is None  # no ring timeout left

    def test_the_caller_hangs_up_while_waiting_abandoned(self) -> None:
        acd = Acd()
        queued(acd, "c1", 0.0)
        out = acd.caller_hangup("c1", 42.0)
        assert ended(out).outcome is Outcome.ABANDONED and ended(out).waited == 42.0

    def test_the_caller_hangs_up_a_connected_call_the_agent_wraps_up(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        out = acd.caller_hangup("c1", 50.0)
        assert out[0] == Disconnect("c1", "a")
        assert ended(out).outcome is Outcome.ANSWERED
        assert agent(acd, "a").state is AgentState.WRAP_UP

    def test_agent_hangs_up_wrap_up_then_ready_after_the_time_and_the_next_call(self) -> None:
        acd = Acd(AcdConfig(wrapup=30))
        connected(acd, "c1", "a", 0.0)
        out = acd.agent_hangup("a", "c1", 60.0)
        assert AgentChanged("a", AgentState.WRAP_UP, "", None, 60.0) in out
        assert agent(acd, "a").wrap_until == 90.0
        queued(acd, "c2", 70.0)  # waits: a is wrapping up
        assert acd.next_deadline() == 90.0
        out = acd.tick(90.0)
        assert AgentChanged("a", AgentState.READY, "", None, 90.0) in out
        assert of(out, Offer) == [Offer("c2", "a", "13800138000")]

    def test_set_ready_ends_the_wrap_up_early(self) -> None:
        acd = Acd(AcdConfig(wrapup=30))
        connected(acd, "c1", "a", 0.0)
        acd.agent_hangup("a", "c1", 10.0)
        acd.set_ready("a", 15.0)
        assert agent(acd, "a").state is AgentState.READY and acd.next_deadline() is None

    def test_a_fault_ends_a_waiting_call_failed(self) -> None:
        acd = Acd()
        queued(acd, "c1", 0.0)
        assert ended(acd.call_failed("c1", 3.0)).outcome is Outcome.FAILED


class TestBlindTransfer:
    def test_to_the_queue_the_call_goes_to_the_front(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        queued(acd, "c2", 1.0)
        queued(acd, "c3", 2.0)
        out = acd.transfer_blind("c1", "a", QUEUE, 30.0)
        assert out[:2] == [Transferred("c1", "a", QUEUE), Disconnect("c1", "a")]
        assert Queued("c1", 1, front=True) in out and StartMusic("c1") in out
        assert agent(acd, "a").state is AgentState.WRAP_UP
        assert [e.call for e in acd.queue_view(31.0)] == ["c1", "c2", "c3"]
        ready(acd, "b", 40.0)
        acd.accept("b", "c1", 41.0)
        end = ended(acd.agent_hangup("b", "c1", 100.0))
        assert (end.outcome, end.agent, end.transfers, end.answered_at) == (
            Outcome.ANSWERED,
            "b",
            1,
            0.0,  # the first answer is the one the service level measures
        )
        assert end.talked == 30.0 + 59.0

    def test_to_a_ready_agent_it_rings_them_with_music_to_the_caller(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        ready(acd, "b", 1.0)
        out = acd.transfer_blind("c1", "a", "b", 10.0)
        assert StartMusic("c1") in out and of(out, Offer) == [Offer("c1", "b", "13800138000")]
        assert acd.accept("b", "c1", 12.0)[-1] == Connect("c1", "b")

    def test_to_an_agent_who_is_not_ready_is_refused_and_nothing_changes(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        acd.sign_in("b", 1.0)
        before = state(acd)
        with pytest.raises(AgentNotReady) as e:
            acd.transfer_blind("c1", "a", "b", 10.0)
        assert "示闲" in e.value.message
        assert state(acd) == before

    def test_an_unanswered_transfer_goes_to_the_front_of_the_queue(self) -> None:
        acd = Acd(AcdConfig(ring_timeout=15))
        connected(acd, "c1", "a", 0.0)
        ready(acd, "b", 1.0)
        acd.transfer_blind("c1", "a", "b", 10.0)
        queued(acd, "c2", 11.0)  # nobody ready: waits
        out = acd.tick(25.0)
        assert of(out, CancelOffer) == [CancelOffer("c1", "b", "ring_timeout")]
        assert of(out, Queued) == [Queued("c1", 1, front=True)]
        assert [e.call for e in acd.queue_view(26.0)] == ["c1", "c2"]


class TestAttendedTransfer:
    def consulting(self) -> Acd:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        ready(acd, "b", 1.0)
        out = acd.consult("c1", "a", "b", 10.0)
        assert out[0] == StartMusic("c1")  # the caller on hold
        assert of(out, Offer) == [Offer("c1", "b", "13800138000", consult_from="a")]
        assert acd.accept("b", "c1", 12.0)[-1] == Consult("c1", "a", "b")
        return acd

    def test_complete_bridges_the_caller_to_the_consulted_agent(self) -> None:
        acd = self.consulting()
        out = acd.transfer_complete("c1", "a", 20.0)
        assert out[:5] == [
            Transferred("c1", "a", "b", attended=True),
            EndConsult("c1", "b"),
            Disconnect("c1", "a"),
            StopMusic("c1"),
            Connect("c1", "b"),
        ]
        assert agent(acd, "a").state is AgentState.WRAP_UP
        assert (agent(acd, "b").state, agent(acd, "b").call) == (AgentState.TALKING, "c1")
        end = ended(acd.agent_hangup("b", "c1", 50.0))
        assert (end.agent, end.transfers, end.talked) == ("b", 1, 50.0)

    def test_cancel_returns_the_caller_to_the_first_agent_off_hold(self) -> None:
        acd = self.consulting()
        out = acd.transfer_cancel("c1", "a", 20.0)
        assert out[0] == EndConsult("c1", "b") and StopMusic("c1") in out
        assert agent(acd, "b").state is AgentState.READY
        assert acd.calls["c1"].state is CallState.CONNECTED and not acd.calls["c1"].held
        assert ended(acd.agent_hangup("a", "c1", 30.0)).agent == "a"

    def test_the_consulted_agent_hanging_up_ends_the_consultation(self) -> None:
        acd = self.consulting()
        out = acd.agent_hangup("b", "c1", 15.0)
        assert out[0] == EndConsult("c1", "b") and not of(out, CallEnded)
        assert acd.calls["c1"].state is CallState.CONNECTED

    def test_an_unanswered_consultation_times_out(self) -> None:
        acd = Acd(AcdConfig(ring_timeout=15))
        connected(acd, "c1", "a", 0.0)
        ready(acd, "b", 1.0)
        acd.consult("c1", "a", "b", 10.0)
        with pytest.raises(HotlineStateError):
            acd.transfer_complete("c1", "a", 12.0)  # not answered yet
        out = acd.tick(25.0)
        assert of(out, CancelOffer) == [CancelOffer("c1", "b", "ring_timeout")]
        assert StopMusic("c1") in out
        assert (agent(acd, "b").state, agent(acd, "b").reason) == (AgentState.NOT_READY, "未接听")
        assert acd.calls["c1"].state is CallState.CONNECTED

    def test_the_caller_hanging_up_during_a_consultation_ends_both(self) -> None:
        acd = self.consulting()
        out = acd.caller_hangup("c1", 14.0)
        assert out[0] == EndConsult("c1", "b") and Disconnect("c1", "a") in out
        assert agent(acd, "a").state is AgentState.WRAP_UP
        assert agent(acd, "b").state is AgentState.READY
        assert ended(out).outcome is Outcome.ANSWERED

    def test_the_first_agent_cannot_hang_up_mid_consultation(self) -> None:
        acd = self.consulting()
        before = state(acd)
        with pytest.raises(HotlineStateError):
            acd.agent_hangup("a", "c1", 14.0)
        assert state(acd) == before


class TestSupervisor:
    def test_listen_then_barge_and_the_monitoring_ends_with_the_call(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        assert acd.monitor("c1", "s", MonitorMode.LISTEN, 1.0) == [
            Monitor("c1", "s", MonitorMode.LISTEN, "a")
        ]
        assert acd.monitor("c1", "s", MonitorMode.BARGE, 2.0) == [
            Monitor("c1", "s", MonitorMode.BARGE, "a")
        ]
        out = acd.agent_hangup("a", "c1", 3.0)
        assert Unmonitor("c1", "s") in out and acd.monitoring == {}

    def test_the_monitoring_follows_an_attended_transfer_to_the_new_agent(self) -> None:
        acd = TestAttendedTransfer().consulting()
        acd.monitor("c1", "s", MonitorMode.WHISPER, 13.0)
        out = acd.transfer_complete("c1", "a", 20.0)
        assert Monitor("c1", "s", MonitorMode.WHISPER, "b") in out
        assert acd.monitoring == {"s": "c1"}

    def test_a_blind_transfer_ends_the_monitoring(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        acd.monitor("c1", "s", MonitorMode.LISTEN, 1.0)
        assert Unmonitor("c1", "s") in acd.transfer_blind("c1", "a", QUEUE, 2.0)
        assert acd.monitoring == {}

    def test_one_call_at_a_time(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        connected(acd, "c2", "b", 0.0)
        acd.monitor("c1", "s", MonitorMode.WHISPER, 1.0)
        out = acd.monitor("c2", "s", MonitorMode.LISTEN, 2.0)
        assert out == [Unmonitor("c1", "s"), Monitor("c2", "s", MonitorMode.LISTEN, "b")]
        assert acd.unmonitor("c2", "s", 3.0) == [Unmonitor("c2", "s")]

    def test_a_waiting_call_cannot_be_monitored(self) -> None:
        acd = Acd()
        queued(acd, "c1", 0.0)
        with pytest.raises(HotlineStateError):
            acd.monitor("c1", "s", MonitorMode.LISTEN, 1.0)


class TestAgents:
    def test_sign_in_is_not_ready_until_the_agent_says_ready(self) -> None:
        acd = Acd()
        out = acd.sign_in("a", 0.0)
        assert out == [AgentChanged("a", AgentState.NOT_READY, "签入", None, 0.0)]
        queued(acd, "c1", 1.0)
        assert of(acd.set_ready("a", 2.0), Offer) == [Offer("c1", "a", "13800138000")]

    def test_not_ready_with_a_reason_code(self) -> None:
        acd = Acd()
        ready(acd, "a", 0.0)
        acd.set_not_ready("a", "培训", 1.0)
        assert (agent(acd, "a").state, agent(acd, "a").reason) == (AgentState.NOT_READY, "培训")
        queued(acd, "c1", 2.0)
        assert agent(acd, "a").state is AgentState.NOT_READY

    def test_signing_out_while_ringing_puts_the_call_back(self) -> None:
        acd = Acd()
        ready(acd, "a", 0.0)
        queued(acd, "c1", 1.0)
        out = acd.sign_out("a", 2.0)
        assert of(out, CancelOffer) == [CancelOffer("c1", "a", "signed_out")]
        assert [e.call for e in acd.queue_view(3.0)] == ["c1"]

    def test_signing_out_while_talking_is_refused(self) -> None:
        acd = Acd()
        connected(acd, "c1", "a", 0.0)
        with pytest.raises(HotlineStateError):
            acd.sign_out("a", 1.0)


class TestRefusals:
    @pytest.mark.parametrize(
        ("event", "error"),
        [
            (lambda acd: acd.accept("b", "c1", 5.0), HotlineStateError),  # not offered to b
            (lambda acd: acd.accept("z", "c1", 5.0), AgentNotSignedIn),
            (lambda acd: acd.accept("a", "nope", 5.0), HotlineStateError),
            (lambda acd: acd.prompt_done("nope", 5.0), UnknownCall),
            (lambda acd: acd.dtmf("nope", "1", 5.0), UnknownCall),
            (lambda acd: acd.set_ready("z", 5.0), AgentNotSignedIn),
            (lambda acd: acd.sign_in("a", 5.0), HotlineStateError),
            (lambda acd: acd.call_arrived("c1", "1", 5.0), HotlineStateError),
            (lambda acd: acd.agent_hangup("a", "c1", 5.0), HotlineStateError),
            (lambda acd: acd.transfer_blind("c1", "a", QUEUE, 5.0), HotlineStateError),
            (lambda acd: acd.consult("c1", "a", "b", 5.0), HotlineStateError),
            (lambda acd: acd.transfer_cancel("c1", "a", 5.0), HotlineStateError),
            (lambda acd: acd.wrap_up_done("b", 5.0), HotlineStateError),
        ],
    )
    def test_a_bad_event_raises_in_chinese_and_changes_nothing(
        self, event: Any, error: type[HotlineError]
    ) -> None:
        acd = Acd()
        ready(acd, "a", 0.0)
        ready(acd, "b", 0.5)
        acd.set_not_ready("b", "", 0.6)
        queued(acd, "c1", 1.0)  # offered to a
        before = state(acd)
        with pytest.raises(error) as e:
            event(acd)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in e.value.message)
        assert e.value.code.startswith("hotline_")
        assert state(acd) == before

    def test_impossible_settings(self) -> None:
        for kw in ({"ring_timeout": 0}, {"callback_key": "12"}, {"max_queue": -1}):
            with pytest.raises(ValueError):
                AcdConfig(**kw)
