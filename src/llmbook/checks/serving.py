"""Checkers for the exercises on how 2026 inference engines work (chapter 7): one step of the online
softmax that FlashAttention's tiling rests on, the acceptance rule of speculative sampling, and
finding a token's keys through a paged KV cache's block table.

Used in chapter 7, Inference engineering.
"""
from __future__ import annotations

import torch

from ._core import Case, Verdict, case_generator, run_cases, tensor_problem


# ----------------------------------------------------------------------------- online softmax
def _online_step(m, denom, acc, scores, values, kind="right"):
    """One block of keys folded into the running max m (Tq,), the running softmax denominator denom (Tq,)
    and the unnormalised output acc (Tq, d)."""
    m_new = scores.max(-1).values if kind == "block max" else torch.maximum(m, scores.max(-1).values)
    alpha = torch.exp(m - m_new)
    p = torch.exp(scores - (m if kind == "old max" else m_new)[:, None])
    denom_new = (denom if kind == "sum not rescaled" else alpha * denom) + p.sum(-1)
    acc_new = (acc if kind == "output not rescaled" else alpha[:, None] * acc) + p @ values
    if kind == "normalised":
        acc_new = acc_new / denom_new[:, None]
    return m_new, denom_new, acc_new


def _triple_problem(got, expected):
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"returned {type(got).__name__}, expected a tuple (m_new, denom_new, acc_new)"
    for name, g, e in zip(("m_new", "denom_new", "acc_new"), got, expected):
        problem = tensor_problem(g, e, name)
        if problem:
            return problem
    return None


def _online_cases() -> list[Case]:
    g = case_generator(31)
    Tq, d, n = 3, 4, 5
    empty = (torch.full((Tq,), float("-inf")), torch.zeros(Tq), torch.zeros(Tq, d))
    s1, v1 = torch.randn(Tq, n, generator=g), torch.randn(n, d, generator=g)
    after_first = _online_step(*empty, s1, v1)
    s2, v2 = torch.randn(Tq, n, generator=g) + 2.0, torch.randn(n, d, generator=g)
    s3, v3 = torch.randn(Tq, n, generator=g) - 3.0, torch.randn(n, d, generator=g)
    big = torch.randn(Tq, n, generator=g) * 5 + 1000.0  # exp(1000) overflows unless the max is subtracted
    return [
        Case("the first block (m = -inf, denom = 0, acc = 0)", (*empty, s1, v1)),
        Case("a second block with larger scores (the running max moves)", (*after_first, s2, v2)),
        Case("a second block with smaller scores (the running max stays)", (*after_first, s3, v3), hidden=True),
        Case("scores near 1000 (overflow unless the max is subtracted)", (*after_first, big, v2), hidden=True),
    ]


def check_online_softmax_step(fn, cases: str = "all") -> Verdict:
    """Check fn(m, denom, acc, scores, values) -> (m_new, denom_new, acc_new): one block of FlashAttention's loop.

    m (Tq,): the largest score seen so far per query; denom (Tq,): the sum of exp(score - m) so far;
    acc (Tq, d): the sum of exp(score - m) * value so far (not yet divided by denom); scores (Tq, n) and
    values (n, d): the next block of keys' scores and values. Dividing the final acc by the final denom
    gives softmax(scores) @ values over all blocks."""
    mistakes = [
        ("when the running max grows, the old output acc must shrink by alpha = exp(m - m_new) too.",
         lambda *a: _online_step(*a, kind="output not rescaled")),
        ("when the running max grows, the old sum denom must shrink by alpha = exp(m - m_new).",
         lambda *a: _online_step(*a, kind="sum not rescaled")),
        ("subtract the NEW running max, max(m, block max), from the scores before exp.",
         lambda *a: _online_step(*a, kind="old max")),
        ("the running max is max(m, the block's max), not the block's max alone.",
         lambda *a: _online_step(*a, kind="block max")),
        ("keep acc unnormalised inside the loop; divide by denom once, after the last block.",
         lambda *a: _online_step(*a, kind="normalised")),
    ]
    return run_cases("check_online_softmax_step", fn, _online_cases(), _online_step, _triple_problem, mistakes,
                     fallback_hint="m_new = max(m, scores.max(-1)); alpha = exp(m - m_new); p = exp(scores - m_new); "
                                   "denom_new = alpha*denom + p.sum(-1); acc_new = alpha*acc + p @ values.",
                     which=cases)


# --------------------------------------------------------------------- speculative acceptance
def _accept(p, q, token, kind="right"):
    """(probability of accepting the draft's token, distribution to resample from if rejected)."""
    ratio = (q[token] / p[token]) if kind == "inverted" else (p[token] / q[token])
    accept = ratio if kind == "no min" else torch.clamp(ratio, max=1.0)
    residual = (q - p) if kind == "residual reversed" else (p - q)
    residual = residual.clamp(min=0)
    if kind == "target":
        residual = p.clone()
    elif kind != "unnormalised":
        residual = residual / residual.sum()
    return accept, residual


def _accept_problem(got, expected):
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"returned {type(got).__name__}, expected a pair (acceptance probability, residual distribution)"
    return tensor_problem(got[0], expected[0], "the acceptance probability") or \
        tensor_problem(got[1], expected[1], "the residual distribution")


def _accept_cases() -> list[Case]:
    p = torch.tensor([0.5, 0.3, 0.2])  # the target
    q = torch.tensor([0.2, 0.6, 0.2])  # the draft
    g = case_generator(32)
    p5, q5 = torch.rand(5, generator=g).softmax(0), (2 * torch.rand(5, generator=g)).softmax(0)
    return [
        Case("the draft proposes a token it over-rates (q > p)", (p, q, 1)),
        Case("the draft proposes a token it under-rates (q < p)", (p, q, 0)),
        Case("five tokens, the draft's token 3", (p5, q5, 3)),
        Case("the draft proposes a token both rate equally", (p, q, 2), hidden=True),
    ]


def check_speculative_accept(fn, cases: str = "all") -> Verdict:
    """Check fn(p, q, token) -> (accept, residual) for speculative sampling (Leviathan et al.; Chen et al.).

    p (V,): the target's next-token distribution; q (V,): the draft's, which proposed `token`.
    accept: the probability of keeping the token, min(1, p[token] / q[token]); residual (V,): the
    distribution to sample from after a rejection, max(p - q, 0) normalised. With this rule the
    token that comes out is distributed exactly as p."""
    mistakes = [
        ("accept with probability p/q (target over draft), not q/p.", lambda *a: _accept(*a, kind="inverted")),
        ("a probability is at most 1: take min(1, p/q).", lambda *a: _accept(*a, kind="no min")),
        ("the residual is max(p - q, 0): the mass the target has and the draft did not already give.",
         lambda *a: _accept(*a, kind="residual reversed")),
        ("resampling from p itself would count the tokens the draft already proposed twice; use "
         "max(p - q, 0), normalised.", lambda *a: _accept(*a, kind="target")),
        ("normalise the residual so it sums to 1.", lambda *a: _accept(*a, kind="unnormalised")),
    ]
    return run_cases("check_speculative_accept", fn, _accept_cases(), _accept, _accept_problem, mistakes,
                     fallback_hint="accept = min(1, p[token] / q[token]); residual = max(p - q, 0) / its sum.",
                     which=cases)


# --------------------------------------------------------------------------- block-table lookup
def _lookup(block_table, block_size, position, kind="right"):
    if kind == "no table":
        return position // block_size, position % block_size
    if kind == "swapped":
        return block_table[position % block_size], position // block_size
    if kind == "no offset":
        return block_table[position // block_size], position
    return block_table[position // block_size], position % block_size


def _pair_int_problem(got, expected):
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"returned {type(got).__name__}, expected a pair (block, offset)"
    got = tuple(int(x) for x in got)
    return None if got == tuple(expected) else f"returned (block, offset) = {got}, expected {tuple(expected)}"


def check_block_lookup(fn, cases: str = "all") -> Verdict:
    """Check fn(block_table, block_size, position) -> (block, offset): where a paged KV cache keeps a position.

    block_table: the pool blocks of one sequence, in order (they need not be adjacent or sorted)."""
    table = [7, 2, 9, 4]
    all_cases = [
        Case("position 5, blocks of 4", (table, 4, 5)),
        Case("position 0", (table, 4, 0)),
        Case("position 13, blocks of 4 (the fourth block)", (table, 4, 13)),
        Case("position 4, the first of a block", (table, 4, 4), hidden=True),
        Case("blocks of 1 position", ([3, 1, 0], 1, 2), hidden=True),
    ]
    mistakes = [
        ("position // block_size numbers the sequence's own blocks; look it up in the block table to "
         "find the pool block.", lambda *a: _lookup(*a, kind="no table")),
        ("the block is position // block_size (looked up in the table) and the offset position % block_size, "
         "not the other way round.", lambda *a: _lookup(*a, kind="swapped")),
        ("the offset inside the block is position % block_size.", lambda *a: _lookup(*a, kind="no offset")),
    ]
    return run_cases("check_block_lookup", fn, all_cases, _lookup, _pair_int_problem, mistakes,
                     fallback_hint="block = block_table[position // block_size]; offset = position % block_size.",
                     which=cases)
