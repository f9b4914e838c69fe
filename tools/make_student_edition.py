"""Write the student edition of the book: every notebook with its exercise solutions taken out.

    python tools/make_student_edition.py [--out _build/student] [notebooks ...]

In the book (the solution edition) the code of a coding exercise sits in a cell tagged ``solution``,
and the cell after it calls an ``llmbook.checks`` checker. In the student edition

- each function a solution cell defines keeps its signature and docstring, and its body becomes
  ``raise NotImplementedError("Exercise 3.2: ...")``; anything else in the cell (a demo print) is
  dropped. A solution cell that defines no function becomes a bare ``raise`` and is tagged
  ``raises-exception``, so nbval expects the error. The stub is shown (its ``hide-input`` tag goes);
- the ``{solution}`` dropdowns are removed from the markdown;
- the checker cell after a stub keeps its code; its stored output becomes what the checker prints for
  the stub (a ❌ naming NotImplementedError), and it is tagged ``nbval-check-output``;
- every other cell keeps its code and stored output but is tagged ``nbval-ignore-output``.

So ``pytest --nbval`` on the student edition proves that a student's notebook runs from top to
bottom with every exercise still open, and that each checker reports the open exercise clearly.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOKS = ["book/getting_started.ipynb", *sorted(p.relative_to(ROOT).as_posix()
                                                          for p in (ROOT / "chapters").glob("*.ipynb"))]
SOLUTION_BLOCK = re.compile(r"^(`{3,}|:{3,})\{solution\}.*?^\1[ \t]*$\n?", re.MULTILINE | re.DOTALL)
EXERCISE_LABEL = re.compile(r"^(`{3,}|:{3,})\{exercise\}[^\n]*\n(?:[^\n]*\n)*?:label:\s*ex-(\d+)-(\d+)", re.MULTILINE)
CHECKER_CALL = re.compile(r"^(check_\w+)\((my_\w+)\)", re.MULTILINE)


def exercise_name(cells, index: int) -> str:
    """ "Exercise 3.2" for the last exercise label in the markdown before cells[index]."""
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown":
            labels = EXERCISE_LABEL.findall(cell.source)
            if labels:
                _, chapter, number = labels[-1]
                return f"Exercise {int(chapter)}.{int(number)}"
    raise ValueError(f"solution cell {index} has no {{exercise}} with a ':label: ex-N-k' before it")


def stub_source(source: str, exercise: str) -> tuple[str, bool]:
    """(stub code, whether running it raises): functions keep signature and docstring only."""
    tree = ast.parse(source)
    lines = source.splitlines()
    stubs = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        body = node.body
        has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str)
        keep_to = body[0].end_lineno if has_doc else body[0].lineno - 1
        indent = " " * body[0].col_offset
        message = f"{exercise}: write the body of {node.name}, then run the checker in the next cell"
        stubs.append("\n".join(lines[first:keep_to] + [f"{indent}raise NotImplementedError({message!r})"]))
    if stubs:
        return f"# {exercise}: your code goes here.\n" + "\n\n\n".join(stubs), False
    message = f"{exercise}: your code goes here"
    return f"# {exercise}: your code goes here.\nraise NotImplementedError({message!r})", True


def checker_outputs(source: str, stub: str) -> list:
    """The outputs of the checker cell when given the stub function: the ❌ line it prints, and the
    False it returns (the cell's value)."""
    match = CHECKER_CALL.search(source)
    if not match:
        raise ValueError(f"the cell after a solution does not call a checker on a my_ function:\n{source}")
    checker_name, function_name = match.groups()
    checker = getattr(importlib.import_module("llmbook.checks"), checker_name)
    namespace: dict = {}
    exec(compile(stub, "<stub>", "exec"), namespace)  # defines the stub functions only
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        verdict = checker(namespace[function_name])
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed.getvalue())]
    if not source.rstrip().endswith(";"):  # a trailing semicolon hides the value in Jupyter
        outputs.append(nbformat.v4.new_output("execute_result", data={"text/plain": repr(verdict)},
                                              execution_count=None))
    return outputs


def _tag(cell, add=(), remove=()):
    tags = [t for t in cell.metadata.get("tags", []) if t not in remove]
    cell.metadata["tags"] = tags + [t for t in add if t not in tags]
    if not cell.metadata["tags"]:
        del cell.metadata["tags"]


def student_notebook(nb):
    """The student edition of nb (changed in place and returned)."""
    cells = nb.cells
    checked = set()
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            cell.source = SOLUTION_BLOCK.sub("", cell.source).rstrip() + "\n"
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
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))  # the checkers, even where the package is not installed
    for name in args.notebooks:
        path = (ROOT / name).resolve()
        nb = student_notebook(nbformat.read(path, as_version=4))
        target = args.out / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        stubs = sum("exercise" in c.metadata.get("tags", []) for c in nb.cells)
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {stubs} exercise stubs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
