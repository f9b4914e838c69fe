"""A font with Chinese glyphs for matplotlib, shipped in the package.

matplotlib's default font, DejaVu Sans, has no Chinese characters: a figure that labels a Tang poem or
a Chinese token draws empty boxes and warns "Glyph ... missing from font(s) DejaVu Sans". The package
carries Droid Sans Fallback (Apache 2.0, from Debian's ``fonts-droid-fallback``; see
``fonts/record.json`` and ``tools/vendor_cjk_font.py``). `use_cjk_font` registers it and appends it
to matplotlib's list of font families, where it acts as a *fallback*: matplotlib draws each glyph
with the first family in the list that has it, so Latin text keeps DejaVu Sans and only what DejaVu
lacks comes from the shipped font. Nothing is installed on the machine and nothing is downloaded.

Used by the heatmaps and bar charts of `llmbook.viz` whenever a label is Chinese (no chapter draws
Chinese in a figure yet; chapters 2 and 6 print their Chinese text).
Used in the front matter, on the page Data and models.
"""
from __future__ import annotations

from importlib import resources

FONT_FILE = "DroidSansFallbackFull.ttf"
FAMILY = "Droid Sans Fallback"


def cjk_font_path() -> str:
    """Where the shipped font file is."""
    return str(resources.files("llmbook.viz") / "fonts" / FONT_FILE)


def has_cjk(text: str) -> bool:
    """Whether text holds a character from the CJK blocks (U+2E80 and above, below the surrogates)."""
    return any("\u2e80" <= ch <= "\ud7ff" or "\uf900" <= ch <= "\uffef" or ch >= "\U00020000" for ch in text)


def use_cjk_font() -> str:
    """Make matplotlib draw Chinese with the shipped font; return the family name.

    Safe to call many times: the font is registered once, and the family is appended to
    ``rcParams["font.family"]`` only when missing (a style or ``rcdefaults()`` that resets the list is
    repaired by calling again). Text drawn with an explicit family (``fontfamily="monospace"``) does
    not see the fallback.
    """
    import matplotlib
    from matplotlib import font_manager

    if FAMILY not in {font.name for font in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(cjk_font_path())
    # A generic name such as "sans-serif" stands for one font (the first of rcParams["font.sans-serif"]
    # that is installed); only the entries of font.family itself are tried glyph by glyph.
    families = list(matplotlib.rcParams["font.family"])
    if FAMILY not in families:
        matplotlib.rcParams["font.family"] = [*families, FAMILY]
    return FAMILY
