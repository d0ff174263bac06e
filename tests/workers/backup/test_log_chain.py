"""The mutation-log chain's rule for a message that finds the record elsewhere (pure logic; the kill and
redelivery suites run it against real workers)."""

from __future__ import annotations

from workers.backup.mutationlog import RoundDecision, decide, guard_seconds

RUN, AGAIN, EXIT = RoundDecision.RUN, RoundDecision.REENQUEUE_CURRENT, RoundDecision.EXIT


def test_a_round_runs_when_current_and_a_stale_one_resends_only_after_a_stall() -> None:
    assert decide(5, 5, guard=False, stalled_for=0.0, after=3.0) == RUN
    # One round behind: its successor's message may be lost, but only a stall says so; a live chain
    # (the next round waiting out a retry) must not get a second message for one round.
    assert decide(6, 5, guard=False, stalled_for=1.0, after=3.0) == EXIT
    assert decide(6, 5, guard=False, stalled_for=7.0, after=3.0) == AGAIN
    assert decide(8, 5, guard=False, stalled_for=99.0, after=3.0) == EXIT


def test_a_guard_runs_only_its_own_round_and_only_once_it_has_stalled() -> None:
    assert decide(5, 5, guard=True, stalled_for=1.0, after=15.0) == EXIT  # the round's message is alive
    assert decide(5, 5, guard=True, stalled_for=20.0, after=15.0) == RUN  # lost: the guard runs it
    assert decide(6, 5, guard=True, stalled_for=99.0, after=15.0) == EXIT  # guards never resend
    assert decide(4, 5, guard=True, stalled_for=99.0, after=15.0) == EXIT


def test_guards_come_due_many_rounds_later() -> None:
    assert guard_seconds(0.5) == 30.0
    assert guard_seconds(2.0) == 30.0
    assert guard_seconds(10.0) == 100.0
