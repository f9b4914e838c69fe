"""Write the last section of every chapter, "The code behind this chapter": the llmbook functions and
classes the chapter uses, each linked to its source.

    python tools/code_behind.py            # write the section into chapters/*.ipynb
    python tools/code_behind.py --check    # only say which chapters are out of date (exit 1 if any)

The code cells are read, never run: every name imported from llmbook (``from llmbook.data import
lm_batch``) and every attribute taken from an imported llmbook module (``viz.plot_attention``) is
looked up in the package with importlib, and listed under the module that *defines* it, whatever
module the chapter imported it from (so re-exports, and functions that move to another module, land
on the right file). Constants and other values are not listed: only functions and classes, whose
source has an anchor on the website.

A link is written as a plain relative link to the file, ``[lm_batch](../src/llmbook/data.py)``:
JupyterLab (in a clone of the repository) and GitHub open the file; on the website
tools/source_links.py turns it into a link to the highlighted source, at the anchor named by the link
text. The section is the notebook's last markdown cell, replaced in place on every run; nothing else
in the notebook changes. tests/test_code_behind.py fails when a chapter's section is out of date.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
PACKAGE = "llmbook"
HEADING = "## The code behind this chapter"
CELL_ID = "code-behind"
COMMAND = "python tools/code_behind.py"
REPOSITORY = re.search(r"^\s*url:\s*(https://github.com/\S+)", (ROOT / "_config.yml").read_text(), re.M).group(1)
# IPython syntax that is not Python: magics (%time, %%capture) and shell escapes (!pip).
IPYTHON_LINE = re.compile(r"^\s*[%!]")

SECTION = f"""\
{HEADING}

<!-- Written by `{COMMAND}` from the code cells above; edit the code, then re-run it. -->

The `{PACKAGE}` functions and classes this chapter uses, under the module that defines them. On the
book's website a name opens its highlighted source; in JupyterLab it opens the file in `src/llmbook/`
(on Colab, browse [the package on GitHub]({REPOSITORY}/tree/main/src/llmbook)).

"""


def python_source(cell_source: str) -> str:
    """A code cell's source without its IPython-only lines, so that ast can parse it."""
    return "\n".join("" if IPYTHON_LINE.match(line) else line for line in cell_source.splitlines())


def bindings(tree: ast.AST, package: str = PACKAGE) -> dict[str, str]:
    """Local name -> the dotted path it was imported as, for every import from the package."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and (node.module == package or node.module.startswith(package + ".")):
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
    return bound


def _dotted(node: ast.AST) -> list[str] | None:
    """["viz", "plot_attention"] for the expression viz.plot_attention; None for anything else."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


def references(tree: ast.AST, bound: dict[str, str]) -> set[str]:
    """Dotted paths of everything imported from the package and of every attribute taken from it."""
    found = set(bound.values())
    for node in ast.walk(tree):
        parts = _dotted(node) if isinstance(node, ast.Attribute) else None
        if parts and parts[0] in bound:
            found.add(".".join([bound[parts[0]], *parts[1:]]))
    return found


def resolve(dotted: str, package: str = PACKAGE) -> tuple[str, str] | None:
    """(defining module, qualified name) of the function or class at dotted, or None when dotted names
    a module, a constant or anything else without a source anchor of its own."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            raise LookupError(f"{dotted}: {'.'.join(parts[:split])} has no attribute {attribute!r}") from None
        break
    else:
        raise LookupError(f"{dotted}: no module of it can be imported")
    obj = inspect.unwrap(getattr(obj, "__func__", obj))
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return None
    module, qualname = obj.__module__, obj.__qualname__
    public = not any(part.startswith("_") for part in [*module.split("."), *qualname.split(".")])
    if not public or "<locals>" in qualname or not (module == package or module.startswith(package + ".")):
        return None
    return module, qualname


def used_code(code_cells: list[str], package: str = PACKAGE) -> dict[str, list[str]]:
    """Defining module -> sorted qualified names of the functions and classes the cells use."""
    trees = [ast.parse(python_source(source)) for source in code_cells]
    bound = {}
    for tree in trees:
        bound.update(bindings(tree, package))
    used: dict[str, set[str]] = {}
    for tree in trees:
        for dotted in references(tree, bound):
            found = resolve(dotted, package)
            if found:
                used.setdefault(found[0], set()).add(found[1])
    return {module: sorted(names) for module, names in sorted(used.items())}


def source_file(module: str) -> str:
    """The module's file, relative to the repository root ("src/llmbook/data.py")."""
    path = Path(importlib.import_module(module).__file__).resolve()
    if not path.is_relative_to(ROOT):
        raise LookupError(f"{module} is imported from {path}, outside this checkout ({ROOT})")
    return path.relative_to(ROOT).as_posix()


def section(used: dict[str, list[str]], notebook_dir: str = "chapters") -> str:
    """The markdown of the section, for a notebook in notebook_dir (relative to the root)."""
    up = "../" * len(Path(notebook_dir).parts)
    lines = []
    for module, names in used.items():
        link = up + source_file(module)
        # Plain link text, not `code`: JupyterLab shows a link around code in black, unrecognisable.
        items = ", ".join(f"[{name}]({link})" for name in names)
        lines.append(f"- [{module}]({link}): {items}")
    return SECTION + "\n".join(lines)


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def expected_section(nb: dict) -> str:
    code = [_source(cell) for cell in nb["cells"] if cell["cell_type"] == "code"]
    return section(used_code(code))


def current_section(nb: dict) -> str | None:
    """The section as the notebook holds it now, or None when its last cell is not the section."""
    last = nb["cells"][-1]
    text = _source(last)
    return text if last["cell_type"] == "markdown" and text.startswith(HEADING) else None


def update(path: Path) -> bool:
    """Write the section into the notebook at path; True when the file changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = expected_section(nb)
    if current_section(nb) == text:
        return False
    cell = {"cell_type": "markdown", "id": CELL_ID, "metadata": {}, "source": text.splitlines(keepends=True)}
    if current_section(nb) is None:
        nb["cells"].append(cell)
    else:
        nb["cells"][-1]["source"] = cell["source"]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report the chapters that are out of date")
    args = parser.parse_args()
    chapters = sorted(CHAPTERS.glob("*.ipynb"))
    if args.check:
        stale = [path.name for path in chapters
                 if current_section(nb := json.loads(path.read_text(encoding="utf-8"))) != expected_section(nb)]
        print("\n".join(f"out of date: {name}" for name in stale) or "every chapter is up to date")
        return 1 if stale else 0
    for path in chapters:
        print(f"{'updated' if update(path) else 'unchanged'}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))  # this checkout's package, not another installed one
    sys.exit(main())
