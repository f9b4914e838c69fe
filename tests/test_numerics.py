"""The pinned numerical path (llmbook.numerics) holds in every entry point, and every committed
notebook records that its outputs were made on it, with the torch that constraints.txt pins."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from llmbook import numerics

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [ROOT / "book" / "getting_started.ipynb", ROOT / "book" / "pretrained_models.ipynb",
             *sorted((ROOT / "chapters").glob("*.ipynb"))]
STUDENT = sorted((ROOT / "student").rglob("*.ipynb"))  # committed, written by `make student`
TORCH_PIN = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
CAN_PIN = numerics.can_pin()

# Trains a tiny network for 60 AdamW steps and prints (kernel ISA, sha256 of the weights).
TRAIN = """
import hashlib, torch
{before}
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.GELU(), torch.nn.LayerNorm(128), torch.nn.Linear(128, 32))
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
x = torch.randn(256, 32)
for _ in range(60):
    loss = (net(x).softmax(-1) - x.tanh()).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
print(torch.backends.cpu.get_cpu_capability(), digest)
"""


def _python(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in numerics.wanted_pins() and k != numerics.OPT_OUT}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                          text=True, check=True, timeout=300)


def test_importing_llmbook_pins_a_fresh_process():
    out = _python("import json, llmbook; print(json.dumps(llmbook.numerics.describe()))")
    state = json.loads(out.stdout)
    assert state["pinned"] is CAN_PIN, state
    assert state["threads"] == 1, state
    if CAN_PIN:
        assert state["cpu_capability"] == "AVX2", state
        assert state["pins"] == {**numerics.ISA_PINS, **numerics.THREAD_PINS}, state


def test_the_pin_overrides_kernels_chosen_in_the_environment():
    out = _python("import llmbook, torch; print(torch.backends.cpu.get_cpu_capability())",
                  ATEN_CPU_CAPABILITY="default")
    assert out.stdout.strip() == ("AVX2" if CAN_PIN else "DEFAULT")


def test_training_is_bitwise_that_of_a_process_pinned_from_outside():
    """Importing llmbook after torch (as a notebook's second cell does) gives the same weights as
    setting the variables before Python starts; another kernel ISA gives other weights, so the
    comparison can tell them apart."""
    via_import = _python(TRAIN.format(before="import llmbook")).stdout.split()
    from_outside = _python(TRAIN.format(before="torch.set_num_threads(1)"), LLMBOOK_NUMERICS="native",
                           **numerics.wanted_pins()).stdout.split()
    assert via_import == from_outside
    if CAN_PIN:
        assert via_import[0] == "AVX2"
        generic = _python(TRAIN.format(before="torch.set_num_threads(1)"), LLMBOOK_NUMERICS="native",
                          ATEN_CPU_CAPABILITY="default").stdout.split()
        assert generic[0] == "DEFAULT" and generic[1] != via_import[1], "the ISA no longer changes the weights"


def test_importing_llmbook_too_late_warns():
    out = _python("import warnings, torch; warnings.simplefilter('always'); torch.ones(4).exp(); import llmbook",
                  ATEN_CPU_CAPABILITY="default")
    if CAN_PIN:
        assert "already computed with its DEFAULT kernels" in out.stderr, out.stderr
        assert "import llmbook" in out.stderr
    else:
        assert "already computed" not in out.stderr


def test_opting_out_leaves_torch_alone():
    out = _python("import json, os, llmbook; print(json.dumps([os.environ.get('ATEN_CPU_CAPABILITY'), "
                  "llmbook.numerics.describe()['pinned']]))", LLMBOOK_NUMERICS="native")
    assert json.loads(out.stdout) == [None, False]


def _record_problem(path: Path, metadata: dict) -> str | None:
    record = metadata.get("llmbook", {}).get("numerics")
    fix = f"re-execute it with `python tools/execute_notebook.py {path.relative_to(ROOT)}`"
    if record is None:
        return f"{path.name} records no llmbook.numerics: its outputs were not stored by the tool; {fix}"
    if not record.get("pinned") or record.get("cpu_capability") != "AVX2" or record.get("threads") != 1:
        return f"{path.name} was executed off the pinned numerical path ({record}); {fix}"
    if record.get("torch") != TORCH_PIN:
        return f"{path.name} was executed with torch {record.get('torch')}, constraints.txt pins {TORCH_PIN}; {fix}"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENT, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_notebook_outputs_were_made_on_the_pinned_path(path):
    problem = _record_problem(path, nbformat.read(path, as_version=4).metadata)
    assert problem is None, problem


@pytest.mark.parametrize("record, expected", [
    (None, "records no llmbook.numerics"),
    ({"pinned": True, "cpu_capability": "AVX2", "threads": 1, "torch": "2.0.0"}, "torch 2.0.0"),
    ({"pinned": False, "cpu_capability": "AVX512", "threads": 2, "torch": TORCH_PIN}, "off the pinned"),
])
def test_the_record_check_catches_a_wrong_torch_and_a_missing_pin(record, expected):
    metadata = {"llmbook": {} if record is None else {"numerics": record}}
    problem = _record_problem(NOTEBOOKS[0], metadata)
    assert problem is not None and expected in problem, problem
    assert "python tools/execute_notebook.py book/getting_started.ipynb" in problem


def test_the_student_edition_keeps_the_record(tmp_path):
    spec = importlib.util.spec_from_file_location("make_student_edition", ROOT / "tools" / "make_student_edition.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    source = ROOT / "chapters" / "03_attention.ipynb"
    tool.main([str(source.relative_to(ROOT)), "--out", str(tmp_path)])
    student = nbformat.read(tmp_path / "chapters" / source.name, as_version=4)
    original = nbformat.read(source, as_version=4)
    assert student.metadata["llmbook"] == original.metadata["llmbook"]
