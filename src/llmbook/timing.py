"""Timers for small measurements: run a function several times and keep the least disturbed time.

``cpu_seconds`` and ``cpu_seconds_interleaved`` count the CPU time of this process (chapter 7 and the
speed-up experiments): time spent waiting while other programs use the core does not count, so the
numbers are steadier on a shared machine. ``best_seconds`` counts wall-clock time and keeps the
fastest run (chapter 3), the one least disturbed by whatever else the computer is doing.

Used in chapters 3, Attention, step by step, and 7, Inference engineering.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def _timed_runs(fn: Callable, repeats: int, warmup: bool, clock: Callable[[], float]) -> list[float]:
    """The times of `repeats` calls of fn() on `clock`, after one untimed warm-up call unless warmup=False."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def cpu_seconds(fn: Callable, repeats: int = 3, warmup: bool = True) -> float:
    """Median CPU time (seconds) of fn() over `repeats` calls, after one warm-up call (unless warmup=False)."""
    return statistics.median(_timed_runs(fn, repeats, warmup, time.process_time))


def cpu_seconds_interleaved(fns, repeats: int = 3) -> list[float]:
    """Median CPU time of each fn in fns, timed in turns (a, b, a, b, ...) after one warm-up each.

    Taking turns exposes every function to the same background load, so their ratio is steadier
    than that of two measurements made one after the other.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            start = time.process_time()
            fn()
            t.append(time.process_time() - start)
    return [statistics.median(t) for t in times]


def best_seconds(fn: Callable, repeats: int = 7, warmup: bool = True) -> float:
    """Fastest wall-clock time (seconds) of fn() over `repeats` calls, after one warm-up call."""
    return min(_timed_runs(fn, repeats, warmup, time.perf_counter))
