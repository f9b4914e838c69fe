"""Character n-gram language models with interpolated Kneser–Ney smoothing: the baseline a neural
model on real text must beat.

``KneserNey(order).fit(text)`` counts every n-gram of the text up to ``order`` characters;
``bits_per_char(text)`` scores held-out text and ``sample(...)`` writes new text. The probability of
character w after the history h (the last order - 1 characters) mixes the orders from the longest to
the shortest (Chen and Goodman, 1999, "interpolated Kneser–Ney"):

    P_n(w | h) = max(c_n(h w) - D_n, 0) / c_n(h) + D_n * N_n(h) / c_n(h) * P_{n-1}(w | h')

where h' drops h's first character, c_n(h) = sum over w of c_n(h w), N_n(h) is the number of distinct
characters seen after h, and D_n = n1 / (n1 + 2 n2) from the numbers n1, n2 of n-grams whose count
(occurrences or continuations, whichever the order uses) is one and two. This is the one-discount form;
Chen and Goodman's *modified* Kneser–Ney uses three discounts per order and does a little better.
The longest order counts occurrences; every shorter order counts *continuations* (in how
many distinct contexts the n-gram follows a character), which is what makes Kneser–Ney better than
plain back-off. Below order 1, P_0 is uniform over the characters of the training text plus one
unknown; a history never seen passes the lower order's probability through unchanged.

Taught in chapter 1, Background: from n-grams to large language models; used in the front matter,
on the page Pretrained models.
"""
from __future__ import annotations

import math
import random
from collections import Counter


class _Counts:
    """The counts of one order: n-gram -> count, per history its total and number of followers, D."""

    def __init__(self, grams: Counter):
        self.grams = grams
        self.history_total: Counter = Counter()
        self.history_types: Counter = Counter()
        for gram, c in grams.items():
            self.history_total[gram[:-1]] += c
            self.history_types[gram[:-1]] += 1
        freq = Counter(grams.values())
        n1, n2 = freq.get(1, 0), freq.get(2, 0)
        self.discount = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


class KneserNey:
    """An interpolated Kneser–Ney character model of a fixed maximum order (1 = unigram)."""

    def __init__(self, order: int):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        self.order = order
        self.raw: list[_Counts] = []  # raw[n - 1]: occurrences of the n-grams
        self.continuation: list[_Counts] = []  # continuation[n - 1]: distinct characters before each n-gram
        self.alphabet: list[str] = []

    def fit(self, text: str) -> KneserNey:
        """Count the text's n-grams of every order up to self.order; returns self."""
        if len(text) < self.order:
            raise ValueError(f"the text has {len(text)} characters, fewer than the order {self.order}")
        self.alphabet = sorted(set(text))
        raw = [Counter(text[i: i + n] for i in range(len(text) - n + 1)) for n in range(1, self.order + 1)]
        self.raw = [_Counts(grams) for grams in raw]
        # an n-gram's continuation count is the number of distinct (n+1)-grams that end with it
        self.continuation = [_Counts(Counter(gram[1:] for gram in longer)) for longer in raw[1:]]
        return self

    def _check_fitted(self) -> None:
        if not self.raw:
            raise RuntimeError("call fit(text) before scoring or sampling")

    def prob(self, history: str, char: str, order: int | None = None) -> float:
        """P(char | the last order - 1 characters of history) of the model of that order (default: all).

        The model of order k uses occurrence counts for k-grams and continuation counts below.
        """
        self._check_fitted()
        order = self.order if order is None else order
        if not 1 <= order <= self.order:
            raise ValueError(f"order must lie in [1, {self.order}], got {order}")
        p = 1.0 / (len(self.alphabet) + 1)  # uniform over the alphabet and one unknown character
        for n in range(1, order + 1):
            if len(history) < n - 1:
                break  # the start of the text: no history of this length yet
            counts = self.raw[n - 1] if n == order else self.continuation[n - 1]
            h = history[len(history) - (n - 1):] if n > 1 else ""
            total = counts.history_total.get(h)
            if not total:
                continue  # a history never seen: the lower order's probability stands
            d = counts.discount
            c = counts.grams.get(h + char, 0)
            p = (max(c - d, 0.0) + d * counts.history_types[h] * p) / total
        return p

    def bits_per_char(self, text: str, order: int | None = None) -> float:
        """Average -log2 P(character | the characters before it) over the text."""
        self._check_fitted()
        if not text:
            raise ValueError("cannot score an empty text")
        bits = 0.0
        for i, ch in enumerate(text):
            bits -= math.log2(self.prob(text[max(0, i - self.order + 1): i], ch, order))
        return bits / len(text)

    def sample(self, n_chars: int, prompt: str = "", seed: int = 0, order: int | None = None) -> str:
        """prompt followed by n_chars characters drawn one at a time from the model."""
        self._check_fitted()
        rng = random.Random(seed)
        out = prompt
        for _ in range(n_chars):
            history = out[max(0, len(out) - self.order + 1):]
            weights = [self.prob(history, ch, order) for ch in self.alphabet]
            out += rng.choices(self.alphabet, weights)[0]
        return out


def unseen_share(train: str, test: str, n: int) -> float:
    """The share of the test text's n-grams (character strings of length n) that never occur in train."""
    seen = {train[i: i + n] for i in range(len(train) - n + 1)}
    grams = [test[i: i + n] for i in range(len(test) - n + 1)]
    return sum(g not in seen for g in grams) / len(grams)
