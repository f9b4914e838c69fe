"""The package installs from its sdist into a fresh virtual environment, as on Colab.

On Colab the first cell of a notebook runs ``pip install "llmbook[viz] @ git+<repository>"``: pip
builds the package from the repository's sources and installs it. This test does the same offline:
it builds the sdist from the working tree, builds a wheel from that sdist (so anything missing from
the sdist, such as a results file a chapter reads, is missing here too), installs the wheel into a
new virtual environment, and runs the first cells of a chapter there, outside the repository.

The new environment takes its dependencies (torch, matplotlib, ...) from the test's own environment
through a .pth file, so nothing is downloaded; llmbook itself comes only from the wheel.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "src"]


def run(*args, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The sdist, built (without network: no isolated build env) from a copy of the sources."""
    tmp = tmp_path_factory.mktemp("sdist")
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, tmp / "tree" / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (tmp / "tree").mkdir(exist_ok=True)
            shutil.copy2(item, tmp / "tree" / name)
    run(sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", tmp / "dist", tmp / "tree")
    (path,) = (tmp / "dist").glob("llmbook-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def fresh_python(sdist, tmp_path_factory) -> Path:
    """The python of a new venv with the wheel built from the sdist installed in it."""
    tmp = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", tmp / "wheels", sdist)
    (wheel,) = (tmp / "wheels").glob("llmbook-*.whl")
    env_dir = tmp / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # dependencies from this environment; a .pth line adds the folder but not the .pth files in it,
    # so this environment's editable llmbook stays invisible to the new one
    (site / "_llmbook_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel)
    return python


def test_sdist_holds_the_package_and_its_data(sdist):
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    package = [n for n in names if "/src/llmbook/" in n]
    for module in ("models.py", "checks/__init__.py", "experiments/__init__.py"):
        assert any(n.endswith(f"src/llmbook/{module}") for n in package), f"{module} is not in the sdist"
    results = sorted((ROOT / "src/llmbook/experiments/results").glob("*.*"))
    for path in results:
        assert any(n.endswith(f"experiments/results/{path.name}") for n in package), f"{path.name} is not in the sdist"


def test_installed_package_comes_from_the_wheel(fresh_python, tmp_path):
    out = run(fresh_python, "-c", "import llmbook, json; print(json.dumps([llmbook.__file__]))", cwd=tmp_path)
    (location,) = json.loads(out)
    assert str(ROOT / "src") not in location and str(fresh_python.parent.parent) in location, location


def test_results_files_travel_with_the_installed_package(fresh_python, tmp_path):
    code = ("from llmbook.experiments import RESULTS, load_results\n"
            "names = sorted(p.stem for p in RESULTS.glob('*.json'))\n"
            "[load_results(n) for n in names]\n"
            "print(len(names))")
    expected = len(list((ROOT / "src/llmbook/experiments/results").glob("*.json")))
    assert int(run(fresh_python, "-c", code, cwd=tmp_path)) == expected


def test_pretrained_models_and_tokenizers_travel_with_the_installed_package(fresh_python, tmp_path):
    code = ("from llmbook import pretrained\n"
            "for name in pretrained.TOKENIZERS: pretrained.tokenizer(name)\n"
            "model, tok = pretrained.load('tang-gpt')\n"
            "print(model.num_parameters(), tok.vocab_size)")
    card = json.loads((ROOT / "src/llmbook/pretrained_data/models/tang-gpt.json").read_text(encoding="utf-8"))
    parameters, vocab_size = run(fresh_python, "-c", code, cwd=tmp_path).split()
    assert (int(parameters), int(vocab_size)) == (card["parameters"], card["config"]["vocab_size"])


def test_bertviz_scripts_travel_with_the_installed_package(fresh_python, tmp_path):
    """A bertviz view inlines d3 and jQuery from the installed package's viz/static/ folder."""
    code = ("import json, torch\nfrom llmbook import viz\n"
            "html = viz.head_view([torch.full((1, 1, 2, 2), 0.5)], ['a', 'b'], html_action='return').data\n"
            "print(json.dumps([html.count('d3js.org v5.7.0'), html.count('jQuery v3.7.1'), 'cdnjs' in html]))")
    assert json.loads(run(fresh_python, "-c", code, cwd=tmp_path)) == [1, 1, False]


def test_cjk_font_travels_with_the_installed_package(fresh_python, tmp_path):
    """use_cjk_font registers the font file that the installed package carries, byte for byte."""
    code = ("import hashlib\nfrom llmbook import viz\n"
            "print(viz.use_cjk_font(), hashlib.sha256(open(viz.cjk_font_path(), 'rb').read()).hexdigest(),"
            " viz.cjk_font_path(), sep='\\n')")
    family, digest, path = run(fresh_python, "-c", code, cwd=tmp_path).splitlines()
    record = json.loads((ROOT / "src/llmbook/viz/fonts/record.json").read_text(encoding="utf-8"))
    assert (family, digest) == (record["family"], record["files"]["DroidSansFallbackFull.ttf"])
    assert str(ROOT / "src") not in path


def test_a_chapter_runs_its_first_cells_in_the_fresh_environment(fresh_python, tmp_path):
    """The install cell finds the installed package and does nothing; the imports and the first
    computations of chapter 3 then run, and a checker works, all outside the repository."""
    nb = nbformat.read(ROOT / "chapters" / "03_attention.ipynb", as_version=4)
    code_cells = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    script = "\n\n".join(code_cells[:4]) + (
        "\n\nfrom llmbook.attention import scaled_dot_product_attention as reference\n"
        "assert check_scaled_dot_product_attention(lambda q, k, v, mask=None: reference(q, k, v, mask))\n"
        "import llmbook; print('llmbook from', llmbook.__file__)\n")
    (tmp_path / "first_cells.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MPLBACKEND"] = "Agg"
    out = run(fresh_python, "first_cells.py", cwd=tmp_path, env=env)
    assert "[PASS] check_scaled_dot_product_attention" in out
    assert f"llmbook from {fresh_python.parent.parent}" in out
