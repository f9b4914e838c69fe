"""Write the website's package reference: one page per module of src/llmbook, and an index of them.

    python tools/api_pages.py            # (re)write book/api/ to match the modules in src/llmbook
    python tools/api_pages.py --check    # only say whether book/api/ is up to date (exit 1 if not)

Each page runs autodoc on its module, so every public function and class gets an entry with an
anchor, and sphinx.ext.viewcode then writes the module's highlighted source (_modules/llmbook/...)
with an anchor for each of them: that is where the chapters' "The code behind this chapter" links
lead. The modules are found from the files, so a new, renamed or removed module needs one re-run of
this tool (tests/test_code_behind.py fails until then). Private modules (a name starting with "_")
get no page; their code is reached from the public modules that use it.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "llmbook"
OUT = ROOT / "book" / "api"
INDEX = "index.md"

MODULE_PAGE = """\
# `{name}`

```{{eval-rst}}
.. automodule:: {name}
   :members:
   :undoc-members:
   :ignore-module-all:
```
"""

INDEX_PAGE = """\
# Package reference

Every module of the `llmbook` package, with its docstrings. The **[source]** link beside a function
or class opens its highlighted source code; the last section of each chapter links straight to the
code that chapter uses.

{modules}
"""


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every public module of the package (sorted by name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") or not part.isidentifier() for part in parts):
            continue  # private modules, and files no import can reach (.ipynb_checkpoints/)
        found[".".join(parts)] = path
    return dict(sorted(found.items()))


def summary(path: Path) -> str:
    """The first paragraph of a module's docstring, on one line, as text (a docstring that names
    an HTML tag such as <img> must not put one on the page)."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    text = " ".join(docstring.split("\n\n")[0].split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pages(package: Path = PACKAGE) -> dict[str, str]:
    """File name in book/api/ -> the text it should hold."""
    modules = module_files(package)
    lines = [f"- {{py:mod}}`{name}`: {summary(path)}" for name, path in modules.items()]
    wanted = {INDEX: INDEX_PAGE.format(modules="\n".join(lines))}
    wanted.update({f"{name}.md": MODULE_PAGE.format(name=name) for name in modules})
    return wanted


def differences(out: Path = OUT, package: Path = PACKAGE) -> list[str]:
    """What is missing, stale or left over in out, one line each; empty when it is up to date."""
    wanted = pages(package)
    present = {path.name for path in out.glob("*.md")} if out.is_dir() else set()
    problems = [f"missing: {name}" for name in sorted(set(wanted) - present)]
    problems += [f"left over: {name}" for name in sorted(present - set(wanted))]
    problems += [f"stale: {name}" for name in sorted(present & set(wanted))
                 if (out / name).read_text(encoding="utf-8") != wanted[name]]
    return problems


def write(out: Path = OUT, package: Path = PACKAGE) -> None:
    wanted = pages(package)
    out.mkdir(parents=True, exist_ok=True)
    for path in out.glob("*.md"):
        if path.name not in wanted:
            path.unlink()
    for name, text in wanted.items():
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text:
            (out / name).write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether book/api/ is up to date")
    args = parser.parse_args()
    if args.check:
        problems = differences()
        print("\n".join(problems) or "book/api/ is up to date")
        return 1 if problems else 0
    write()
    print(f"wrote {len(pages())} pages to {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
