"""Sphinx extension: document the llmbook of this checkout, and show its docstrings as written.

Two things the package reference pages (book/api/, written by tools/api_pages.py) need:

- autodoc and sphinx.ext.viewcode import the package. They must read the src/ next to this book,
  not whatever llmbook the environment happens to have installed (an editable install of another
  checkout, a wheel), so src/ goes first on sys.path.
- The docstrings are plain prose written for ``help()`` and Jupyter's ``?``, not reStructuredText:
  ``**kwargs`` or ``|x|`` in a sentence would be misread as markup, and under ``-W`` break the
  build. So every docstring is shown verbatim, as a text block, the way a reader sees it in
  Jupyter.
"""
from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def _verbatim(app, what, name, obj, options, lines: list[str]) -> None:
    if not any(line.strip() for line in lines):
        return
    text = [f"   {line}" if line.strip() else "" for line in lines]
    lines[:] = [".. code-block:: text", "", *text, ""]


def setup(app):
    sys.path.insert(0, str(SRC))
    app.connect("autodoc-process-docstring", _verbatim)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
