"""What every checker test asks of a checker: it prints exactly one line, [PASS] with its name when it
accepts, [FAIL] with its name and the expected fragments when it rejects, and returns a Verdict that is
true or false and displays nothing in a notebook."""
from llmbook.checks.verdict import Verdict


def verdict(capsys, checker, fn, cases="all"):
    """Run checker(fn, cases); return (its result, the one line it printed)."""
    result = checker(fn, cases=cases)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return result, lines[0]


def assert_passes(capsys, checker, fn, cases="all"):
    result, line = verdict(capsys, checker, fn, cases)
    assert isinstance(result, Verdict) and result, line
    kind = "" if cases == "all" else f" {cases}"
    assert line.startswith(f"[PASS] {checker.__name__}: all ") and line.endswith(f"{kind} cases pass"), line
    assert line.isascii(), line  # every font has these characters


def assert_fails(capsys, checker, fn, *fragments, cases="all"):
    result, line = verdict(capsys, checker, fn, cases)
    assert isinstance(result, Verdict) and not result, line
    assert line.startswith(f"[FAIL] {checker.__name__}: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line
