"""The machinery every exercise checker shares: cases, calls that never raise, verdict lines, and the
comparisons of an answer with the reference (a tensor, one number, a pair of numbers).

A checker module builds a list of Case objects, a reference function, a comparison and the known
mistakes (hint, wrong function) and hands them to run_cases, which prints the one-line verdict.
A comparison takes (got, expected) and returns None when they agree, else a sentence saying what differs.
A checker whose cases are not plain calls (statistics, reproducibility) gives run_probes a probe instead.

Every checker takes cases="all" (the book), "visible" or "hidden". Its hidden cases are the edge cases:
an nbgrader assignment (tools/make_nbgrader_course.py) shows the student a test cell with the visible
ones and adds the hidden ones when it grades. Every checker has at least one case of each kind, and a
case keeps its number in every selection, so that "case 6" means the same case everywhere.

Used in every chapter, through the checkers of its exercises.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from .verdict import Verdict

ATOL, RTOL = 1e-5, 1e-4  # float32 arithmetic in a different order than the reference's


# ------------------------------------------------------------------------------ shared machinery
@dataclass
class Case:
    """One call of the learner's function: fn(*args, **kwargs), described by label in messages."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    hidden: bool = False  # left out of a graded assignment's visible test (see the module docstring)


CASE_SETS = ("all", "visible", "hidden")


def select_cases(cases: list[Case], which: str) -> list[tuple[int, Case]]:
    """The (number, case) pairs that cases=which runs; numbers count from 1 over all the cases."""
    if which not in CASE_SETS:
        raise ValueError(f"cases={which!r}: expected one of {', '.join(map(repr, CASE_SETS))}")
    numbered = list(enumerate(cases, start=1))
    if which == "all":
        return numbered
    return [(number, case) for number, case in numbered if case.hidden == (which == "hidden")]


def _clone(x):
    """Copy tensors (inside tuples and lists too), so an in-place edit cannot change the reference."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, (tuple, list)):
        return type(x)(_clone(v) for v in x)
    return x


def call_learner(fn, case: Case, copy: bool = True):
    """Run fn on the case (on a copy unless copy=False); returns (True, result) or (False, the error)."""
    args, kwargs = (_clone(case.args), _clone(case.kwargs)) if copy else (case.args, case.kwargs)
    try:
        return True, fn(*args, **kwargs)
    except Exception as err:  # the learner's bug, whatever it is, becomes a message
        first_line = (str(err).strip().splitlines() or [""])[0]
        if len(first_line) > 200:
            first_line = first_line[:197] + "..."
        return False, f"your function raised {type(err).__name__}: {first_line}"


# Plain ASCII words: an emoji verdict shows as an empty box where the browser has no emoji font.
PASS, FAIL = "[PASS]", "[FAIL]"


def passed(name: str, n_cases: int, which: str = "all") -> Verdict:
    kind = "" if which == "all" else f" {which}"
    print(f"{PASS} {name}: all {n_cases}{kind} cases pass")
    return Verdict(True)


def failed(name: str, where: str, problem: str, hint: str | None = None) -> Verdict:
    message = f"{FAIL} {name}: {where}: {problem}."
    if hint:
        message += f" Hint: {hint}"
    print(message)
    return Verdict(False)


def _at(flat: int, shape) -> str:
    """" at index (i, j, ...)" for a flat position in a tensor of this shape; "" for a single number."""
    if len(shape) == 0:
        return ""
    return f" at index {tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(shape)))}"


def as_float64(x, what: str):
    """x as a float64 tensor, or (None, problem) when it is not a tensor or a plain number."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double(), None
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.tensor(float(x), dtype=torch.float64), None
    return None, f"{what} is a {type(x).__name__}, expected a torch.Tensor"


def tensor_problem(got, expected, what: str = "output", atol: float = ATOL, rtol: float = RTOL) -> str | None:
    """None if got matches expected (same shape, close values, nan where nan), else what differs."""
    got, problem = as_float64(got, what)
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


def scalar_problem(got, expected, what: str = "the result") -> str | None:
    """tensor_problem for a one-number answer: accepts a float or a tensor of one element."""
    value, problem = as_float64(got, what)
    if problem:
        return problem
    if value.numel() != 1:
        return f"{what} has shape {tuple(value.shape)}; expected a single number"
    return tensor_problem(value.reshape(()), torch.as_tensor(expected).reshape(()), what)


def pair_problem(got, expected, names: tuple[str, str], rel_tol: float, abs_tol: float = 0.0) -> str | None:
    """None if got is a pair of numbers, each close to its counterpart in expected (two floats); else
    what differs. names: how the two numbers are called in messages, e.g. ("a", "alpha")."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"return a pair ({names[0]}, {names[1]}); got a {type(got).__name__}"
    for value, ref, name in zip(got, expected, names):
        v, problem = as_float64(value, name)
        if problem:
            return problem
        if v.numel() != 1:
            return f"{name} has shape {tuple(v.shape)}; expected one number"
        if not math.isclose(v.item(), ref, rel_tol=rel_tol, abs_tol=abs_tol):
            return f"{name} is {v.item():.6g} but the reference gives {ref:.6g}"
    return None


def variant_mistakes(variant: Callable, hints_and_kinds) -> list[tuple[str, Callable]]:
    """(hint, wrong_fn) pairs for run_cases from one function with a `kind` switch: wrong_fn is
    variant(..., kind=kind), the reference's arguments followed by the mistake it reproduces."""
    return [(hint, partial(variant, kind=kind)) for hint, kind in hints_and_kinds]


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


def run_probes(name: str, cases: list[Case], probe: Callable, which: str = "all") -> Verdict:
    """Probe the selected cases in order; print [PASS], or [FAIL] at the first failing case; return the verdict.

    probe(case) -> None when the learner's function is right on the case, else (problem, hint or None).
    """
    selected = select_cases(cases, which)
    if not selected:  # a test that runs nothing would pass whatever the learner wrote
        raise ValueError(f"{name} has no {which} cases")
    for number, case in selected:
        found = probe(case)
        if found:
            return failed(name, f"case {number} ({case.label})", *found)
    return passed(name, len(selected), which)


def run_cases(name: str, fn, cases: list[Case], reference: Callable, compare: Callable,
              mistakes=(), fallback_hint: str | None = None, which: str = "all") -> Verdict:
    """Call fn on each selected case and compare with the reference; print and return the verdict.

    compare(got, expected) -> None when they agree, else a sentence saying what differs.
    mistakes: (hint, wrong_fn) pairs; wrong_fn takes the case's arguments like the reference.
    """
    def probe(case):
        expected = reference(*_clone(case.args), **_clone(case.kwargs))
        ok, got = call_learner(fn, case)
        if not ok:
            return got, None
        problem = compare(got, expected)
        if problem:
            return problem, _diagnose(got, case, mistakes, compare, expected) or fallback_hint
        return None

    return run_probes(name, cases, probe, which)


def case_generator(seed: int) -> torch.Generator:
    """Case data come from their own generator, so checking never moves the learner's global RNG."""
    return torch.Generator().manual_seed(seed)


def shape_text(x: torch.Tensor) -> str:
    return str(tuple(x.shape))
