"""The value-range histogram and explorer of chapter 8 draw what they are given and report fractions."""
import base64
import re

import matplotlib.pyplot as plt
import pytest
import torch

from llmbook import viz

pytestmark = pytest.mark.usefixtures("close_figures")


def test_plot_range_histogram_draws_the_format_and_the_values():
    fig, ax = plt.subplots()
    values = torch.randn(1000) * 1e-3
    viz.plot_range_histogram(values, "fp16", ax=ax, label="gradients", shift=4, title="t")
    assert ax.get_title() == "t" and "2^4" in ax.get_xlabel()
    assert len(ax.patches) > 10  # two spans and the bars
    plt.close(fig)
    with pytest.raises(ValueError, match="nonzero"):
        viz.plot_range_histogram(torch.zeros(5), "fp16")
    with pytest.raises(ValueError, match="unknown number format"):
        viz.plot_range_histogram(values, "fp12")


def test_range_explorer_redraws_and_reports_fractions():
    explorer = viz.range_explorer({"small": torch.full((100,), 1e-9), "unit": torch.randn(100)}, fmt="fp16")
    which, row, status, image = explorer.children
    fmt, shift = row.children
    assert status.value.startswith("underflow 100.0%")
    first = image.value  # an <img> with alt text, the PNG inline
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', first).group(1))
    assert png[:4] == b"\x89PNG"
    assert 'alt="Histogram of log2 of the magnitudes of small scaled by 2^0' in first
    shift.value = 20  # 1e-9 * 2^20 = 1e-3: now normal in fp16
    assert "normal 100.0%" in status.value and image.value != first
    which.value = "unit"
    assert "overflow 0.0%" not in status.value  # most N(0, 1) values times 2^20 overflow fp16
    shift.value = 0
    fmt.value = "fp8_e4m3"
    assert "overflow 0.0%" in status.value
    with pytest.raises(ValueError, match="at least one tensor"):
        viz.range_explorer({})
    with pytest.raises(ValueError, match="unknown number format"):
        viz.range_explorer({"a": torch.ones(2)}, fmt="fp5")


def test_range_histogram_legend_is_readable_and_can_be_left_out():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmbook.viz import plot_range_histogram

    values = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    fig, (ax1, ax2) = plt.subplots(1, 2)
    plot_range_histogram(values, "fp8_e4m3", ax=ax1)
    plot_range_histogram(values, "fp8_e4m3", ax=ax2, legend=None)
    texts = ax1.get_legend().get_texts()
    assert [t.get_text() for t in texts] == ["fp8_e4m3: subnormal", "fp8_e4m3: normal"]
    assert min(t.get_fontsize() for t in texts) >= 8  # the book's smallest legend size
    assert ax2.get_legend() is None
    plt.close(fig)
