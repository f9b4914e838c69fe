"""What every exercise checker returns: a Verdict, true when every case passed.

Used in every chapter, by its exercises.
"""
from __future__ import annotations


class Verdict:
    """What a checker returns: true when every case passed, false otherwise (``assert check_x(fn)``).

    The checker has already printed its one line, so in a notebook the verdict displays nothing
    (``_ipython_display_`` draws no output): a cell ending in a check shows [PASS] or [FAIL] and
    not a stray ``True`` under it. It compares equal to the bool it stands for.
    """

    __slots__ = ("passed",)

    def __init__(self, passed: bool):
        self.passed = bool(passed)

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other) -> bool:
        if isinstance(other, (bool, Verdict)):
            return self.passed == bool(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.passed)

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self) -> None:
        pass  # the [PASS] / [FAIL] line printed by the checker is the display
