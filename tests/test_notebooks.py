"""The notebooks keep the book's conventions, and the student edition is made from them correctly.

nbval re-runs every notebook; these tests check what a re-run cannot: that every notebook starts
with the same install cell (the one Colab runs), that every coding exercise has a checker, that
the instructor guide covers every exercise, that the student edition hides every solution, and that
the committed student edition (student/) is what the chapters give today.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from repo_tools import load_tool

from llmbook import checks

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
NOTEBOOKS = [ROOT / "book" / "getting_started.ipynb", ROOT / "book" / "pretrained_models.ipynb", *CHAPTERS]
# the notebooks the student edition copies (the pretrained-models page has no exercises)
STUDENT_SOURCES = [ROOT / "book" / "getting_started.ipynb", *CHAPTERS]
EXERCISE = re.compile(r"\{exercise\}[^\n]*\n(?:[^\n]*\n)*?:label:\s*(ex-\d+-\d+)")
REPOSITORY = re.search(r"^\s*url:\s*(https://github.com/\S+)", (ROOT / "_config.yml").read_text(), re.M).group(1)


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def test_there_are_chapters():
    assert len(CHAPTERS) >= 3, [p.name for p in CHAPTERS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_cell_is_the_shared_install_cell(path):
    """The cell Colab runs first installs the package from this book's repository, the same everywhere."""
    reference = _code_cells(_read(NOTEBOOKS[0]))[0].source
    first = _code_cells(_read(path))[0]
    assert first.source == reference, f"{path.name}: its first code cell differs from getting_started's"
    assert f"git+{REPOSITORY}" in first.source, f"the install cell does not install from {REPOSITORY}"


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_colab_badge_opens_this_notebook(path):
    title = _read(path).cells[0].source
    expected = f"colab.research.google.com/github/{REPOSITORY.removeprefix('https://github.com/')}" \
               f"/blob/main/chapters/{path.name}"
    assert expected in title, f"{path.name}: no Colab badge linking to {expected}"


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_every_coding_exercise_has_a_checker(path):
    nb = _read(path)
    labels = [label for cell in nb.cells if cell.cell_type == "markdown" for label in EXERCISE.findall(cell.source)]
    assert len(labels) >= 3, f"{path.name} has {len(labels)} exercises; the chapter standard asks for 3"
    assert len(set(labels)) == len(labels), f"duplicate exercise labels in {path.name}: {labels}"
    chapter = int(path.name[:2])
    assert all(label.startswith(f"ex-{chapter}-") for label in labels), labels
    solutions = [i for i, cell in enumerate(nb.cells) if "solution" in cell.metadata.get("tags", [])]
    assert solutions, f"{path.name} has no coding exercise (a code cell tagged 'solution')"
    for i in solutions:
        after = nb.cells[i + 1]
        call = re.match(r"(check_\w+)\(my_\w+\)", after.source)
        assert after.cell_type == "code" and call, f"{path.name}: the cell after solution cell {i} calls no checker"
        assert call.group(1) in checks.__all__, f"{call.group(1)} is not exported by llmbook.checks"
        assert "hide-input" in nb.cells[i].metadata.get("tags", []), "solutions are hidden on the website"


def test_every_checker_is_tested_and_used():
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_checks*.py"))
    used = "".join(p.read_text() for p in NOTEBOOKS)
    for name in checks.__all__:
        assert f"checks.{name}" in tests or f"{name}," in tests or f"import {name}" in tests, \
            f"{name} has no test in tests/test_checks*.py"
        assert f"{name}(" in used, f"{name} is not used by any notebook"


def test_instructor_guide_covers_every_exercise():
    guide = (ROOT / "book" / "instructor_guide.md").read_text()
    for path in CHAPTERS:
        for cell in _read(path).cells:
            for label in EXERCISE.findall(cell.source) if cell.cell_type == "markdown" else []:
                assert f"{{ref}}`{label}`" in guide or f"({label})" in guide, \
                    f"book/instructor_guide.md does not list {label} ({path.name})"


# Every notebook under chapters/ and book/, as a classroom would open it.
ALL_NOTEBOOKS = sorted(p for folder in ("chapters", "book") for p in (ROOT / folder).rglob("*.ipynb")
                       if ".ipynb_checkpoints" not in p.parts)
CDN_HOSTS = re.compile(r"cdnjs\.cloudflare\.com|cdn\.jsdelivr\.net|unpkg\.com|ajax\.googleapis\.com|code\.jquery\.com")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_outputs_load_nothing_from_the_network(path):
    """A saved output must show offline (a classroom's JupyterLab, the offline bundle): none loads a
    script, style sheet, frame or image from another host, sets a require.js path to one, or names a CDN."""
    web_assets = load_tool("fetch_web_assets")
    found = []
    for i, cell in enumerate(_code_cells(_read(path))):
        for output in cell.get("outputs", []):
            for mime, data in output.get("data", {}).items():
                if isinstance(data, str) and (mime.startswith("text/") or mime in ("application/javascript",
                                                                                   "image/svg+xml")):
                    hits = web_assets.remote_loads(data) + CDN_HOSTS.findall(data)
                    found += [f"code cell {i}, {mime}: {hit[:100]}" for hit in hits]
    assert not found, f"{path.name}: outputs that need the network:\n  " + "\n  ".join(found)


# ------------------------------------------------------------------------------ student edition
student = load_tool("make_student_edition")


def test_stub_keeps_signature_and_docstring_only():
    source = 'def my_f(x, y=2):\n    """Add."""\n    z = x + y\n    return z\n\n\nprint(my_f(1))\n'
    stub, raises = student.stub_source(source, "Exercise 9.9")
    assert not raises
    assert 'def my_f(x, y=2):\n    """Add."""\n    raise NotImplementedError(' in stub
    assert "x + y" not in stub and "print" not in stub
    namespace = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError, match="Exercise 9.9"):
        namespace["my_f"](1)


def test_stub_of_a_cell_without_functions_raises_at_once():
    stub, raises = student.stub_source("answer = 6 * 7\n", "Exercise 1.2")
    assert raises
    with pytest.raises(NotImplementedError, match="Exercise 1.2"):
        exec(stub, {})


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_student_edition_hides_every_solution(path):
    original = _read(path)
    nb = student.student_notebook(_read(path), path.relative_to(ROOT).as_posix())
    assert len(nb.cells) == len(original.cells)
    text = "\n".join(cell.source for cell in nb.cells)
    assert "{solution}" not in text
    for before, after, next_cell in zip(original.cells, nb.cells, nb.cells[1:]):
        if "solution" not in before.metadata.get("tags", []):
            assert after.source == before.source or after.cell_type == "markdown"
            continue
        assert "solution" not in after.metadata.get("tags", []) and "hide-input" not in after.metadata.get("tags", [])
        assert "NotImplementedError" in after.source and after.outputs == []
        for node in ast.parse(after.source).body:  # only stubs: an optional docstring, then raise
            assert isinstance(node, (ast.FunctionDef, ast.Raise)), ast.unparse(node)
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                assert len(body) == 1 and isinstance(body[0], ast.Raise), \
                    f"solution code left in the student edition of {path.name}: {ast.unparse(node)}"
        printed = "".join(out.get("text", "") for out in next_cell.outputs)
        assert printed.startswith("[FAIL] check_") and "NotImplementedError: Exercise" in printed, printed


@pytest.mark.parametrize("path", STUDENT_SOURCES, ids=_ids(STUDENT_SOURCES))
def test_committed_student_edition_is_up_to_date(path):
    """student/ is committed (each notebook opens on Colab from its own link), so it must follow the book."""
    name = path.relative_to(ROOT).as_posix()
    committed = ROOT / student.student_path(name)
    assert committed.is_file(), f"{committed.relative_to(ROOT)} is missing: run `make student`"
    assert _read(committed) == student.student_notebook(_read(path), name), \
        f"{committed.relative_to(ROOT)} is out of date with {name}: run `make student`"


@pytest.mark.parametrize("path", STUDENT_SOURCES, ids=_ids(STUDENT_SOURCES))
def test_student_notebook_opens_itself_on_colab_and_its_links_resolve(path):
    committed = ROOT / student.student_path(path.relative_to(ROOT).as_posix())
    markdown = "\n".join(cell.source for cell in _read(committed).cells if cell.cell_type == "markdown")
    expected = f"colab.research.google.com/github/{REPOSITORY.removeprefix('https://github.com/')}" \
               f"/blob/main/{committed.relative_to(ROOT).as_posix()}"
    assert expected in markdown, f"{committed.name}: no Colab badge linking to {expected}"
    links = student.RELATIVE_LINK.findall(markdown)
    assert links or path.name != "03_attention.ipynb"  # chapter 3 links to its code: the check has work
    for link in links:
        target = (committed.parent / link.split("#")[0]).resolve()
        assert target.exists(), f"{committed.relative_to(ROOT)} links to {link}, which does not exist"


def test_rebased_links_point_at_the_same_files():
    text = "[code](../src/llmbook/attention.py#L3), [web](https://x.org/a.md), [here](#top), [n](notation.md)"
    moved = student.rebase_links(text, "book/getting_started.ipynb", "student/book/getting_started.ipynb")
    assert moved == ("[code](../../src/llmbook/attention.py#L3), [web](https://x.org/a.md), [here](#top), "
                     "[n](../../book/notation.md)")
