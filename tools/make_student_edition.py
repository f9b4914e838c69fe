"""Write the student edition of the book: every notebook with its exercise solutions taken out.

    python tools/make_student_edition.py [--out student] [notebooks ...]

The student edition is committed under student/ (student/chapters/03_attention.ipynb, ...), so that
each of its notebooks opens on Colab from a link of its own; tests/test_notebooks.py fails when it is
out of date with the chapters (`make student` rewrites it).

In the book (the solution edition) the code of a coding exercise sits in a cell tagged ``solution``,
and the cell after it calls an ``llmbook.checks`` checker. In the student edition

- each function a solution cell defines keeps its signature and docstring, and its body becomes
  ``raise NotImplementedError("Exercise 3.2: ...")``; anything else in the cell (a demo print) is
  dropped. A solution cell that defines no function becomes a bare ``raise`` and is tagged
  ``raises-exception``, so nbval expects the error. The stub is shown (its ``hide-input`` tag goes);
- the ``{solution}`` dropdowns are removed from the markdown;
- the checker cell after a stub keeps its code; its stored output becomes what the checker prints for
  the stub (a [FAIL] naming NotImplementedError), and it is tagged ``nbval-check-output``;
- every other cell keeps its code and stored output but is tagged ``nbval-ignore-output``;
- the Colab badge opens the student notebook, and relative links (to src/, to the book's pages) are
  rewritten for the notebook's place under student/.

So ``pytest --nbval`` on the student edition proves that a student's notebook runs from top to
bottom with every exercise still open, and that each checker reports the open exercise clearly.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import posixpath
import re
import sys
from pathlib import Path
from typing import NamedTuple

import nbformat

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOKS = ["book/getting_started.ipynb", *sorted(p.relative_to(ROOT).as_posix()
                                                          for p in (ROOT / "chapters").glob("*.ipynb"))]
STUDENT = "student"  # the edition's folder in the repository: student/chapters/..., student/book/...
SOLUTION_BLOCK = re.compile(r"^(`{3,}|:{3,})\{solution\}.*?^\1[ \t]*$\n?", re.MULTILINE | re.DOTALL)
# ```{exercise} Title / :label: ex-3-2 (and other options) / body / ```
EXERCISE_BLOCK = re.compile(r"^(`{3,}|:{3,})\{exercise\}[ \t]*([^\n]*)\n((?:[ \t]*:[\w-]+:[^\n]*\n)*)(.*?)^\1[ \t]*$",
                            re.MULTILINE | re.DOTALL)
LABEL = re.compile(r":label:\s*ex-(\d+)-(\d+)")
CHECKER_CALL = re.compile(r"^(check_\w+)\((my_\w+)\)", re.MULTILINE)
# a relative link in markdown: not a URL (scheme:), not an anchor (#), not an absolute path
RELATIVE_LINK = re.compile(r"\]\((?![a-zA-Z][\w+.-]*:|#|/)([^)\s]+)\)")


class Exercise(NamedTuple):
    chapter: int
    number: int
    title: str
    body: str

    @property
    def name(self) -> str:
        return f"Exercise {self.chapter}.{self.number}"


def exercises_in(markdown: str) -> list[Exercise]:
    """The labelled {exercise} blocks of a markdown cell, in order."""
    found = []
    for block in EXERCISE_BLOCK.finditer(markdown):
        label = LABEL.search(block.group(3))
        if label:
            found.append(Exercise(int(label.group(1)), int(label.group(2)), block.group(2).strip(),
                                  block.group(4).strip()))
    return found


def exercise_before(cells, index: int) -> Exercise:
    """The last labelled exercise in the markdown before cells[index]."""
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown" and exercises_in(cell.source):
            return exercises_in(cell.source)[-1]
    raise ValueError(f"solution cell {index} has no {{exercise}} with a ':label: ex-N-k' before it")


def exercise_name(cells, index: int) -> str:
    """ "Exercise 3.2" for the last exercise label in the markdown before cells[index]."""
    return exercise_before(cells, index).name


def checker_call(source: str) -> tuple[str, str]:
    """(checker, function) of a checker cell such as ``check_causal_mask(my_causal_mask)``."""
    match = CHECKER_CALL.search(source)
    if not match:
        raise ValueError(f"the cell after a solution does not call a checker on a my_ function:\n{source}")
    return match.group(1), match.group(2)


class FunctionParts(NamedTuple):
    name: str
    head: list[str]  # decorators, signature and docstring: what a student is given
    body: list[str]  # the lines after them: what the student writes
    indent: str  # the body's indentation


def function_parts(source: str) -> list[FunctionParts]:
    """Each top-level function of source, split into what a student is given and what they write."""
    lines = source.splitlines()
    parts = []
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        body = node.body
        has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str)
        keep_to = body[0].end_lineno if has_doc else body[0].lineno - 1
        parts.append(FunctionParts(node.name, lines[first:keep_to], lines[keep_to:node.end_lineno],
                                   " " * body[0].col_offset))
    return parts


def stub_source(source: str, exercise: str) -> tuple[str, bool]:
    """(stub code, whether running it raises): functions keep signature and docstring only."""
    stubs = []
    for name, head, _, indent in function_parts(source):
        message = f"{exercise}: write the body of {name}, then run the checker in the next cell"
        stubs.append("\n".join(head + [f"{indent}raise NotImplementedError({message!r})"]))
    if stubs:
        return f"# {exercise}: your code goes here.\n" + "\n\n\n".join(stubs), False
    message = f"{exercise}: your code goes here"
    return f"# {exercise}: your code goes here.\nraise NotImplementedError({message!r})", True


def checker_outputs(source: str, stub: str) -> list:
    """The outputs of the checker cell when given the stub function: the [FAIL] line it prints, and
    nothing more: the Verdict it returns is the cell's value, which Jupyter does not display
    (llmbook.checks.verdict). A value that Jupyter would display gets its execute_result."""
    checker_name, function_name = checker_call(source)
    checker = getattr(importlib.import_module("llmbook.checks"), checker_name)
    namespace: dict = {}
    exec(compile(stub, "<stub>", "exec"), namespace)  # defines the stub functions only
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        verdict = checker(namespace[function_name])
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed.getvalue())]
    shown = not hasattr(verdict, "_ipython_display_")  # a Verdict draws nothing (its own display hook)
    if shown and not source.rstrip().endswith(";"):  # a trailing semicolon hides the value in Jupyter
        outputs.append(nbformat.v4.new_output("execute_result", data={"text/plain": repr(verdict)},
                                              execution_count=None))
    return outputs


def _tag(cell, add=(), remove=()):
    tags = [t for t in cell.metadata.get("tags", []) if t not in remove]
    cell.metadata["tags"] = tags + [t for t in add if t not in tags]
    if not cell.metadata["tags"]:
        del cell.metadata["tags"]


def student_path(path: str) -> str:
    """Where the student edition of the notebook at path (relative to the repository) lives."""
    return posixpath.join(STUDENT, path)


def rebase_links(markdown: str, old: str, new: str) -> str:
    """markdown's relative links, written for a notebook at old, rewritten for the same notebook at new."""
    def moved(link):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(old), link.group(1)))
        return f"]({posixpath.relpath(target, posixpath.dirname(new))})"
    return RELATIVE_LINK.sub(moved, markdown)


def student_badge(markdown: str, path: str) -> str:
    """markdown with its Colab link to the notebook at path pointing at the notebook's student edition."""
    colab = r"(colab\.research\.google\.com/github/[^/\s]+/[^/\s]+/blob/[^/\s]+/)"
    return re.sub(colab + re.escape(path) + r"\b", lambda m: m.group(1) + student_path(path), markdown)


def student_notebook(nb, path: str):
    """The student edition of nb, the notebook at path relative to the repository (changed in place and
    returned)."""
    cells = nb.cells
    checked = set()
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            source = rebase_links(SOLUTION_BLOCK.sub("", cell.source), path, student_path(path))
            cell.source = student_badge(source, path).rstrip() + "\n"
            continue
        if "solution" not in cell.metadata.get("tags", []):
            continue
        exercise = exercise_name(cells, i)
        cell.source, raises = stub_source(cell.source, exercise)
        cell.outputs = []
        cell.execution_count = None
        _tag(cell, add=["raises-exception", "nbval-ignore-output"] if raises else [], remove=["hide-input", "solution"])
        cell.metadata["tags"] = cell.metadata.get("tags", []) + ["exercise"]
        if not raises and i + 1 < len(cells) and cells[i + 1].cell_type == "code":
            checker = cells[i + 1]
            checker.outputs = checker_outputs(checker.source, cell.source)
            _tag(checker, add=["nbval-check-output"])
            checked.add(i + 1)
        elif not raises:
            raise ValueError(f"{exercise}: the cell after its solution should call a checker")
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and i not in checked and "exercise" not in cell.metadata.get("tags", []):
            _tag(cell, add=["nbval-ignore-output"])
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", default=DEFAULT_NOTEBOOKS)
    parser.add_argument("--out", type=Path, default=ROOT / STUDENT)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))  # the checkers, even where the package is not installed
    for name in args.notebooks:
        path = (ROOT / name).resolve()
        nb = student_notebook(nbformat.read(path, as_version=4), path.relative_to(ROOT).as_posix())
        target = args.out / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        stubs = sum("exercise" in c.metadata.get("tags", []) for c in nb.cells)
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {stubs} exercise stubs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
