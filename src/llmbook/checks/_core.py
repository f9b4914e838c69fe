"""The machinery every exercise checker shares: cases, calls that never raise, verdict lines.

A checker module builds a list of Case objects, a reference function, a comparison and the known
mistakes (hint, wrong function) and hands them to _run_cases, which prints the one-line verdict.

Used in every chapter, through the checkers of its exercises.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch


ATOL, RTOL = 1e-5, 1e-4  # float32 arithmetic in a different order than the reference's


# ------------------------------------------------------------------------------ shared machinery
@dataclass
class Case:
    """One call of the learner's function: fn(*args, **kwargs), described by label in messages."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


def _clone(x):
    """Copy tensors (inside tuples and lists too), so an in-place edit cannot change the reference."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, (tuple, list)):
        return type(x)(_clone(v) for v in x)
    return x


def _call(fn, case: Case, copy: bool = True):
    """Run fn on the case (on a copy unless copy=False); returns (True, result) or (False, the error)."""
    args, kwargs = (_clone(case.args), _clone(case.kwargs)) if copy else (case.args, case.kwargs)
    try:
        return True, fn(*args, **kwargs)
    except Exception as err:  # the learner's bug, whatever it is, becomes a message
        first_line = (str(err).strip().splitlines() or [""])[0]
        if len(first_line) > 200:
            first_line = first_line[:197] + "..."
        return False, f"your function raised {type(err).__name__}: {first_line}"


def _pass(name: str, n_cases: int) -> bool:
    print(f"✅ {name}: all {n_cases} cases pass")
    return True


def _fail(name: str, where: str, problem: str, hint: str | None = None) -> bool:
    message = f"❌ {name}: {where}: {problem}."
    if hint:
        message += f" Hint: {hint}"
    print(message)
    return False


def _at(flat: int, shape) -> str:
    """" at index (i, j, ...)" for a flat position in a tensor of this shape; "" for a single number."""
    if len(shape) == 0:
        return ""
    return f" at index {tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(shape)))}"


def _as_tensor(x, what: str):
    """x as a float64 tensor, or (None, problem) when it is not a tensor or a plain number."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double(), None
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.tensor(float(x), dtype=torch.float64), None
    return None, f"{what} is a {type(x).__name__}, expected a torch.Tensor"


def _tensor_problem(got, expected, what: str = "output", atol: float = ATOL, rtol: float = RTOL):
    """None if got matches expected (same shape, close values, nan where nan), else what differs."""
    got, problem = _as_tensor(got, what)
    if problem:
        return problem
    expected = expected.detach().cpu().double()
    if got.shape != expected.shape:
        return f"{what} has shape {tuple(got.shape)} but the reference has shape {tuple(expected.shape)}"
    for bad, name in ((torch.isnan, "nan"), (torch.isinf, "inf")):
        unexpected = bad(got) & ~bad(expected)
        if unexpected.any():
            flat = int(unexpected.flatten().nonzero()[0])
            return f"{what} contains {name}{_at(flat, got.shape)}, where the reference is finite"
    close = torch.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return None
    diff = (got - expected).abs().nan_to_num(nan=math.inf).masked_fill(close, 0.0)
    flat = int(diff.flatten().argmax())
    if got.dim() == 0:
        return f"{what} is {got.item():.6g} but the reference gives {expected.item():.6g}"
    return f"{what} differs from the reference by up to {diff.flatten()[flat].item():.3g}{_at(flat, got.shape)}"


def _diagnose(got, case: Case, mistakes, compare, expected) -> str | None:
    """The hint of the first known mistake whose output the learner's output reproduces."""
    for hint, wrong_fn in mistakes:
        try:
            wrong = wrong_fn(*_clone(case.args), **_clone(case.kwargs))
        except Exception:  # this mistake cannot even run on this case: not the learner's one
            continue
        # a mistake counts only where it changes the answer (e.g. not when d_k = 1)
        if compare(got, wrong) is None and compare(expected, wrong) is not None:
            return hint
    return None


def _run_cases(name: str, fn, cases: list[Case], reference: Callable, compare: Callable,
               mistakes=(), fallback_hint: str | None = None) -> bool:
    """Run every case; print ✅, or ❌ at the first failing case with a hint; return the verdict.

    compare(got, expected) -> None when they agree, else a sentence saying what differs.
    mistakes: (hint, wrong_fn) pairs; wrong_fn takes the case's arguments like the reference.
    """
    for number, case in enumerate(cases, start=1):
        expected = reference(*_clone(case.args), **_clone(case.kwargs))
        where = f"case {number} ({case.label})"
        ok, got = _call(fn, case)
        if not ok:
            return _fail(name, where, got)
        problem = compare(got, expected)
        if problem:
            hint = _diagnose(got, case, mistakes, compare, expected) or fallback_hint
            return _fail(name, where, problem, hint)
    return _pass(name, len(cases))


def _generator(seed: int) -> torch.Generator:
    """Case data come from their own generator, so checking never moves the learner's global RNG."""
    return torch.Generator().manual_seed(seed)


def _shape(x: torch.Tensor) -> str:
    return str(tuple(x.shape))
