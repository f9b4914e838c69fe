"""Values against number formats: a histogram of log2 |values| over a format's range, and an
explorer widget (chapter 8).

Used in chapter 8, Scaling and unit scaling.
"""
from __future__ import annotations

import html

import torch

from ..precision import format_limits_log2, get_format, log2_magnitudes, range_report
from .images import figure_png, png_img_tag


def plot_range_histogram(values, fmt=None, ax=None, label=None, shift=0, title=None, bins=None,
                         legend="upper left"):
    """Histogram of log2 |values| (the nonzero finite entries), against the range of a number format.

    values: a tensor (any shape); fmt: a llmbook.precision format name ("fp16", "bf16", "fp8_e4m3",
    "fp8_e5m2", "fp32") or None for no range; shift: multiply the values by 2^shift first (what a
    loss scale does). The format's normal range is shaded grey and its subnormal range hatched;
    values left of both round to 0, values right of them overflow. legend: where the legend goes (a
    matplotlib loc such as "upper left", or "best"), or None for none. Returns the matplotlib Axes.
    Raises ValueError if values has no nonzero finite entry or fmt is unknown.
    """
    import matplotlib.pyplot as plt

    logs = log2_magnitudes(torch.as_tensor(values)) + shift
    if logs.numel() == 0:
        raise ValueError("plot_range_histogram needs at least one nonzero finite value")
    limits = format_limits_log2(fmt) if fmt is not None else None
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    lo, hi = logs.min().item(), logs.max().item()
    if limits is not None:
        lo, hi = min(lo, limits[0] - 2), max(hi, min(limits[2] + 2, hi + 40))
        ax.axvspan(limits[0], limits[1], facecolor="none", edgecolor="0.55", hatch="///", linewidth=0,
                   label=f"{fmt}: subnormal")
        ax.axvspan(limits[1], limits[2], color="0.85", label=f"{fmt}: normal")
        for x in limits:
            ax.axvline(x, color="0.3", linewidth=0.8, linestyle=":")
    edges = bins if bins is not None else torch.linspace(logs.min().item() - 0.5, logs.max().item() + 0.5, 60).tolist()
    ax.hist(logs.tolist(), bins=edges, color="tab:blue", alpha=0.85, label=label)
    ax.set_xlim(lo - 1, hi + 1)
    ax.set_xlabel("log2 |value|" + (f" (values × 2^{shift})" if shift else ""))
    ax.set_ylabel("count")
    if title is not None:
        ax.set_title(title)
    if legend is not None:
        ax.legend(fontsize=8, loc=legend)
    return ax


def _range_png(values, fmt, shift, title) -> bytes:
    """plot_range_histogram's picture as PNG bytes."""
    return figure_png(lambda ax: plot_range_histogram(values, fmt, ax=ax, shift=shift, title=title), (7.0, 3.4))


def range_explorer(tensors: dict, fmt: str = "fp16", shift: int = 0,
                   formats=("fp16", "bf16", "fp8_e4m3", "fp8_e5m2")):
    """Interactive: pick a tensor, a number format and a power-of-two scale; see which values fit.

    tensors: {label: tensor}, e.g. the gradients of two models. Shows the histogram of log2 |values|
    against the format's range and a status line with the fractions that underflow, are subnormal,
    normal, or overflow (llmbook.precision.range_report). Returns an ipywidgets VBox (the picture is
    an <img> with alt text in an HTML widget, kept in saved notebooks). Raises ValueError for an empty
    dict or unknown formats.
    """
    import ipywidgets as widgets

    if not tensors:
        raise ValueError("range_explorer needs at least one tensor: {label: tensor}")
    for name in (fmt, *formats):
        get_format(name)
    if fmt not in formats:
        formats = (fmt, *formats)
    tensors = {str(k): torch.as_tensor(v).detach().float().cpu() for k, v in tensors.items()}
    which = widgets.Dropdown(options=list(tensors), description="tensor", layout=widgets.Layout(width="60%"))
    fmt_box = widgets.Dropdown(options=list(formats), value=fmt, description="format")
    shift_slider = widgets.IntSlider(value=shift, min=-24, max=24, description="× 2^k")
    status = widgets.HTML()
    image = widgets.HTML()  # an <img> with alt text (an Image widget cannot have one)

    def redraw(_change=None):
        values = tensors[which.value]
        try:
            report = range_report(values * 2.0 ** shift_slider.value, fmt_box.value)
            image.value = png_img_tag(
                _range_png(values, fmt_box.value, shift_slider.value, f"{which.value} in {fmt_box.value}"),
                f"Histogram of log2 of the magnitudes of {which.value} scaled by 2^{shift_slider.value}, "
                f"with the normal and subnormal ranges of {fmt_box.value} shaded")
            status.value = ", ".join(f"{key} {100 * v:.1f}%" for key, v in report.items())
        except ValueError as err:  # e.g. a tensor of zeros
            status.value = f"<span style='color:#b00'>cannot show this tensor: {html.escape(str(err))}</span>"

    for control in (which, fmt_box, shift_slider):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([which, widgets.HBox([fmt_box, shift_slider]), status, image])
