"""Tokens as labels for plots: whitespace made visible, one label per position.

Used in chapters 2, Core concepts; 3, Attention, step by step; 4, Encoder and decoder; 5,
Pretraining; and 7, Inference engineering.
"""
from __future__ import annotations

from .fonts import has_cjk, use_cjk_font

# Whitespace tokens would be invisible as tick labels; show them as visible symbols instead.
_VISIBLE_WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥"}


def display_token(token: str) -> str:
    """A token as a readable label: spaces, newlines and tabs become ␣ ↵ ⇥; "" becomes "∅"."""
    if token == "":
        return "∅"
    return "".join(_VISIBLE_WHITESPACE.get(ch, ch) for ch in token)


def token_strings(tokenizer, ids) -> list[str]:
    """Decode each id on its own, so every position gets its own label (char or BPE tokenizers).

    ids: a list of ints or a 1-D tensor. Returns a list of len(ids) strings.
    """
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    return [tokenizer.decode([i]) for i in ids]


def token_labels(tokens, n: int, what: str, axis: str) -> list[str]:
    """The n tokens as display labels; raises ValueError unless there is one token per entry of `axis`.

    Chinese labels switch on the shipped CJK font (llmbook.viz.fonts), so they do not draw as boxes.
    """
    tokens = list(tokens)
    if len(tokens) != n:
        raise ValueError(f"{what} has {len(tokens)} tokens but the weights have {n} {axis}")
    labels = [display_token(str(t)) for t in tokens]
    if any(has_cjk(label) for label in labels):
        use_cjk_font()
    return labels
