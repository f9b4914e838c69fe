"""Re-execute notebooks in place and store their outputs the way the book commits them.

    python tools/execute_notebook.py chapters/04_encoder_decoder.ipynb [...]

Runs every cell with nbconvert (widget state kept, so the website can show the widgets; no timing
metadata, so that a re-run that changes nothing changes no file), merges consecutive stdout/stderr
chunks of a cell into one output (a loop that prints line by line leaves one block, not hundreds),
and prints each notebook's wall-clock time: the chapter standard allows 90 s on 2 CPU cores.

The notebook's first cell imports llmbook, which pins the numerical path (llmbook.numerics). After
the last cell the tool asks the same kernel what was in force (``llmbook.numerics.describe()``) and
stores it in the notebook's metadata under ``llmbook.numerics``; it refuses to store outputs made
off the pinned path (tests/test_numerics.py checks every committed notebook's record).
"""
import json
import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

REPORT = "import json, llmbook.numerics\nprint(json.dumps(llmbook.numerics.describe()))"


def merge_streams(nb) -> None:
    """Join consecutive outputs of the same stream (stdout or stderr) within each code cell."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.outputs:
            previous = merged[-1] if merged else None
            if (out.output_type == "stream" and previous is not None
                    and previous.output_type == "stream" and previous.name == out.name):
                previous.text += out.text
            else:
                merged.append(out)
        cell.outputs = merged


def execute(path: str, timeout: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))  # runs last, in the same kernel, then goes
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, store_widget_state=True, record_timing=False).preprocess(
        nb, {"metadata": {"path": str(Path(path).parent)}})
    seconds = time.perf_counter() - start
    report = nb.cells.pop()
    numerics = json.loads("".join(o.text for o in report.outputs if o.get("name") == "stdout"))
    if not numerics["pinned"]:
        sys.exit(f"{path}: not stored, its outputs were made off the pinned numerical path: {numerics}")
    nb.metadata["llmbook"] = {"numerics": numerics}
    merge_streams(nb)
    nbformat.write(nb, path)
    return seconds


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for notebook in sys.argv[1:]:
        print(f"{notebook}: executed in {execute(notebook):.1f} s", flush=True)
