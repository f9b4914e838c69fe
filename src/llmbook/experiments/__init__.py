"""Experiments too large to run inside a chapter, and the small result files they leave.

Each experiment is a module with a ``run(...)`` function returning plain data and a ``main()`` that
runs the full version and saves it: ``python -m llmbook.experiments.<name>`` writes
``results/<name>.json`` inside this package, so the result travels with the package (to Colab, to
an offline classroom) and a chapter reads it with ``load_results("<name>")`` while it runs a reduced
version of the same experiment live. A small trained model an experiment ships is saved beside it
with ``llmbook.train.save_checkpoint(checkpoint_path("<name>"), model)`` and read back with
``llmbook.train.load_checkpoint`` (plain data, ``weights_only=True``).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def results_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def checkpoint_path(name: str) -> Path:
    return RESULTS / f"{name}.pt"


def save_results(name: str, data: dict) -> Path:
    """Write data as indented JSON (stable key order, so a re-run that changes nothing diffs as nothing)."""
    path = results_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_results(name: str) -> dict:
    """The saved results of experiment `name`; a clear error names the command that produces them."""
    resource = resources.files(__package__).joinpath("results", f"{name}.json")
    if not resource.is_file():
        available = sorted(p.stem for p in RESULTS.glob("*.json"))
        raise FileNotFoundError(f"no saved results for experiment {name!r} (available: {available}); "
                                f"run `python -m llmbook.experiments.{name}` to produce them")
    return json.loads(resource.read_text(encoding="utf-8"))
