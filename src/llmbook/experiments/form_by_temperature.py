"""Does tang-gpt keep a regular form when it writes after the titles of regular poems?

    python -m llmbook.experiments.form_by_temperature     # about a minute of CPU time on one core

Chapter 6 measures with teacher forcing, on real test poems in a regular form, how likely sampling
at temperature T is to keep each line's length. This experiment lets the model write one poem after
the title of each of the same poems, at each temperature of TEMPERATURES, so that the two
measurements share their poems: the share of written poems in a regular form (4 or 8 lines of 5 or 7
characters), and two looser shares that tell the ways of failing apart: poems whose verse lines all
have one length of 5 or 7 characters (any number of lines), and poems that stop (write <eos>) within
``max_new_tokens``.

Used in chapter 6, Applications.
"""
from __future__ import annotations

import math

from .. import corpora, pretrained
from . import run_and_save
from .real_generation import sample_poems_and_stops

TEMPERATURES = (0.5, 0.7, 1.0, 1.3, 1.5, 2.0)


def regular_test_poems(n_poems: int) -> list[dict]:
    """The first n_poems test poems in a regular form whose titles are distinct and 2 to 6 characters long
    (the titles chapter 6's Figure 6.6 writes after are the first 200 distinct ones of that length)."""
    chosen, titles = [], set()
    for poem in corpora.tang_poems("test"):
        if corpora.poem_form(poem) and 2 <= len(poem["title"]) <= 6 and poem["title"] not in titles:
            chosen.append(poem)
            titles.add(poem["title"])
    if len(chosen) < n_poems:
        raise ValueError(f"n_poems={n_poems} but the test split has only {len(chosen)} such poems")
    return chosen[:n_poems]


def line_lengths(poem: str) -> list[int]:
    """The number of counted characters in each verse line, as poem_form counts them."""
    return [sum(corpora.poem_char_kind(c) != "ignored" for c in part) for part in corpora.verse_lines(poem)]


def even_lines(poem: str) -> bool:
    """True when every verse line has one length, 5 or 7 (whatever the number of lines)."""
    lengths = set(line_lengths(poem))
    return len(lengths) == 1 and lengths <= {5, 7}


def run(n_poems: int = 200, seed: int = 0, max_new_tokens: int = 100) -> dict:
    model, tok = pretrained.load("tang-gpt")
    titles = [p["title"] for p in regular_test_poems(n_poems)]
    results = {}
    for temperature in TEMPERATURES:
        written_and_stopped = sample_poems_and_stops(model, tok, titles, {"temperature": temperature}, seed,
                                                     max_new_tokens)
        written = [p for p, _ in written_and_stopped]
        regular = sum(corpora.poem_form(p) is not None for p in written) / n_poems
        results[str(temperature)] = {
            "regular_share": regular,
            "standard_error": math.sqrt(regular * (1 - regular) / n_poems),
            "even_lines_share": sum(map(even_lines, written)) / n_poems,
            "stopped_share": sum(stopped for _, stopped in written_and_stopped) / n_poems,
            "forms": {f: sum(corpora.poem_form(p) == f for p in written) for f in corpora.FORMS},
            "examples": [[t, p] for t, p in zip(titles[:3], written[:3])],
        }
    return {"n_poems": n_poems, "titles": titles, "temperatures": results,
            "settings": {"n_poems": n_poems, "seed": seed, "max_new_tokens": max_new_tokens}}


def main():
    run_and_save("form_by_temperature", run)


if __name__ == "__main__":
    main()
