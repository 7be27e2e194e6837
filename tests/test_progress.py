"""course_lib.progress.LazyBar: the bar appears only when asked or when the first piece predicts slow work."""

import pytest

from course_lib import progress
from course_lib.progress import LazyBar


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress.time, "perf_counter", fake)
    return fake


def run(total, first_piece_s, clock, **kw):
    with LazyBar(total, "work", "piece", **kw) as bar:
        for k in range(total):
            clock.now += first_piece_s if k == 0 else 0.0
            bar.update()
            if k == 0:
                shown = bar.bar
            if bar.bar is not None:
                count = bar.bar.n
    return shown, (count if shown is not None else None), bar.bar


@pytest.mark.parametrize("total, first_s, progress_arg, shown", [
    (10, 0.5, None, True),     # 0.5 s x 10 pieces = 5 s > 3 s: slow, show it
    (10, 0.2, None, False),    # 2 s predicted: no bar
    (10, 0.0, True, True),     # asked for
    (10, 9.0, False, False),   # refused, however slow
    (1, 9.0, True, False),     # one piece: nothing to show progress over
])
def test_bar_appears_only_when_asked_or_slow(clock, total, first_s, progress_arg, shown):
    first, count, after = run(total, first_s, clock, progress=progress_arg)
    assert (first is not None) == shown
    if shown:
        assert count == total  # initial=1 after the first piece, +1 for each of the others
    assert after is None  # closed on exit


def test_sync_runs_before_the_first_piece_is_judged(clock):
    calls = []
    with LazyBar(4, "work", "piece", progress=False, sync=lambda: calls.append(1)) as bar:
        bar.update()
    assert calls == []  # progress=False: nothing to decide, no sync
    with LazyBar(4, "work", "piece", sync=lambda: calls.append(1)) as bar:
        for _ in range(4):
            bar.update()
    assert calls == [1]  # once, at the first piece
