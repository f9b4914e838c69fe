"""The few-shot prompt format of the book's in-context-learning model (chapter 6): examples "x>y"
separated by spaces, then the query and its arrow, where the model writes the answer.

Used in chapter 6, Applications.
"""
from __future__ import annotations

ARROW, SEP = ">", " "


def few_shot_prompt(examples, query: str) -> str:
    """The prompt for `query` after `examples` [(x, y), ...]: "x1>y1 x2>y2 query>".

    The examples come in order, each written "x>y", separated by single spaces; the prompt ends with
    the query and its arrow, where the model writes the answer.
    """
    return "".join(f"{x}{ARROW}{y}{SEP}" for x, y in examples) + f"{query}{ARROW}"
