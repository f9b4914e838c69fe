"""The nbgrader course (tools/make_nbgrader_course.py) works the way a teacher uses it, offline.

In a temporary course: `nbgrader generate_assignment` for every chapter (no warning, no error); the
release hides the solutions and the hidden tests; two submissions per chapter, the book's solutions
and one with a typical mistake; `nbgrader autograde`; then the gradebook's scores: full marks for the
solutions, and exactly the mistaken exercise's points lost, with the checker's hint in its output.

Every chapter takes part: an assignment holds only the setup and the exercises, so autograding one
submission costs a kernel start and the imports (a few seconds of CPU), not the chapter's 90 s of
experiments. Each nbgrader command runs once for all chapters (assignment id '*'): starting nbgrader
costs about as much CPU as grading one submission.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from repo_tools import load_tool

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
SOLVED, MISTAKEN = "solved", "mistaken"  # the two students

# chapter: (the answer cell's grade id, its text, the text with the mistake, what the checker says).
# Chapter 2's mistake (a softmax without the shift) passes the visible cases: only the hidden ones,
# added when grading, catch it.
MISTAKES = {
    "01_background": ("ex-1-1-answer", "double().mean()", "double().sum()", "average the log-probabilities"),
    "02_core_concepts": ("ex-2-1-answer", "x - x.max(dim=dim, keepdim=True).values", "x",
                         "subtract the maximum along dim first"),
    "03_attention": ("ex-3-2-answer", ".tril()", ".triu()", "the future"),
    "04_encoder_decoder": ("ex-4-1-answer", "((x - mean) ** 2).mean(dim=-1, keepdim=True)",
                           "x.var(dim=-1, keepdim=True)", "use the biased variance"),
    "05_pretraining": ("ex-5-1-answer", "(step + 1) / (warmup_steps + 1)", "step / warmup_steps",
                       "the first step gets learning rate 0"),
    "06_applications": ("ex-6-2-answer", 'f"{query}>"', 'f"{query}> "', "end the prompt right after"),
    "07_inference": ("ex-7-1-answer", "return 2 * n_layers", "return n_layers", "multiply by 2"),
    "08_scaling": ("ex-8-3-answer", "6 * tokens_per_param", "2 * tokens_per_param", "you used 2 N D"),
    "09_emergence": ("ex-9-1-answer", " | (targets == -100)", "", "belong to the question"),
    "10_adaptation": ("ex-10-1-answer", "(alpha / A.shape[0])", "alpha", "scaled by alpha / r, not by alpha"),
}


course_tool = load_tool("make_nbgrader_course")


# A grading kernel that is shutting down can print this ipykernel race to stderr (its control channel
# flushes stderr after the socket closed); the notebook is graded and written by then. Seen once in
# five full runs. Only this exact traceback is set aside: any other ERROR line still fails the test.
KERNEL_TEARDOWN_RACE = re.compile(
    r"ERROR:tornado\.general:Uncaught exception in ZMQStream callback\n"
    r"Traceback \(most recent call last\):\n(?: .*\n)+?"
    r"zmq\.error\.ZMQError: Socket operation on non-socket\n")


def nbgrader(course: Path, *args: str) -> str:
    """Run `nbgrader ARGS` in the course folder as a teacher would; returns its log, fails on an error."""
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(course / ".jupyter"), JUPYTER_DATA_DIR=str(course / ".data"))
    # nbgrader runs `alembic` and the kernel runs `python` by name: this environment's must come first
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "ERROR" not in KERNEL_TEARDOWN_RACE.sub("", log), log
    return log


def cells_by_id(nb) -> dict:
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in nb.cells if "nbgrader" in cell.metadata}


def solved(release, source) -> nbformat.NotebookNode:
    """The release notebook with every answer written as in the book (the source without the markers)."""
    answers = cells_by_id(source)
    for grade_id, cell in cells_by_id(release).items():
        if cell.metadata["nbgrader"]["solution"]:
            cell.source = "\n".join(line for line in answers[grade_id].source.splitlines()
                                    if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return release


def submit(course: Path, student: str, chapter: str, nb) -> None:
    folder = course / "submitted" / student / chapter
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{chapter}.ipynb")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with every chapter generated, submitted twice and autograded; (its folder, generate's log)."""
    root = tmp_path_factory.mktemp("course")
    course_tool.write_course(root, [p.relative_to(ROOT).as_posix() for p in CHAPTERS])
    log = nbgrader(root, "generate_assignment", "*")
    for path in CHAPTERS:
        chapter = path.stem
        release = nbformat.read(root / "release" / chapter / path.name, as_version=4)
        source = nbformat.read(root / "source" / chapter / path.name, as_version=4)
        submit(root, SOLVED, chapter, solved(release, source))
        grade_id, text, wrong, _ = MISTAKES[chapter]
        mistaken = solved(nbformat.read(root / "release" / chapter / path.name, as_version=4), source)
        answer = cells_by_id(mistaken)[grade_id]
        assert answer.source.count(text) == 1, f"{chapter}: the mistake's text is not in {grade_id}"
        answer.source = answer.source.replace(text, wrong)
        submit(root, MISTAKEN, chapter, mistaken)
    nbgrader(root, "autograde", "*")
    return root, log


def _autograded(root: Path, student: str, chapter: str):
    return nbformat.read(root / "autograded" / student / chapter / f"{chapter}.ipynb", as_version=4)


def _printed(cell) -> str:
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_every_chapter_generates_without_a_warning(course, chapter):
    _, log = course
    assert "WARNING" not in log, log
    assert re.search(rf"Writing \d+ bytes to \S*/release/{chapter}/{chapter}\.ipynb", log), log


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_the_release_hides_solutions_and_hidden_tests(course, chapter):
    root, _ = course
    source = cells_by_id(nbformat.read(root / "source" / chapter / f"{chapter}.ipynb", as_version=4))
    release = cells_by_id(nbformat.read(root / "release" / chapter / f"{chapter}.ipynb", as_version=4))
    assert release.keys() == source.keys()
    for grade_id, cell in release.items():
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] != meta["solution"], grade_id  # everything but the answers is read-only
        if meta["solution"]:
            assert "BEGIN SOLUTION" not in cell.source and "raise NotImplementedError()" in cell.source
            body = source[grade_id].source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            assert body.strip() and body.strip() not in cell.source
            assert cell.source.startswith("def my_"), cell.source  # the signature stays
        elif meta["grade"]:
            assert 'cases="visible"' in cell.source and "HIDDEN" not in cell.source and "hidden" not in cell.source
            assert 'cases="hidden"' in source[grade_id].source
            assert meta["points"] == course_tool.POINTS
        else:
            assert cell.source == source[grade_id].source


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_the_books_solutions_get_full_marks(course, chapter):
    root, _ = course
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        submission = gb.find_submission(chapter, SOLVED)
        exercises = len(gb.find_assignment(chapter).notebooks[0].grade_cells)
        assert submission.max_score == exercises * course_tool.POINTS > 0
        assert submission.score == submission.max_score


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_a_typical_mistake_loses_exactly_its_exercise(course, chapter):
    root, _ = course
    grade_id, _, _, hint = MISTAKES[chapter]
    test_id = grade_id.replace("-answer", "-test")
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        submission = gb.find_submission(chapter, MISTAKEN)
        assert submission.score == submission.max_score - course_tool.POINTS
        for grade in submission.notebooks[0].grades:
            expected = 0 if grade.name == test_id else grade.max_score
            assert grade.score == expected, (grade.name, grade.score)
    printed = _printed(cells_by_id(_autograded(root, MISTAKEN, chapter))[test_id])
    assert "[FAIL] check_" in printed and hint in printed, printed


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_grading_runs_the_visible_and_the_hidden_cases_of_the_books_checker(course, chapter):
    """The autograded test cell ran both parts, and together they are the book's full run of the checker."""
    root, _ = course
    book = nbformat.read(ROOT / "chapters" / f"{chapter}.ipynb", as_version=4)
    in_book = [_printed(cell) for cell in book.cells if re.match(r"check_\w+\(my_\w+\)", cell.source)]
    tests = [cell for cell in _autograded(root, SOLVED, chapter).cells
             if cell.metadata.get("nbgrader", {}).get("grade")]
    assert len(tests) == len(in_book)
    for cell, full in zip(tests, in_book):
        parts = re.findall(r"\[PASS\] check_\w+: all (\d+) (visible|hidden) cases pass", _printed(cell))
        total = re.search(r"\[PASS\] (check_\w+): all (\d+) cases pass", full)
        assert total and total.group(1) in cell.source, full
        assert [kind for _, kind in parts] == ["visible", "hidden"], _printed(cell)
        assert sum(int(n) for n, _ in parts) == int(total.group(2)), (_printed(cell), full)


def test_feedback_shows_the_failing_hidden_case(course):
    root, _ = course
    nbgrader(root, "generate_feedback", "02_core_concepts", "--student", MISTAKEN)
    html = (root / "feedback" / MISTAKEN / "02_core_concepts" / "02_core_concepts.html").read_text()
    assert "subtract the maximum along dim first" in html


# ------------------------------------------------------------------------------ the generator alone
def test_answer_keeps_signature_and_docstring_and_marks_the_body():
    source = 'def my_f(x):\n    """Add one."""\n    y = x + 1\n    return y\n\n\nprint(my_f(1))\n'
    answer = course_tool.answer_source(source, "Exercise 9.9")
    assert answer == ('def my_f(x):\n    """Add one."""\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n'
                      '    ### END SOLUTION')


def test_a_solution_without_a_function_is_refused_by_name():
    with pytest.raises(ValueError, match="Exercise 1.2: its solution cell defines no function"):
        course_tool.answer_source("answer = 42\n", "Exercise 1.2")


def test_the_test_cell_shows_the_visible_cases_and_hides_the_rest():
    source = course_tool.test_source("check_causal_mask(my_causal_mask)  # prints [PASS]", "Exercise 3.2")
    message = '"Exercise 3.2: see the [FAIL] line above"'
    assert source.splitlines()[1:] == [f'assert check_causal_mask(my_causal_mask, cases="visible"), {message}',
                                       "### BEGIN HIDDEN TESTS",
                                       f'assert check_causal_mask(my_causal_mask, cases="hidden"), {message}',
                                       "### END HIDDEN TESTS"]


def test_a_chapter_without_a_checker_after_a_solution_is_refused():
    nb = nbformat.read(CHAPTERS[0], as_version=4)
    index = next(i for i, cell in enumerate(nb.cells) if "solution" in cell.metadata.get("tags", []))
    nb.cells[index + 1] = nbformat.v4.new_markdown_cell("no checker here")
    with pytest.raises(ValueError, match="Exercise 1.1: the cell after its solution should call a checker"):
        course_tool.assignment(nb, "chapters/01_background.ipynb")


def test_a_chapter_without_a_title_is_refused():
    nb = nbformat.read(CHAPTERS[0], as_version=4)
    nb.cells[0].source = "Background\n"
    with pytest.raises(ValueError, match="the first cell should start with the chapter's '# ' title, not 'Background'"):
        course_tool.assignment(nb, "chapters/01_background.ipynb")


def test_the_config_names_the_course(tmp_path):
    course_tool.write_course(tmp_path, ["chapters/03_attention.ipynb"])
    config = (tmp_path / "nbgrader_config.py").read_text()
    assert 'c.CourseDirectory.course_id = "llmbook"' in config
    nb = json.loads((tmp_path / "source" / "03_attention" / "03_attention.ipynb").read_text())
    assert [cell["id"] for cell in nb["cells"]][:3] == ["header", "setup-1", "setup-2"]
