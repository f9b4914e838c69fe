"""Experiments too large to run inside a chapter, and the small result files they leave.

Each experiment is a module with a ``run(...)`` function returning plain data and a ``main()`` that
runs the full version and saves it: ``python -m llmbook.experiments.<name>`` writes
``results/<name>.json`` inside this package, so the result travels with the package (to Colab, to
an offline classroom) and a chapter reads it with ``load_results("<name>")`` while it runs a reduced
version of the same experiment live. Every ``main()`` calls ``run_and_save``, so every result file
records its run's time the same way: ``settings["wall_seconds"]`` (wall clock) and
``settings["cpu_seconds"]`` (CPU time of the process), and a timed part of a run uses the same two
keys. A small trained model an experiment ships is saved beside it with
``llmbook.train.save_checkpoint(checkpoint_path("<name>"), model)`` and read back with
``llmbook.train.load_checkpoint`` (plain data, ``weights_only=True``).

Used in chapters 1, Background: from n-grams to large language models; 3, Attention, step by step;
4, Encoder and decoder; 5, Pretraining; 6, Applications; 7, Inference engineering; 8, Scaling and
unit scaling; 9, Emergent abilities; and 10, Adapting and aligning models.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch

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


def run_and_save(name: str, run: Callable[..., dict], **full) -> dict:
    """The full run of experiment `name`: run(**full) on one CPU thread, timed, saved as results/<name>.json.

    The run's wall-clock and CPU seconds go to data["settings"]["wall_seconds"] and
    data["settings"]["cpu_seconds"] (CPU time leaves out the time spent waiting while other programs
    use the core). Returns the saved data.
    """
    torch.set_num_threads(1)  # the models are small: one thread is fastest and gives steady times
    start, cpu_start = time.perf_counter(), time.process_time()
    data = run(**full)
    settings = data.setdefault("settings", {})
    settings["wall_seconds"] = round(time.perf_counter() - start, 1)
    settings["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    path = save_results(name, data)
    print(f"saved {path} after {settings['wall_seconds']:.0f} s ({settings['cpu_seconds']:.0f} s of CPU time)")
    return data
