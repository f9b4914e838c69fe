"""Generated tasks with exact answers: copy and reverse a sequence (chapter 4), dates to ISO format
(chapter 4), and addition (chapter 9).

Every task takes a `seed` and returns the same data for the same seed on every machine.

Used in chapters 4, Encoder and decoder, and 9, Emergent abilities.
"""
from __future__ import annotations

import datetime
import random

import torch

from ._validate import check_int

# Ids reserved by copy_task / reverse_task: content tokens are drawn from
# [N_TASK_SPECIALS, vocab_size), so a model can add these around the sequences.
PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
N_TASK_SPECIALS = 3


def copy_task(n: int, length: int, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences and their copies: (src, tgt), both LongTensor (n, length), tgt == src.

    Tokens are drawn uniformly from [N_TASK_SPECIALS, vocab_size); ids PAD_ID=0, BOS_ID=1,
    EOS_ID=2 never occur, so the model can use them. Raises ValueError if vocab_size <= 3.
    """
    check_int("n", n, 1)
    check_int("length", length, 1)
    check_int("vocab_size", vocab_size, N_TASK_SPECIALS + 1)
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(N_TASK_SPECIALS, vocab_size, (n, length), generator=g)
    return src, src.clone()


def reverse_task(n: int, length: int, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences and their reversals: (src, tgt), LongTensor (n, length), tgt = src flipped.

    Same ids and errors as `copy_task`.
    """
    src, _ = copy_task(n, length, vocab_size, seed)
    return src, src.flip(1)


_MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# Written out here instead of taken from `calendar`/`strftime`, whose names depend on the locale.
_DATE_FORMATS = [
    lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",                 # march 5, 1999
    lambda d: f"{_MONTHS[d.month - 1].capitalize()} {d.day}, {d.year}",    # March 5, 1999
    lambda d: f"{d.day} {_MONTHS[d.month - 1][:3].capitalize()} {d.year}",  # 5 Mar 1999
    lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}",                  # 5 march 1999
    lambda d: f"{_WEEKDAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}, {d.year}",  # friday, march 5, 1999
    lambda d: f"{d.day}.{d.month}.{d.year}",                               # 5.3.1999 (day first)
    lambda d: f"{d.year}年{d.month}月{d.day}日",                            # 1999年3月5日
]


def date_task(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` pairs (human-readable date, ISO date), e.g. ("5 Mar 1999", "1999-03-05").

    Dates are uniform over 1900-01-01 .. 2099-12-31, written in one of 7 styles.
    Raises ValueError if n < 1.
    """
    check_int("n", n, 1)
    rng = random.Random(seed)
    first = datetime.date(1900, 1, 1).toordinal()
    last = datetime.date(2099, 12, 31).toordinal()
    pairs = []
    for _ in range(n):
        d = datetime.date.fromordinal(rng.randint(first, last))
        pairs.append((rng.choice(_DATE_FORMATS)(d), d.isoformat()))
    return pairs


def addition_task(n: int, n_digits: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` pairs ("a+b=", "a+b as digits"), a and b uniform in [0, 10**n_digits), e.g. ("123+45=", "168").

    Raises ValueError if n < 1 or n_digits < 1.
    """
    check_int("n", n, 1)
    check_int("n_digits", n_digits, 1)
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a, b = rng.randrange(10**n_digits), rng.randrange(10**n_digits)
        pairs.append((f"{a}+{b}=", str(a + b)))
    return pairs


def addition_text(n: int, n_digits: int, seed: int = 0) -> str:
    """The same problems as `addition_task`, as GPT-style training lines "123+45=168\\n"."""
    return "".join(f"{q}{a}\n" for q, a in addition_task(n, n_digits, seed))
