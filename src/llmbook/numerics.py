"""The pinned numerical path: the same CPU kernels wherever the book's outputs are made or compared.

Training turns last-bit differences between floating-point kernels into different weights, samples
and printed numbers. On x86-64, PyTorch picks its kernels by what the processor offers and by how
many threads it has: ATen's vectorised kernels (AVX2 or AVX-512), MKL's matrix products and oneDNN's
JIT kernels and NumPy's ufuncs each have several code paths, and a sum split over two threads rounds
differently from one. So a notebook executed on one machine printed other numbers on another.

``pin()`` fixes every one of those choices: the AVX2 kernels (which every x86-64 processor since
2013-2015 has), MKL's vendor-independent code path, and one thread. ``import llmbook`` calls it
before anything else, so each entry point reaches it by importing the package: a notebook's first
cell, ``tools/execute_notebook.py``, nbval's kernels (through that first cell), ``python -m
llmbook.experiments.<name>`` and the tests. The variables take effect because each library reads
them lazily, at its first computation, not at ``import torch``; ``pin()`` warns when that first
computation already happened.

Cost, measured on a 2-core AMD EPYC: MKL's vendor-independent path makes a training step of the
book's small GPTs 1.6 to 2.4 times slower and a whole chapter 15-25 % slower (chapter 5: 52 s of CPU
time instead of 41 s). Set ``LLMBOOK_NUMERICS=native`` before importing llmbook to leave PyTorch's
own choices (the benchmarks in ``bench/`` do this).

Used in every chapter.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings

# Environment variables each library reads at its first computation.
ISA_PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorised kernels (default: the widest the CPU has)
    # MKL's matrix products: the one code path MKL runs alike on Intel and AMD processors. Its AVX2
    # branch would be faster, but MKL takes it on Intel processors only (on AMD it refuses the
    # setting and runs its own path), so Intel and AMD machines would print different numbers.
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (mkldnn) JIT kernels
    # NumPy's AVX-512 versions of exp, log, ... round differently from its AVX2 ones (names of
    # NumPy 1.x and 2.x; a name this NumPy does not know is ignored)
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR X86_V4",
}
THREAD_PINS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
OPT_OUT = "LLMBOOK_NUMERICS"  # "native": do not pin


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def wanted_pins() -> dict:
    """The variables pin() sets on this machine (the ISA pins only mean something on x86-64)."""
    return {**(ISA_PINS if is_x86_64() else {}), **THREAD_PINS}


def pin() -> bool:
    """Pin kernels and threads; return False if the user opted out with LLMBOOK_NUMERICS=native."""
    if os.environ.get(OPT_OUT, "").lower() == "native":
        return False
    numpy_was_loaded = "numpy" in sys.modules
    os.environ.update(wanted_pins())
    import torch

    torch.set_num_threads(1)
    capability = torch.backends.cpu.get_cpu_capability()
    if is_x86_64() and capability != "AVX2" and _cpu_has_avx2():
        warnings.warn(f"torch already computed with its {capability} kernels before llmbook was imported, "
                      "so the book's numbers may not reproduce: restart the kernel and import llmbook "
                      "before running anything with torch", RuntimeWarning, stacklevel=2)
    if is_x86_64() and numpy_was_loaded and _numpy_uses_avx512():
        warnings.warn("NumPy was imported before llmbook and uses its AVX-512 kernels, so the book's numbers "
                      "may not reproduce: restart the kernel and import llmbook first", RuntimeWarning, stacklevel=2)
    return True


def _numpy_uses_avx512() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX") or __cpu_features__.get("X86_V4"))


def _cpu_has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:  # not Linux: trust torch's own report
        return True


def cpuinfo_field(name: str) -> str:
    """The value of field `name` ("vendor_id", "model name") in /proc/cpuinfo; off Linux, or when the
    field is missing, what platform.processor() says, else "unknown"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict:
    """What is in force now: torch and NumPy versions, kernel ISA, threads, the pins, and whether
    outputs compare.

    ``pinned`` is True when every pin holds, the AVX2 kernels are in use and one thread runs:
    the condition under which the book's committed outputs are produced and compared.
    """
    import torch

    pins = {name: os.environ.get(name) for name in wanted_pins()}
    capability = torch.backends.cpu.get_cpu_capability()
    import numpy

    pinned = (is_x86_64() and capability == "AVX2" and torch.get_num_threads() == 1 and not _numpy_uses_avx512()
              and all(pins[k] == v for k, v in wanted_pins().items()))
    return {"torch": torch.__version__.split("+")[0], "numpy": numpy.__version__, "machine": platform.machine(),
            "cpu_vendor": cpuinfo_field("vendor_id"), "cpu_capability": capability,
            "threads": torch.get_num_threads(), "pins": pins, "pinned": pinned}


def can_pin() -> bool:
    """True where the pin can hold (x86-64 with AVX2): there the book's outputs must match exactly."""
    return is_x86_64() and _cpu_has_avx2()


COMPARED_ONLY_HERE = ("notebook outputs are compared only on x86-64 processors with AVX2, where "
                      "llmbook.numerics pins the kernels the book's outputs were made with; on this "
                      "machine every cell still runs, but its outputs are not compared")

