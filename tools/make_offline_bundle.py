"""Pack the book into one zip that works with no network: `make offline` (after `make html student`).

    python tools/make_offline_bundle.py [--out _build/llmbook-offline.zip]

The archive holds one folder, llmbook-offline/, with

- website/   the built site (_build/html): every script, style sheet and font is local, so
             website/index.html opens straight from disk, or from `python -m http.server`;
- notebooks/ the chapters and the getting-started notebook, with their outputs (solution edition);
- student/   the same notebooks with the exercise solutions replaced by stubs (`make student`);
- llmbook-<version>-py3-none-any.whl, the package with the result files its chapters read;
- README.txt how to open the website and run the notebooks without a network.

The notebooks generate their own data through the package, so nothing else is needed.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = "llmbook-offline"

README = """\
Large Language Models, Explained in Code: the offline edition
=============================================================

Everything in this folder works without a network.

Read the book
  Open website/index.html in a web browser (double-click it). If your browser refuses to run
  pages from disk, serve the folder instead and open the address it prints:
      python3 -m http.server --directory website 8000      ->  http://localhost:8000/

Run the notebooks
  You need Python 3.10 or newer with PyTorch, matplotlib, ipywidgets, bertviz (the attention views
  of chapters 3 to 5) and JupyterLab installed (a classroom can install them once from a local
  package mirror). Then, in this folder:
      python3 -m pip install --no-deps {wheel}
      python3 -m jupyter lab notebooks/        (the book, with solutions)
      python3 -m jupyter lab student/          (exercises open: each stub raises NotImplementedError)
  Every notebook generates its own data; the exercise checkers (llmbook.checks) run offline.
"""


PACKAGE_FILES = ["pyproject.toml", "README.md", "LICENSE", "src"]


def build_wheel(outdir: Path) -> Path:
    """The package's wheel, built from a copy of the working tree (setuptools writes build/ and
    *.egg-info/ next to the sources) without network access (no isolated build environment)."""
    source = outdir / "source"
    for name in PACKAGE_FILES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(outdir), str(source)], check=True)
    wheels = sorted(outdir.glob("llmbook-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one llmbook wheel in {outdir}, found {[w.name for w in wheels]}")
    return wheels[0]


def _add_tree(archive: zipfile.ZipFile, source: Path, target: str) -> int:
    count = 0
    for path in sorted(source.rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            archive.write(path, f"{TOP}/{target}/{path.relative_to(source).as_posix()}")
            count += 1
    return count


def bundle(out: Path, site: Path, student: Path) -> None:
    for folder, command in ((site, "make html"), (student, "make student")):
        if not folder.is_dir():
            raise SystemExit(f"{folder} does not exist: run `{command}` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        wheel = build_wheel(Path(tmp))
        archive.write(wheel, f"{TOP}/{wheel.name}")
        archive.writestr(f"{TOP}/README.txt", README.format(wheel=wheel.name))
        pages = _add_tree(archive, site, "website")
        notebooks = 0
        for name in ["book/getting_started.ipynb", *sorted(p.relative_to(ROOT).as_posix()
                                                           for p in (ROOT / "chapters").glob("*.ipynb"))]:
            archive.write(ROOT / name, f"{TOP}/notebooks/{Path(name).name}")
            notebooks += 1
        stubs = 0
        for path in sorted(student.rglob("*.ipynb")):  # student/ mirrors book/ and chapters/
            archive.write(path, f"{TOP}/student/{path.name}")
            stubs += 1
    size = out.stat().st_size / 2**20
    print(f"{out}: website ({pages} files), {notebooks} notebooks, {stubs} student notebooks, "
          f"{wheel.name}; {size:.1f} MiB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "llmbook-offline.zip")
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--student", type=Path, default=ROOT / "student")
    args = parser.parse_args(argv)
    bundle(args.out, args.site, args.student)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
