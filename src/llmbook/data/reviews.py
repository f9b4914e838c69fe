"""Generated sentiment reviews with their labels, and an oracle that reads a review back (chapters 2
and 6).

Used in chapters 2, Core concepts, and 6, Applications.
"""
from __future__ import annotations

import random

from ._validate import check_int

_POSITIVE = ["good", "great", "excellent", "wonderful", "fun", "lovely", "amazing"]
_NEGATIVE = ["bad", "terrible", "boring", "awful", "poor", "dull", "disappointing"]
_REVIEW_NOUNS = ["movie", "book", "food", "service", "hotel", "game", "plot", "music", "acting"]
_INTENSIFIERS = ["", "", "very ", "really ", "quite "]
_LIKE_VERBS = {1: ["loved", "liked", "enjoyed"], 0: ["hated", "disliked"]}


def _review(rng: random.Random, label: int) -> str:
    """A short review whose sentiment is `label` (1 positive, 0 negative)."""
    same = _POSITIVE if label else _NEGATIVE
    other = _NEGATIVE if label else _POSITIVE
    noun, noun2 = rng.sample(_REVIEW_NOUNS, 2)
    template = rng.randrange(5)
    if template == 0:
        return f"the {noun} was {rng.choice(_INTENSIFIERS)}{rng.choice(same)}."
    if template == 1:  # negation flips the word's polarity: "not bad" is positive
        return f"the {noun} was not {rng.choice(other)}."
    if template == 2:
        return f"i {rng.choice(_LIKE_VERBS[label])} this {noun}."
    if template == 3:  # "did not like" is negative, "did not hate" is (mildly) positive
        verb = "hate" if label else rng.choice(["like", "enjoy", "love"])
        return f"i did not {verb} this {noun}."
    # The clause after "but" decides, so counting words is not enough.
    return f"the {noun} was {rng.choice(other)} but the {noun2} was {rng.choice(same)}."


def sentiment_task(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """`n` generated reviews with labels (text, 1 = positive / 0 = negative), balanced in expectation.

    Includes negation ("the plot was not bad.") and contrast ("... but ...") so that a
    bag-of-words model cannot be perfect. Raises ValueError if n < 1.
    """
    check_int("n", n, 1)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randrange(2)
        out.append((_review(rng, label), label))
    return out


def review_aspects(text: str) -> list[tuple[str, int]] | None:
    """What a review of sentiment_task says about each thing it names: [(noun, 1 or 0), ...] in order.

    "the food was awful but the service was great." -> [("food", 0), ("service", 1)]; the other
    templates name one noun. Returns None for text sentiment_task never produces (an unknown word, a
    template that does not exist, a missing full stop, or a contrast whose halves have the same
    polarity or the same noun). Raises TypeError if text is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.endswith("."):
        return None
    polarity = {**dict.fromkeys(_POSITIVE, 1), **dict.fromkeys(_NEGATIVE, 0)}
    nouns, intensifiers = set(_REVIEW_NOUNS), {i.strip() for i in _INTENSIFIERS if i}
    match text[:-1].split(" "):
        case ["the", noun, "was", word] if noun in nouns and word in polarity:
            return [(noun, polarity[word])]
        case ["the", noun, "was", "not", word] if noun in nouns and word in polarity:
            return [(noun, 1 - polarity[word])]
        case ["the", noun, "was", very, word] if noun in nouns and very in intensifiers and word in polarity:
            return [(noun, polarity[word])]
        case ["i", verb, "this", noun] if noun in nouns and verb in _LIKE_VERBS[1] + _LIKE_VERBS[0]:
            return [(noun, int(verb in _LIKE_VERBS[1]))]
        case ["i", "did", "not", verb, "this", noun] if noun in nouns and verb in ("hate", "like", "enjoy", "love"):
            return [(noun, int(verb == "hate"))]
        case ["the", noun, "was", first, "but", "the", other, "was", second] if (
                noun in nouns and other in nouns and noun != other and first in polarity and second in polarity
                and polarity[first] != polarity[second]):
            return [(noun, polarity[first]), (other, polarity[second])]
    return None


def review_label(text: str) -> int | None:
    """The label sentiment_task gives `text` (1 positive, 0 negative), or None if it never produces it.

    An oracle for text that did not come from sentiment_task, such as a language model's samples: the
    label of the last thing the review names (after "but", the second clause decides); None as in
    review_aspects. Raises TypeError if text is not a str.
    """
    aspects = review_aspects(text)
    return None if aspects is None else aspects[-1][1]
