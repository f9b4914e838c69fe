"""Chapter <-> code: every chapter ends with the code it uses, and every module names its chapter.

- The section "The code behind this chapter" that ends each chapter is what tools/code_behind.py
  writes from the chapter's code cells today (the links themselves are checked on the built site,
  by tests/test_website.py).
- book/api/ holds one reference page per module of the package (tools/api_pages.py).
- Every module's docstring says which chapter teaches it. The rule: a line
  ``Taught in chapter N, Title.`` (or ``Taught in chapters N, Title, and M, Title.``) for a module
  whose ideas a chapter explains, or ``Used in chapter N, Title.`` for one a chapter only calls
  (checkers, device selection, loaders, experiment runners). A module every chapter relies on may
  say ``Used in every chapter`` instead. Each chapter named must exist, under that number, with a
  title that starts with the words given.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from repo_tools import load_tool

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "llmbook"
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
MODULES = sorted(PACKAGE.rglob("*.py"))


code_behind = load_tool("code_behind")
api_pages = load_tool("api_pages")
# The website renders the chapter line with links to the chapters, so its extension holds the patterns.
package_reference = load_tool("package_reference")
WHERE, CHAPTER = package_reference.WHERE, package_reference.CHAPTER


def _ids(paths, root=ROOT):
    return [p.relative_to(root).as_posix() for p in paths]


# ----------------------------------------------------------------- the last section of every chapter


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_ends_with_the_code_behind_it(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    current = code_behind.current_section(nb)
    assert current is not None, f"{path.name} does not end with {code_behind.HEADING!r}: run `{code_behind.COMMAND}`"
    assert current == code_behind.expected_section(nb), \
        f"{path.name}: 'The code behind this chapter' is out of date: run `{code_behind.COMMAND}`"
    assert "](../src/llmbook/" in current, f"{path.name} links to no llmbook code"


FAKE_PACKAGE = {
    "__init__.py": "from fakebook.inner import Thing, helper\nfrom fakebook import sub\n",
    "inner.py": "LIMIT = 3\n\n\ndef helper():\n    pass\n\n\nclass Thing:\n    @classmethod\n"
                "    def make(cls):\n        return cls()\n\n\ndef _private():\n    pass\n",
    "sub.py": "import functools\n\n\n@functools.lru_cache\ndef tool(x):\n    return x\n",
}
FAKE_CELLS = [
    "%matplotlib inline\nfrom fakebook import helper, sub\nimport fakebook.inner as inner\n",
    "!echo shell lines are skipped\nsub.tool(1)\ninner.Thing.make()\ninner.LIMIT\ninner._private()\n"
    "import torch\ntorch.zeros(1)\n",
]


def test_names_resolve_to_the_module_that_defines_them(tmp_path, monkeypatch):
    (tmp_path / "fakebook").mkdir()
    for name, text in FAKE_PACKAGE.items():
        (tmp_path / "fakebook" / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    used = code_behind.used_code(FAKE_CELLS, package="fakebook")
    # helper is imported from the package but defined in inner; Thing.make uses Thing and its method;
    # a decorated function keeps its name; a constant, a private function and torch are left out.
    assert used == {"fakebook.inner": ["Thing", "Thing.make", "helper"], "fakebook.sub": ["tool"]}


def test_a_name_the_package_lacks_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "fakebook").mkdir()
    for name, text in FAKE_PACKAGE.items():
        (tmp_path / "fakebook" / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LookupError, match="fakebook.sub has no attribute 'renamed'"):
        code_behind.used_code(["from fakebook import sub\nsub.renamed()\n"], package="fakebook")


# ----------------------------------------------------------------- the package reference pages


def test_package_reference_pages_are_up_to_date():
    problems = api_pages.differences()
    assert not problems, "book/api/ does not match src/llmbook: run `python tools/api_pages.py`\n  " + \
        "\n  ".join(problems)


def test_package_reference_has_a_page_for_every_public_module():
    names = set(api_pages.module_files())
    assert {"llmbook", "llmbook.attention", "llmbook.checks"} <= names, names
    assert not any(part.startswith("_") for name in names for part in name.split(".")), names


def test_package_reference_skips_private_and_unimportable_files(tmp_path):
    for name in ("__init__.py", "models.py", "_core.py", "sub/__init__.py", "sub/x.py",
                 ".ipynb_checkpoints/models-checkpoint.py"):
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text('"""Doc."""\n')
    assert list(api_pages.module_files(tmp_path / "pkg")) == ["pkg", "pkg.models", "pkg.sub", "pkg.sub.x"]


# ----------------------------------------------------------------- module docstrings name their chapter


def _chapter_titles() -> dict[int, str]:
    titles = {}
    for path in CHAPTERS:
        first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"]
        match = re.match(r"# (\d+)\. (.+)", "".join(first))
        assert match, f"{path.name}: the first cell does not start with '# N. Title'"
        titles[int(match.group(1))] = match.group(2).strip()
    return titles


def _chapter_problems(docstring: str, titles: dict[int, str]) -> list[str]:
    """What is wrong with the chapters a module docstring names (see the rule above); empty if nothing."""
    lines = package_reference.chapter_lines(docstring)
    if not lines:
        return ["its docstring names no chapter; end it with a line such as 'Taught in chapter 3, Attention.' "
                "or 'Used in chapter 5, Pretraining.'"]
    problems = []
    for line in lines:
        if line.startswith(("every chapter", "the front matter")):
            continue
        named = CHAPTER.findall(line)
        if not named:
            problems.append(f"{line!r} names no chapter as 'N, Title'")
        for number, title in named:
            if int(number) not in titles:
                problems.append(f"there is no chapter {number}")
            elif not titles[int(number)].lower().startswith(title.strip().lower()):
                problems.append(f"chapter {number} is {titles[int(number)]!r}, not {title.strip()!r}")
    return problems


def test_the_chapter_rule_catches_a_wrong_chapter():
    titles = {3: "Attention, step by step", 5: "Pretraining"}
    assert _chapter_problems("Masks.\n\nTaught in chapter 3, Attention.", titles) == []
    assert _chapter_problems("Taught in chapters 3, Attention, and 5, Pretraining.", titles) == []
    assert _chapter_problems("Checkers.\n\nUsed in every chapter, by its exercises.", titles) == []
    assert _chapter_problems("Masks, see chapter 3.", titles) != []
    assert _chapter_problems("Taught in chapter 4, Attention.", titles) == ["there is no chapter 4"]
    assert _chapter_problems("Taught in chapter 5, Attention.", titles) == \
        ["chapter 5 is 'Pretraining', not 'Attention'"]


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES, PACKAGE.parent))
def test_module_docstring_names_the_chapter_that_teaches_it(path):
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    problems = _chapter_problems(docstring, _chapter_titles())
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)
