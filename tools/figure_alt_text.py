"""Sphinx extension: give every figure that a notebook cell draws the alt text of its caption.

myst-nb writes a cell's PNG output as an image whose alt text is its own file name, which tells a
screen-reader user nothing. The book's convention is that the markdown right after a figure's cell
starts with "**Figure N.k.**" and describes the figure, so that paragraph becomes the alt text.
A notebook image with no such caption after it is reported as a warning (an error under -W), so a
figure cannot ship without a description.
"""
from __future__ import annotations

import re

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)
CAPTION = re.compile(r"^Figure \d+\.\d+\.")
MAX_ALT = 300  # characters; a screen reader reads all of it, the caption below has the rest


def _cell(node: nodes.Node) -> nodes.Element | None:
    """The notebook cell container holding node, or None for an image outside a cell output."""
    while node is not None:
        if isinstance(node, nodes.container) and "cell" in node.get("classes", []):
            return node
        node = node.parent
    return None


def _caption_after(cell: nodes.Element) -> str | None:
    """The text of the first "Figure N.k." paragraph after cell, before the next code cell."""
    for sibling in cell.findall(include_self=False, descend=False, siblings=True):
        if isinstance(sibling, nodes.container) and "cell" in sibling.get("classes", []):
            return None
        if isinstance(sibling, nodes.paragraph):
            text = " ".join(sibling.astext().split())
            return text if CAPTION.match(text) else None
    return None


def _shorten(text: str) -> str:
    if len(text) <= MAX_ALT:
        return text
    cut = text[:MAX_ALT].rsplit(" ", 1)[0]
    return cut + " …"


def _add_alt_text(app, doctree, docname) -> None:
    for image in doctree.findall(nodes.image):
        cell = _cell(image)
        if cell is None or image.get("alt") not in (None, "", image.get("uri")):
            continue  # not a cell output, or its alt text was written by hand
        caption = _caption_after(cell)
        if caption is None:
            logger.warning("a figure has no caption: the markdown after its cell should start with "
                           "'**Figure N.k.**' and describe it (it becomes the image's alt text)",
                           location=image)
            continue
        image["alt"] = _shorten(caption)


def setup(app):
    app.connect("doctree-resolved", _add_alt_text)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
