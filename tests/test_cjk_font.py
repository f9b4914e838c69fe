"""The shipped font draws Chinese in matplotlib figures (llmbook.viz.fonts)."""
import hashlib
import json
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from fontTools.ttLib import TTFont
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmbook import corpora, viz
from llmbook.viz.fonts import FAMILY, has_cjk

matplotlib.use("Agg")
FONTS = Path(viz.cjk_font_path()).parent


def draw(text: str) -> tuple[np.ndarray, list[str]]:
    """The pixels of text drawn alone on a small canvas, and the warnings raised while drawing."""
    figure = Figure(figsize=(1, 1), dpi=50)
    figure.text(0.5, 0.5, text, fontsize=30, ha="center", va="center")
    canvas = FigureCanvasAgg(figure)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy(), [str(w.message) for w in caught]


def test_files_are_the_recorded_ones():
    record = json.loads((FONTS / "record.json").read_text(encoding="utf-8"))
    for name, digest in record["files"].items():
        assert hashlib.sha256((FONTS / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (FONTS / "LICENSE").read_text(encoding="utf-8")


def test_default_font_draws_chinese_as_identical_boxes():
    """Without the shipped font every missing character becomes the same box (the problem solved here)."""
    with matplotlib.rc_context({"font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"]}):
        spring, dawn = draw("春"), draw("晓")
    assert np.array_equal(spring[0], dawn[0])
    assert any("missing from font" in message for message in spring[1])


def test_use_cjk_font_draws_each_character_with_its_own_glyph():
    with matplotlib.rc_context({"font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"]}):
        assert viz.use_cjk_font() == FAMILY
        assert viz.use_cjk_font() == FAMILY  # a second call changes nothing
        assert matplotlib.rcParams["font.family"] == ["sans-serif", FAMILY]
        (spring, spring_warnings), (dawn, _) = draw("春"), draw("晓")
        latin_after, _ = draw("Ab")
    assert spring_warnings == []
    assert not np.array_equal(spring, dawn)
    # Latin text keeps DejaVu Sans: the fallback only supplies what DejaVu lacks
    with matplotlib.rc_context({"font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"]}):
        latin_before, _ = draw("Ab")
    assert np.array_equal(latin_before, latin_after)


def test_every_tang_character_of_the_basic_plane_has_a_glyph():
    """What the font lacks are only rare characters of the CJK extensions B and later (U+20000 up)."""
    cmap = TTFont(viz.cjk_font_path()).getBestCmap()
    characters = {ch for split in ("train", "validation", "test") for ch in corpora.tang_text(split) if has_cjk(ch)}
    missing = {ch for ch in characters if ord(ch) not in cmap}
    assert all(ord(ch) >= 0x20000 for ch in missing)
    assert len(missing) < 0.06 * len(characters)


@pytest.mark.parametrize("text, expected", [("abc ␣↵", False), ("春眠", True), ("ＡＢ", True), ("𪿫", True)])
def test_has_cjk(text, expected):
    assert has_cjk(text) is expected


def test_heatmap_with_chinese_labels_switches_the_font_on():
    import torch

    with matplotlib.rc_context({"font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"]}):
        ax = viz.plot_attention(torch.full((2, 2), 0.5), ["床前", "明月"])
        assert FAMILY in matplotlib.rcParams["font.family"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ax.figure.canvas.draw()
