"""The timers: how often they call the function, in which order, and what they return."""
import time

import pytest

from llmbook.timing import best_seconds, cpu_seconds, cpu_seconds_interleaved


def test_cpu_seconds_is_a_median_of_nonnegative_times():
    calls = []
    seconds = cpu_seconds(lambda: calls.append(1), repeats=3)
    assert seconds >= 0 and len(calls) == 4  # one warm-up, three timed


def test_interleaved_timing_takes_turns():
    order = []
    times = cpu_seconds_interleaved([lambda: order.append("a"), lambda: order.append("b")], repeats=2)
    assert order == ["a", "b", "a", "b", "a", "b"] and len(times) == 2 and min(times) >= 0


def test_best_seconds_is_the_fastest_wall_clock_run():
    delays = iter([0.0, 0.2, 0.05, 0.3])  # the warm-up, then three timed calls

    def sleepy():
        time.sleep(next(delays))

    assert 0.05 <= best_seconds(sleepy, repeats=3) < 0.2  # the 50 ms call; the warm-up is not timed
    with pytest.raises(ValueError, match="repeats=0"):
        best_seconds(lambda: None, repeats=0)
