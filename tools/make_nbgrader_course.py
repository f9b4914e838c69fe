"""Write an nbgrader course: one assignment per chapter, its coding exercises graded by the book's checkers.

    python tools/make_nbgrader_course.py [--out _build/nbgrader] [chapters ...]

writes <out>/nbgrader_config.py and, for chapters/03_attention.ipynb, the source assignment
<out>/source/03_attention/03_attention.ipynb. A teacher then runs nbgrader in <out> (or a copy of
it): `nbgrader generate_assignment 03_attention` writes the version students get (see the
instructor guide, book/instructor_guide.md).

An assignment holds what the coding exercises need, not the whole chapter, because autograding runs
every cell of every submission and a chapter's experiments take up to 90 s; the solutions use only
the names that the chapter's setup cells import. In order, every cell locked except the answers:

- a header: the chapter's title, a link to the chapter, and how the tests work;
- the chapter's setup cells (the install cell and the imports), read-only;
- for each coding exercise, its text; an autograded answer cell with the book's solution between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (the function's signature and docstring stay, as in
  the student edition); and an autograder test cell worth POINTS points. The test asserts the
  checker's verdict on its visible cases and, between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN
  TESTS``, on its hidden ones (the edge cases, see llmbook.checks): the student's copy shows the
  first, grading runs both.

The solution cells, their exercises and their checkers are found as the student edition finds them
(tools/make_student_edition.py).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))  # the student edition's helpers, also when loaded by a test
import make_student_edition as student  # noqa: E402  (after the path is set)

DEFAULT_CHAPTERS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("*.ipynb"))
POINTS = 1  # per coding exercise; a teacher can change any test cell's points before generating
CONFIG = ROOT / "_config.yml"
BOOK_TITLE = re.search(r'^title:\s*"(.*)"', CONFIG.read_text(), re.MULTILINE).group(1)
REPOSITORY = re.search(r"^\s*url:\s*(https://github.com/\S+)", CONFIG.read_text(), re.MULTILINE).group(1)

NBGRADER_CONFIG = '''\
# nbgrader's configuration for the llmbook course, written by tools/make_nbgrader_course.py.
# Run every nbgrader command in this folder; the gradebook is gradebook.db, next to this file.
c = get_config()  # noqa: F821 (nbgrader defines it)
c.CourseDirectory.course_id = "llmbook"
# Seconds a cell may run when grading: a checker needs a few, importing torch on a busy server more.
c.Execute.timeout = 120
'''

HEADER = '''\
# {title}: exercises

The coding exercises of chapter {chapter} of *{book}*. Read the chapter first: [{path}]({url}).

Write each function where it says `YOUR CODE HERE`, then run the test cell below it. The test calls
the book's checker, which prints `[PASS]`, or `[FAIL]` with the first failing case and, for a known
mistake, a hint. When your work is graded, the test also runs hidden cases (the edge cases that the
exercise asks for), so make sure that your function handles them too.

Run the cells from the top: the first ones set up the book's package.
'''


def nbgrader_cell(cell, grade_id: str, *, solution=False, points=None):
    """cell, marked for nbgrader: an answer (solution), a test (points), or else read-only."""
    cell.metadata = {"nbgrader": {
        "schema_version": 3, "grade_id": grade_id, "grade": points is not None, "solution": solution,
        "locked": not solution, "task": False, **({"points": points} if points is not None else {}),
    }}
    cell.id = grade_id  # stable ids: the same chapter gives the same assignment
    return cell


def setup_sources(nb) -> list[str]:
    """The chapter's setup: its code cells before its first section (the first '## ' heading)."""
    sources = []
    for cell in nb.cells[1:]:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## "):
            return sources
        if cell.cell_type == "code":
            sources.append(cell.source)
    raise ValueError("the chapter has no section ('## ' heading) after its setup cells")


def header_cell(nb, path: str):
    first_line = (nb.cells[0].source.splitlines() or [""])[0]
    if not first_line.startswith("# "):
        raise ValueError(f"{path}: the first cell should start with the chapter's '# ' title, not {first_line!r}")
    title = first_line.removeprefix("# ").strip()
    chapter = int(Path(path).name[:2])
    url = f"{REPOSITORY}/blob/main/{path}"
    text = HEADER.format(title=title, chapter=chapter, book=BOOK_TITLE, path=path, url=url)
    return nbgrader_cell(nbformat.v4.new_markdown_cell(text), "header")


def answer_source(solution: str, exercise: str) -> str:
    """The solution cell's functions, each body between the solution markers; other code is dropped."""
    functions = []
    for _, head, body, indent in student.function_parts(solution):
        functions.append("\n".join([*head, f"{indent}### BEGIN SOLUTION", *body, f"{indent}### END SOLUTION"]))
    if not functions:
        raise ValueError(f"{exercise}: its solution cell defines no function for a checker to test")
    return "\n\n\n".join(functions)


def test_source(checker_cell: str, exercise: str) -> str:
    """The test cell: the checker's visible cases for everyone, its hidden ones when grading."""
    checker, function = student.checker_call(checker_cell)
    message = f"{exercise}: see the [FAIL] line above"
    return "\n".join([
        f"# {exercise}: the test. It prints [PASS], or [FAIL] with the case and a hint.",
        f'assert {checker}({function}, cases="visible"), "{message}"',
        "### BEGIN HIDDEN TESTS",
        f'assert {checker}({function}, cases="hidden"), "{message}"',
        "### END HIDDEN TESTS",
    ])


def exercise_cells(nb, index: int) -> list:
    """The three cells of the coding exercise whose solution is nb.cells[index]: text, answer, test."""
    exercise = student.exercise_before(nb.cells, index)
    label = f"ex-{exercise.chapter}-{exercise.number}"
    checker = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
    if checker is None or checker.cell_type != "code":
        raise ValueError(f"{exercise.name}: the cell after its solution should call a checker")
    text = f"### {exercise.name}: {exercise.title}\n\n{exercise.body}\n"
    return [
        nbgrader_cell(nbformat.v4.new_markdown_cell(text), f"{label}-text"),
        nbgrader_cell(nbformat.v4.new_code_cell(answer_source(nb.cells[index].source, exercise.name)),
                      f"{label}-answer", solution=True),
        nbgrader_cell(nbformat.v4.new_code_cell(test_source(checker.source, exercise.name)),
                      f"{label}-test", points=POINTS),
    ]


def assignment(nb, path: str):
    """The source assignment (a new notebook) for the chapter nb at path, relative to the repository."""
    solutions = [i for i, cell in enumerate(nb.cells) if "solution" in cell.metadata.get("tags", [])]
    if not solutions:
        raise ValueError(f"{path} has no coding exercise (no cell tagged 'solution')")
    cells = [header_cell(nb, path)]
    for k, source in enumerate(setup_sources(nb), start=1):
        cells.append(nbgrader_cell(nbformat.v4.new_code_cell(source), f"setup-{k}"))
    for index in solutions:
        cells.extend(exercise_cells(nb, index))
    metadata = {key: nb.metadata[key] for key in ("kernelspec", "language_info") if key in nb.metadata}
    return nbformat.v4.new_notebook(cells=cells, metadata=metadata)


def write_course(out: Path, chapters: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    for path in chapters:
        source = (ROOT / path).resolve()
        nb = assignment(nbformat.read(source, as_version=4), source.relative_to(ROOT).as_posix())
        target = out / "source" / source.stem / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        tests = sum(cell.metadata["nbgrader"]["grade"] for cell in nb.cells)
        print(f"{target}: {tests} autograded exercises, {tests * POINTS} points")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", default=DEFAULT_CHAPTERS)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "nbgrader")
    args = parser.parse_args(argv)
    write_course(args.out, args.chapters)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
