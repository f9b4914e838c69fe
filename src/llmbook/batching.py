"""Serving many requests at once: static batching against continuous batching, simulated on a trace.

A server receives requests at different times, each with a prompt and an answer of its own length.
*Static batching* (what ``generate`` on a padded batch does) takes up to `max_batch` waiting requests,
pads their prompts to the longest, and runs the batch until its longest answer is done: a short
answer's row keeps computing padding, and a request that arrives meanwhile waits for the whole batch.
Its KV cache is reserved up front for the longest prompt plus `max_new_tokens` per row.
*Continuous batching* (iteration-level scheduling, Yu et al., 2022, "Orca"; with a paged KV cache,
Kwon et al., 2023, "vLLM") decides again at every step: finished requests leave, waiting ones join
(their prompt is processed in the same forward pass as the others' next token), and the cache takes
a block of `block_size` positions only when a sequence reaches it.

This module simulates both schedulers token for token; it does not run a model. A step is one
forward pass, and its cost is `fixed + per_token * tokens` (tokens = the positions the pass computes,
padding included); chapter 7 takes fixed = 1 as the unit of time and checks that its conclusions
hold for per_token from 0.001 to 0.05. Every request is assumed to produce the same tokens either
way (greedy decoding does; the scheduler changes when a token is computed, not which).

Taught in chapter 7, Inference engineering.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """arrival: time it arrives (the cost model's unit); prompt: prompt tokens; output: tokens it generates."""

    arrival: float
    prompt: int
    output: int

    def __post_init__(self):
        if self.arrival < 0 or self.prompt < 1 or self.output < 1:
            raise ValueError(f"a request needs arrival >= 0, prompt >= 1 and output >= 1, got {self}")


@dataclass
class Report:
    """What a scheduler did with a trace. `finish[i]` is when request i produced its last token."""

    finish: list[float]
    steps: int = 0
    time: float = 0.0
    computed: int = 0  # positions computed by all forward passes, padding included
    padding: int = 0  # positions computed that carry no token of any request
    peak_kv_reserved: int = 0  # most KV positions held by the cache at once (reserved, used or not)
    peak_kv_used: int = 0  # most KV positions holding a token at once
    preempted: int = 0  # requests evicted for lack of KV blocks and recomputed later
    kv_trace: list[tuple[float, int, int]] = field(default_factory=list)  # (time, reserved, used) per step

    def latency(self, trace: list[Request]) -> list[float]:
        return [f - r.arrival for f, r in zip(self.finish, trace)]

    def throughput(self, trace: list[Request]) -> float:
        """Generated tokens per unit of time, from the first arrival to the last finish."""
        return sum(r.output for r in trace) / (max(self.finish) - min(r.arrival for r in trace))


def request_trace(n: int, seed: int = 0, mean_gap: float = 1.0, prompt=(4, 64), output=(1, 128)) -> list[Request]:
    """n requests with exponential gaps between arrivals and uniform prompt and output lengths (inclusive)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng, now, trace = random.Random(seed), 0.0, []
    for _ in range(n):
        trace.append(Request(round(now, 3), rng.randint(*prompt), rng.randint(*output)))
        now += rng.expovariate(1 / mean_gap)
    return trace


def _check(trace, max_batch, fixed, per_token):
    if not trace:
        raise ValueError("the trace holds no request")
    if max_batch < 1 or fixed < 0 or per_token < 0:
        raise ValueError(f"need max_batch >= 1 and costs >= 0, got {max_batch}, {fixed}, {per_token}")


def _step(report: Report, tokens: int, real: int, reserved: int, used: int, fixed: float, per_token: float):
    """Account one forward pass computing `tokens` positions, `real` of them carrying a request's token."""
    report.steps += 1
    report.time += fixed + per_token * tokens
    report.computed += tokens
    report.padding += tokens - real
    report.peak_kv_reserved = max(report.peak_kv_reserved, reserved)
    report.peak_kv_used = max(report.peak_kv_used, used)
    report.kv_trace.append((report.time, reserved, used))


def static_batching(trace: list[Request], max_batch: int, max_new_tokens: int,
                    fixed: float = 1.0, per_token: float = 0.0) -> Report:
    """Batches of up to max_batch arrived requests (first come, first served), each run to its end."""
    _check(trace, max_batch, fixed, per_token)
    if max(r.output for r in trace) > max_new_tokens:
        raise ValueError(f"a request asks for {max(r.output for r in trace)} tokens > max_new_tokens {max_new_tokens}")
    order = sorted(range(len(trace)), key=lambda i: trace[i].arrival)
    report = Report(finish=[0.0] * len(trace))
    while order:
        report.time = max(report.time, trace[order[0]].arrival)
        batch = [i for i in order if trace[i].arrival <= report.time][:max_batch]
        order = [i for i in order if i not in batch]
        width = max(trace[i].prompt for i in batch)  # prompts are padded to the longest
        reserved = len(batch) * (width + max_new_tokens)  # the contiguous cache is allocated up front
        longest = max(trace[i].output for i in batch)
        real = sum(trace[i].prompt for i in batch)
        _step(report, len(batch) * width, real, reserved, real, fixed, per_token)  # prefill + first token
        for t in range(1, longest):  # decode: every row computes, finished or not
            alive = [i for i in batch if trace[i].output > t]
            used = sum(trace[i].prompt + min(t, trace[i].output - 1) for i in batch)
            _step(report, len(batch), len(alive), reserved, used, fixed, per_token)
        for i in batch:  # the batch returns when its longest answer is done
            report.finish[i] = report.time
    return report


def continuous_batching(trace: list[Request], max_batch: int, num_blocks: int, block_size: int = 16,
                        fixed: float = 1.0, per_token: float = 0.0) -> Report:
    """Iteration-level scheduling over a paged KV cache of num_blocks blocks of block_size positions.

    At each step: requests that have arrived join, first come first served, while fewer than max_batch
    run and the pool has the blocks for their prompt; each running request computes its next token (a
    newcomer its whole prompt, which also yields its first token). When the running requests need
    more blocks than the pool has, the one that joined last is preempted: its blocks are freed and it
    waits again at the head of the queue, to be recomputed from its prompt and the tokens it already
    produced (vLLM's recompute policy).
    """
    _check(trace, max_batch, fixed, per_token)
    need = max(-(-(r.prompt + r.output - 1) // block_size) for r in trace)
    if need > num_blocks:
        raise ValueError(f"a request needs {need} blocks of {block_size} positions; the pool has {num_blocks}")
    waiting = sorted(range(len(trace)), key=lambda i: trace[i].arrival)
    done = [0] * len(trace)  # tokens generated so far
    running: list[int] = []  # in the order they joined
    report = Report(finish=[0.0] * len(trace))

    def blocks_after_step(i):  # the cache then holds the prompt and every generated token but the newest
        return -(-(trace[i].prompt + done[i]) // block_size)

    while waiting or running:
        if not running:
            report.time = max(report.time, trace[waiting[0]].arrival)
        newcomers = []
        while waiting and trace[waiting[0]].arrival <= report.time and len(running) < max_batch:
            if sum(map(blocks_after_step, running + [waiting[0]])) > num_blocks:
                break
            newcomers.append(waiting.pop(0))
            running.append(newcomers[-1])
        while sum(map(blocks_after_step, running)) > num_blocks:  # growing sequences need a new block
            victim = running.pop()
            if victim in newcomers:
                newcomers.remove(victim)
            waiting.insert(0, victim)
            report.preempted += 1
        tokens = len(running) - len(newcomers) + sum(trace[i].prompt + done[i] for i in newcomers)
        reserved = block_size * sum(map(blocks_after_step, running))
        used = sum(trace[i].prompt + done[i] for i in running)
        for i in running:
            done[i] += 1
        _step(report, tokens, tokens, reserved, used, fixed, per_token)
        for i in [i for i in running if done[i] == trace[i].output]:
            report.finish[i] = report.time
            running.remove(i)
    return report
