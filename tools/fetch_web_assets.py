"""Serve the website's third-party JavaScript from the site itself, so the book works offline.

Two jobs, one file, so the list of vendored files and the addresses that point at them live together:

1. Run as a script (``make book-assets``)::

       python tools/fetch_web_assets.py

   installs the exact versions pinned in ``package.json`` / ``package-lock.json`` from the npm
   registry (``npm ci`` in ``_build/web_assets/npm``, so the working tree stays clean) and copies
   the few files the site needs to ``_build/web_assets/site/vendor/``. ``_config.yml`` lists that
   folder in ``html_extra_path``, so Sphinx copies it to ``_build/html/vendor/``:

   ==========================================  =============================================
   vendor/mathjax/                              MathJax 3 (``mathjax_path``)
   vendor/requirejs/require.js                  require.js (ipywidgets embed)
   vendor/jupyter-widgets/html-manager/         ipywidgets 8 HTML embed manager (``nb_ipywidgets_js``)
   vendor/fonts/DroidSansFallbackFull.ttf       the package's CJK font (not from npm: copied from
                                                ``src/llmbook/viz/fonts``), for Chinese text
   ==========================================  =============================================

   ``book/_static/llmbook.css`` puts that font first in the page's font lists, for CJK code points
   only (``unicode-range``), behind the reader's own CJK font where one is installed (``local()``):
   a browser downloads it only for a page with Chinese characters on a computer without a CJK font,
   where the glossary and chapters 2 and 6 would otherwise show empty boxes.

   bertviz's views need nothing from here: llmbook.viz inlines their d3 and jQuery into each output
   (src/llmbook/viz/bertviz_html.py), so they also draw in a JupyterLab with no network.

   The files are not under ``_static/``: Jupyter Book adds every ``.js`` found in a ``_static``
   folder at the book root to every page, which would load hundreds of MathJax modules in the
   wrong order.

2. Loaded as a Sphinx extension (``_config.yml``: ``sphinx: local_extensions``), it points the
   "Open in Colab" badge image at a copy in ``_static/`` (``IMAGE_TO_LOCAL``). Any other remote
   image, or any remote script, stylesheet, frame or require.js path in a cell's output, is reported
   as a warning, which ``jupyter-book build -W`` turns into an error: the site must not depend on a CDN.

   It also removes the duplicate inline scripts that Sphinx 7.4 writes for sphinx-thebe and
   sphinx-togglebutton (see ``_drop_duplicate_scripts``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "_build" / "web_assets"
# What Sphinx copies into the site root (must match html_extra_path in _config.yml).
SITE_DIR = DEST / "site"
VENDOR = "vendor"

# (package, files or folder inside the package, folder under vendor/)
COPIES = [
    ("mathjax", "es5", "mathjax"),
    ("requirejs", "require.js", "requirejs"),
    ("@jupyter-widgets/html-manager", "dist/embed-amd.js", "jupyter-widgets/html-manager"),
    # The embed manager's Font Awesome fonts; webpack names them by hash, next to embed-amd.js.
    ("@jupyter-widgets/html-manager", "dist/*.woff2", "jupyter-widgets/html-manager"),
    ("@jupyter-widgets/html-manager", "dist/*.woff", "jupyter-widgets/html-manager"),
    ("@jupyter-widgets/html-manager", "dist/*.ttf", "jupyter-widgets/html-manager"),
    ("@jupyter-widgets/html-manager", "dist/*.eot", "jupyter-widgets/html-manager"),
    ("@jupyter-widgets/html-manager", "dist/*.svg", "jupyter-widgets/html-manager"),
]
# MathJax files the site never loads: other combined builds, and latest.js (it fetches from a CDN).
MATHJAX_SKIP = (
    "latest.js", "node-main.js", "mml-chtml.js", "mml-svg.js", "tex-svg.js", "tex-svg-full.js",
    "tex-mml-svg.js", "tex-chtml-full.js", "tex-chtml-full-speech.js", "*.map",
)

# Remote images in the book's Markdown -> file in the site's _static/ (from book/_static/).
# The "Open in Colab" badge at the top of each chapter works on GitHub and Colab as it is;
# on the website it is served from the site.
IMAGE_TO_LOCAL = {
    "https://colab.research.google.com/assets/colab-badge.svg": "colab-badge.svg",
}

# What an output would load from elsewhere.
REMOTE_LOAD = re.compile(
    r"""<(?:script|img|iframe|embed|source|audio|video)\b[^>]*?\bsrc\s*=\s*["']?(?:https?:)?//[^"'\s>]+"""
    r"""|<link\b[^>]*?\bhref\s*=\s*["']?(?:https?:)?//[^"'\s>]+"""
    r"""|@import\s+(?:url\()?\s*["']?(?:https?:)?//[^"'\s)]+""",
    re.IGNORECASE,
)
REQUIRE_CONFIG = re.compile(r"require(?:js)?\.config\s*\((.*?)\)\s*;?", re.DOTALL)
URL = re.compile(r"""["'](?:https?:)?//[^"']+["']""")


def remote_loads(html: str) -> list[str]:
    """The remote resources a piece of output HTML would still load."""
    found = [m.group(0) for m in REMOTE_LOAD.finditer(html)]
    for config in REQUIRE_CONFIG.finditer(html):
        found += [m.group(0) for m in URL.finditer(config.group(1))]
    return found


# ----------------------------------------------------------------------------- fetching


def _run_npm_ci(npm_dir: Path, force: bool) -> None:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("fetch_web_assets: `npm` not found. Install Node.js (e.g. apt-get install -y npm).")
    lock = (ROOT / "package-lock.json").read_bytes()
    stamp = npm_dir / ".package-lock.sha256"
    digest = hashlib.sha256((ROOT / "package.json").read_bytes() + lock).hexdigest()
    if not force and stamp.is_file() and stamp.read_text() == digest and (npm_dir / "node_modules").is_dir():
        print(f"fetch_web_assets: npm packages up to date in {npm_dir.relative_to(ROOT)}")
        return
    npm_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "package.json", npm_dir / "package.json")
    shutil.copy2(ROOT / "package-lock.json", npm_dir / "package-lock.json")
    # --ignore-scripts: nothing here needs to build; the packages ship their dist files.
    cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    print("fetch_web_assets:", " ".join(cmd[1:]), "in", npm_dir.relative_to(ROOT))
    subprocess.run(cmd, cwd=npm_dir, check=True)
    stamp.write_text(digest)


def _copy(node_modules: Path, vendor: Path) -> list[str]:
    versions = []
    for package, source, target in COPIES:
        package_dir = node_modules / package
        out = vendor / target
        out.mkdir(parents=True, exist_ok=True)
        matches = sorted(package_dir.glob(source))
        if not matches:
            sys.exit(f"fetch_web_assets: {package}/{source} not found; is package-lock.json up to date?")
        for path in matches:
            if path.is_dir():
                shutil.copytree(path, out, ignore=shutil.ignore_patterns(*MATHJAX_SKIP), dirs_exist_ok=True)
            else:
                shutil.copy2(path, out / path.name)
        for licence in ("LICENSE", "LICENSE.txt", "LICENSE.md"):
            if (package_dir / licence).is_file():
                shutil.copy2(package_dir / licence, out / licence)
        version = json.loads((package_dir / "package.json").read_text())["version"]
        entry = f"{package}@{version} -> {VENDOR}/{target}/"
        if entry not in versions:
            versions.append(entry)
    return versions


# The CJK font the package ships for matplotlib (llmbook.viz.fonts), served to the website too.
CJK_FONT = ROOT / "src" / "llmbook" / "viz" / "fonts" / "DroidSansFallbackFull.ttf"


def _copy_cjk_font(vendor: Path) -> str:
    out = vendor / "fonts"
    out.mkdir(parents=True, exist_ok=True)
    for path in (CJK_FONT, CJK_FONT.with_name("LICENSE")):
        shutil.copy2(path, out / path.name)
    return f"Droid Sans Fallback (src/llmbook/viz/fonts, see its record.json) -> {VENDOR}/fonts/"


def fetch(dest: Path = DEST, force: bool = False) -> Path:
    """Install the pinned npm packages and copy the site's files to ``dest/site/vendor``."""
    npm_dir = dest / "npm"
    _run_npm_ci(npm_dir, force)
    vendor = dest / "site" / VENDOR
    if vendor.exists():
        shutil.rmtree(vendor)
    versions = _copy(npm_dir / "node_modules", vendor) + [_copy_cjk_font(vendor)]
    (vendor / "VERSIONS.txt").write_text(
        "Third-party files served by this site, from the npm registry (see package-lock.json):\n"
        + "\n".join(versions) + "\n"
    )
    print("fetch_web_assets: wrote", vendor.relative_to(ROOT) if vendor.is_relative_to(ROOT) else vendor)
    print("  " + "\n  ".join(versions))
    return vendor


# ----------------------------------------------------------------------------- Sphinx extension


def _check_assets(app) -> None:
    from sphinx.errors import ExtensionError

    if getattr(app.builder, "format", None) != "html":
        return
    # (Sphinx drops an html_extra_path entry that does not exist, so check the files first.)
    if not all((SITE_DIR / VENDOR / f).is_file() for f in ("mathjax/tex-mml-chtml.js", f"fonts/{CJK_FONT.name}")):
        raise ExtensionError(
            f"the website's JavaScript is missing from {SITE_DIR.relative_to(ROOT)}: "
            "run `make book-assets` (python tools/fetch_web_assets.py) before building the book"
        )
    extra = [(Path(app.confdir) / p).resolve() for p in app.config.html_extra_path]
    if SITE_DIR.resolve() not in extra:
        raise ExtensionError(f"html_extra_path must include {SITE_DIR.relative_to(ROOT)} "
                             "(see tools/fetch_web_assets.py)")


def _rewrite_outputs(app, doctree, docname: str) -> None:
    from docutils import nodes
    from sphinx.util import logging
    from sphinx.util.osutil import relative_uri

    if getattr(app.builder, "format", None) != "html":
        return
    logger = logging.getLogger(__name__)
    # e.g. "../" for chapters/03_attention.html, "" for intro.html
    prefix = relative_uri(app.builder.get_target_uri(docname), f"{VENDOR}/x")[: -len(f"{VENDOR}/x")]
    for image in doctree.findall(nodes.image):
        uri = image.get("uri", "")
        if uri in IMAGE_TO_LOCAL:
            image["uri"] = f"{prefix}_static/{IMAGE_TO_LOCAL[uri]}"
        elif "://" in uri or uri.startswith("//"):
            logger.warning(
                f"the image {uri!r} is loaded from the network; the website must work offline: "
                "put the file in the repository (or add it to IMAGE_TO_LOCAL in tools/fetch_web_assets.py)",
                location=image, type="llmbook", subtype="remote_asset",
            )
    for node in doctree.findall(nodes.raw):
        if "html" not in node.get("format", "").split():
            continue
        for remote in remote_loads(node.astext()):
            logger.warning(
                f"an output loads {remote[:120]!r} from the network; the website must work offline: "
                "ship the file with the output (as llmbook.viz does for bertviz) or drop it",
                location=node, type="llmbook", subtype="remote_asset",
            )


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """Write each inline script once.

    sphinx-thebe and sphinx-togglebutton register inline scripts as ``add_js_file(None, body=...)``
    after the builder has started; Sphinx 7.4 then lists them twice, once with filename None and
    once with "". Twice is an error for sphinx-thebe's ``const THEBE_JS_URL = ...``
    ("Identifier 'THEBE_JS_URL' has already been declared") on every page.
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        filename = getattr(js, "filename", js) or ""
        attributes = tuple(sorted(getattr(js, "attributes", {}).items()))
        key = (str(filename), getattr(js, "priority", None), attributes)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # the builder restores its own list before the next page


def setup(app):
    app.connect("builder-inited", _check_assets)
    app.connect("doctree-resolved", _rewrite_outputs)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEST, help=f"output folder (default: {DEST.relative_to(ROOT)})")
    parser.add_argument("--force", action="store_true", help="run `npm ci` even if package-lock.json is unchanged")
    args = parser.parse_args(argv)
    fetch(args.dest.resolve(), force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
