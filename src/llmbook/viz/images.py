"""Pictures as PNG bytes and as inline HTML <img> tags, for widgets and saved notebooks.

Used in chapter 1, Background: from n-grams to large language models.
"""
from __future__ import annotations

import base64
import html
import io


def figure_png(draw, figsize: tuple[float, float], dpi: int = 80) -> bytes:
    """PNG bytes of a one-Axes figure of size figsize (inches) drawn by draw(ax), off-screen.

    A bare Figure (not pyplot) is never registered with the notebook backend, so it is not
    displayed a second time at the end of the cell and needs no closing.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    draw(fig.add_subplot())
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_img_tag(png: bytes, alt: str) -> str:
    """An HTML <img> showing png inline (a data: URI), with alt text for screen readers."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'
