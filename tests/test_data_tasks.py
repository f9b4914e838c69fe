"""Tasks with exact answers (llmbook.data.tasks): copy, reverse, dates, addition."""
import datetime
import re

import pytest
import torch

from llmbook.data import N_TASK_SPECIALS, addition_task, addition_text, copy_task, date_task, reverse_task

# ---------------------------------------------------------------- seq2seq tasks


def test_copy_task_copies_and_avoids_reserved_ids():
    src, tgt = copy_task(64, 12, 10, seed=0)
    assert src.shape == tgt.shape == (64, 12) and src.dtype == torch.long
    assert torch.equal(src, tgt)
    assert src.min() >= N_TASK_SPECIALS and src.max() <= 9
    assert set(src.unique().tolist()) == set(range(3, 10))


def test_reverse_task_reverses():
    src, tgt = reverse_task(16, 7, 50, seed=1)
    for row_src, row_tgt in zip(src.tolist(), tgt.tolist()):
        assert row_tgt == row_src[::-1]
    assert not torch.equal(src, tgt)


def test_seq2seq_tasks_reject_a_vocab_without_room_for_content():
    with pytest.raises(ValueError, match="vocab_size.*4.*3"):
        copy_task(4, 5, vocab_size=3)


# ---------------------------------------------------------------- string tasks

_MONTHS = ["january", "february", "march", "april", "may", "june",
           "july", "august", "september", "october", "november", "december"]
_MONTH = {name: k + 1 for k, name in enumerate(_MONTHS)}
_MONTH.update({name[:3]: k for name, k in list(_MONTH.items())})


def _parse_date(text):
    """An independent parser for the styles date_task writes; returns (date, weekday name or None)."""
    t = text.lower()
    if m := re.fullmatch(r"(?:(\w+), )?([a-z]+) (\d{1,2}), (\d{4})", t):
        return datetime.date(int(m[4]), _MONTH[m[2]], int(m[3])), m[1]
    if m := re.fullmatch(r"(\d{1,2}) ([a-z]+) (\d{4})", t):
        return datetime.date(int(m[3]), _MONTH[m[2]], int(m[1])), None
    if m := re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", t):
        return datetime.date(int(m[3]), int(m[2]), int(m[1])), None
    if m := re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})日", t):
        return datetime.date(int(m[1]), int(m[2]), int(m[3])), None
    raise AssertionError(f"unexpected date style: {text!r}")


def test_dates_map_to_the_right_iso_date():
    pairs = date_task(1000, seed=0)
    styles = set()
    for source, target in pairs:
        date, weekday = _parse_date(source)
        assert date.isoformat() == target
        if weekday is not None:
            assert weekday == date.strftime("%A").lower()
        styles.add(re.sub(r"\d+", "0", source.lower()).split()[0][:3])
    assert len(styles) >= 5  # the styles really vary
    years = {int(t[:4]) for _, t in pairs}
    assert min(years) < 1920 and max(years) > 2080


def test_addition_targets_are_correct():
    pairs = addition_task(500, 3, seed=0)
    for question, answer in pairs:
        m = re.fullmatch(r"(\d+)\+(\d+)=", question)
        a, b = int(m[1]), int(m[2])
        assert a < 1000 and b < 1000
        assert int(answer) == a + b and answer == str(a + b)
    assert any(int(a) >= 1000 for _, a in pairs)  # carries into a 4th digit happen
    lines = addition_text(500, 3, seed=0).splitlines()
    assert lines == [q + a for q, a in pairs]
