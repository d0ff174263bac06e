"""Pacing a snapshot's range-file tasks over its interval (FDB's dispatcher rule), as pure arithmetic."""

from __future__ import annotations

from workers.backup.pacing import progress_pct, tasks_due


def test_tasks_become_due_one_window_before_their_share_of_the_interval() -> None:
    # 4 tasks over 8 s, the dispatcher waking every 1 s: task i is due at 2*(i+1) - 1 seconds.
    due = [tasks_due(4, t, 8.0, 1.0) for t in (0.0, 0.9, 1.0, 2.9, 3.0, 5.0, 6.9, 7.0, 60.0)]
    assert due == [0, 0, 1, 1, 2, 3, 3, 4, 4]


def test_no_interval_sends_everything_and_nothing_is_due_twice() -> None:
    assert tasks_due(5, 0.0, 0.0, 1.0) == 5  # the default first snapshot: as fast as possible
    assert tasks_due(0, 10.0, 8.0, 1.0) == 0
    assert tasks_due(3, -5.0, 8.0, 0.5) == 0  # a clock behind the period's start sends nothing yet
    assert tasks_due(10, 0.0, 1.0, 2.0) == 10  # a period shorter than a round is not paced


def test_progress_is_the_share_of_the_interval_gone_by() -> None:
    assert progress_pct(2.0, 8.0) == 25.0 and progress_pct(12.0, 8.0) == 150.0 and progress_pct(1.0, 0.0) == 100.0
