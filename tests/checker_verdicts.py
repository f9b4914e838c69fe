"""What every checker test asks of a checker: it prints exactly one line, ✅ with its name when it
accepts, ❌ with its name and the expected fragments when it rejects, and returns True or False."""


def verdict(capsys, checker, fn):
    """Run checker(fn); return (its result, the one line it printed)."""
    result = checker(fn)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return result, lines[0]


def assert_passes(capsys, checker, fn):
    result, line = verdict(capsys, checker, fn)
    assert result is True, line
    assert line.startswith(f"✅ {checker.__name__}: all ") and line.endswith(" cases pass"), line


def assert_fails(capsys, checker, fn, *fragments):
    result, line = verdict(capsys, checker, fn)
    assert result is False, line
    assert line.startswith(f"❌ {checker.__name__}: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line
