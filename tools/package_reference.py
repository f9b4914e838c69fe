"""Sphinx extension: document the llmbook of this checkout, and show its docstrings as written.

Two things the package reference pages (book/api/, written by tools/api_pages.py) need:

- autodoc and sphinx.ext.viewcode import the package. They must read the src/ next to this book,
  not whatever llmbook the environment happens to have installed (an editable install of another
  checkout, a wheel), so src/ goes first on sys.path.
- The docstrings are plain prose written for ``help()`` and Jupyter's ``?``, not reStructuredText:
  ``**kwargs`` or ``|x|`` in a sentence would be misread as markup, and under ``-W`` break the
  build. So every docstring is shown verbatim, as a text block, the way a reader sees it in
  Jupyter.
- A module docstring ends with the chapter that teaches the module ("Taught in chapter 3,
  Attention."; tests/test_code_behind.py holds the rule). That line is shown as a paragraph below
  the block, with each chapter a link to it: the way back from the code to the chapter.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# The line that names a module's chapter (the rule: tests/test_code_behind.py), and each "N, Title" in it.
WHERE = re.compile(r"^(?:Taught|Used) in (every chapter\b.*|chapters? \d.*|the front matter\b.*)$", re.M)
CHAPTER = re.compile(r"(\d+), ([^,;.()<>`]+)")


def _chapter_docs() -> dict[int, str]:
    """Chapter number -> its document name ("chapters/03_attention")."""
    return {int(path.name[:2]): f"chapters/{path.stem}" for path in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")}


def _escape(text: str) -> str:
    return re.sub(r"([\\*`_|\[\]])", r"\\\1", text)


def split_chapter_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the docstring's other lines, its chapter lines): a paragraph that starts "Taught in" or
    "Used in" may wrap over several lines (the linter's 120 columns); it is joined into one."""
    body, where, in_where = [], [], False
    for line in lines:
        if not in_where and re.match(r"(?:Taught|Used) in ", line):
            where.append(line.strip())
            in_where = True
        elif in_where and line.strip():
            where[-1] += " " + line.strip()
        else:
            in_where = False
            body.append(line)
    return body, [line for line in where if WHERE.match(line)]


def chapter_lines(docstring: str) -> list[str]:
    """The chapters a module docstring names, as WHERE's groups ("chapter 3, Attention.")."""
    return [WHERE.match(line).group(1) for line in split_chapter_lines(docstring.splitlines())[1]]


def _linked(line: str, docs: dict[int, str]) -> str:
    """The line as reStructuredText, with every "N, Title" it names a link to chapter N."""
    out, end = [], 0
    for match in CHAPTER.finditer(line):
        doc = docs.get(int(match.group(1)))
        if doc:
            out += [_escape(line[end:match.start()]), f":doc:`{match.group(0)} </{doc}>`"]
            end = match.end()
    return "".join(out) + _escape(line[end:])


def _verbatim(app, what, name, obj, options, lines: list[str]) -> None:
    body, where = split_chapter_lines(lines) if what == "module" else (list(lines), [])
    while body and not body[-1].strip():
        body.pop()
    text = [f"   {line}" if line.strip() else "" for line in body]
    block = [".. code-block:: text", "   :class: llmbook-docstring", "", *text, ""] if text else []
    docs = _chapter_docs()
    lines[:] = block + [part for line in where for part in (_linked(line, docs), "")]


def setup(app):
    sys.path.insert(0, str(SRC))
    app.connect("autodoc-process-docstring", _verbatim)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
