"""The replay window: ids held until their window ends, forgotten in whole windows."""

from __future__ import annotations

from receiver.intake.replay import ReplayWindow


def test_an_id_is_held_until_its_window_ends() -> None:
    window = ReplayWindow()
    window.add("a", until=100.0, marker_row=1)
    assert window.holds("a", now=99.0) and window.holds("a", now=100.0)
    assert not window.holds("a", now=100.5)
    assert not window.holds("b", now=0.0)


def test_expire_forgets_ended_windows_and_names_the_last_marker_row() -> None:
    window = ReplayWindow()
    for row, until in enumerate([100.0, 100.2, 100.9, 105.0, 105.5, 110.0], start=1):
        window.add(f"e{row}", until, row)
    assert window.expire(now=50.0) == 0 and len(window) == 6
    assert window.expire(now=101.0) == 3  # the first window: rows 1-3
    assert len(window) == 3 and window.holds("e4", now=101.0)
    assert window.expire(now=200.0) == 6
    assert len(window) == 0


def test_a_window_ending_later_keeps_the_ones_after_it_until_it_ends() -> None:
    window = ReplayWindow()
    window.add("late", until=200.0, marker_row=1)  # signed far ahead of the others
    window.add("early", until=150.0, marker_row=2)
    assert window.expire(now=160.0) == 0  # markers are dropped in row order only
    assert not window.holds("early", now=160.0)  # but the id itself has expired
    assert window.expire(now=201.0) == 2


def test_loaded_markers_expire_as_one_window() -> None:
    window = ReplayWindow()
    window.load({"a": 100.0, "b": 120.0}, last_row=7)
    assert window.holds("a", now=90.0) and window.holds("b", now=110.0)
    assert window.expire(now=110.0) == 0
    assert window.expire(now=121.0) == 7


def test_ids_arriving_steadily_fill_one_window_a_second_and_all_expire() -> None:
    window = ReplayWindow()
    for n in range(600):  # a minute of ids whose windows end 0.1 s apart
        window.add(f"e{n}", until=1000.0 + n * 0.1, marker_row=n + 1)
    assert window.expire(now=1030.0) > 0
    assert len(window) <= 310  # those ending after 1030 s, give or take a window
    assert window.expire(now=1061.0) == 600
    assert len(window) == 0


def test_a_marker_row_shared_with_a_live_window_is_kept() -> None:
    window = ReplayWindow()
    window.add("a", until=100.0, marker_row=1)
    window.add("b", until=100.0, marker_row=2)
    window.add("c", until=200.0, marker_row=2)  # one commit, two windows
    window.add("d", until=200.0, marker_row=3)
    assert window.expire(now=150.0) == 1  # row 2 also holds "c"
    assert window.holds("c", now=150.0)
    assert window.expire(now=201.0) == 3
