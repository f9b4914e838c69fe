"""Sphinx extension: a link from a page to a file of the package opens its highlighted source.

The chapters link to the code they use as plain relative links to the file, such as
``[causal_mask](../src/llmbook/attention.py)`` (written by tools/code_behind.py), which JupyterLab
and GitHub open as the file. On the website MyST would make such a link a download of the .py file;
here it becomes a link to the page sphinx.ext.viewcode writes for that module
(``_modules/llmbook/attention.html``), at the anchor of the function or class the link text names
(``#causal_mask``). A link text naming the module itself leads to the top of the page.

A link text that names nothing the module defines is reported (an error under -W): the chapter's
section is out of date, and ``python tools/code_behind.py`` rewrites it.
"""
from __future__ import annotations

import posixpath
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.pycode import ModuleAnalyzer
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)
SRC = Path(__file__).resolve().parent.parent / "src"
VIEWCODE_DIR = "_modules"  # sphinx.ext.viewcode's OUTPUT_DIRNAME


def module_name(path: Path) -> str:
    """src/llmbook/checks/attention.py -> llmbook.checks.attention; a package's __init__.py -> the package."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class SourceLinks(SphinxTransform):
    default_priority = 500

    def apply(self) -> None:
        for node in list(self.document.findall(addnodes.download_reference)):
            _, target = self.env.relfn2path(node["reftarget"], self.env.docname)
            path = Path(target).resolve()
            if path.suffix != ".py" or not path.is_relative_to(SRC):
                continue
            module, name = module_name(path), node.astext().strip()
            anchor = "" if name == module else name
            if anchor and anchor not in ModuleAnalyzer.for_file(str(path), module).find_tags():
                logger.warning(f"the link to {name!r} names nothing that {module} defines "
                               "(run `python tools/code_behind.py` to rewrite the chapter's links)",
                               location=node)
            page = posixpath.join(VIEWCODE_DIR, *module.split(".")) + ".html"
            uri = posixpath.relpath(page, posixpath.dirname(self.env.docname) or ".")
            link = nodes.reference("", "", refuri=uri + (f"#{anchor}" if anchor else ""), internal=True)
            link += [child.deepcopy() for inline in node.children for child in inline.children]
            node.replace_self(link)


def setup(app):
    app.add_transform(SourceLinks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
