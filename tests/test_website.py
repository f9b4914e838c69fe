"""The built website works, offline, in a real browser.

Every page of ``_build/html`` is opened in headless Chromium, served from 127.0.0.1. A page fails if

- it asks for anything from another host (the site must work without internet), or any request fails;
- the console shows an error, or a script throws;
- TeX is left untypeset after MathJax has run (``$$``, ``\\(``, ``\\[``, ``$...\\cmd...$`` in the
  visible text), or MathJax reports a TeX error;
- a link to another page of the site (or to an anchor on it) leads nowhere: this covers the package
  reference and the highlighted source pages (_modules/), which are pages like any other;
- an image does not load, or has no alt text (a figure's alt text is its caption);
- an ipywidgets view or a bertviz view stays empty.

Every chapter links to the highlighted source of the code it uses, at the object's anchor.
Search must work offline, and the offline bundle (``make offline``) must open from disk (file://).

This test builds nothing: ``make test`` builds the site and the bundle first (``make offline``). Without a built site
the tests fail and say so. The browser is Debian's ``chromium`` (``make chromium``), driven by the
``playwright`` package; set ``CHROMIUM=/path/to/chrome`` to use another Chromium-based browser.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

pytestmark = pytest.mark.website

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
NOT_PAGES = {"genindex.html", "search.html"}
NOT_PAGE_DIRS = {"_sources", "_static", "_images", "vendor", "_downloads"}
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 30_000


def _is_redirect(path: Path) -> bool:
    """sphinx-external-toc writes index.html as a one-line redirect to the root page."""
    return 'http-equiv="Refresh"' in path.read_text(encoding="utf-8", errors="replace")[:2000]


def _pages() -> list[str]:
    if not SITE.is_dir():
        return []
    pages = []
    for path in sorted(SITE.rglob("*.html")):
        rel = path.relative_to(SITE)
        if rel.parts[0] in NOT_PAGE_DIRS or rel.as_posix() in NOT_PAGES or _is_redirect(path):
            continue
        pages.append(rel.as_posix())
    return pages


# When the site is not built, one placeholder keeps the test (and its clear failure) in the run.
PAGES = _pages() or ["(site not built)"]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        pytest.fail(
            f"the website is not built: {SITE.relative_to(ROOT)}/index.html does not exist. "
            "Build it first with `make html` (`make test` does this for you).",
            pytrace=False,
        )
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def base_url(site: Path):
    """Serve the site on 127.0.0.1 at a free port, in a background thread."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _chromium() -> str:
    candidates = [os.environ.get("CHROMIUM", "")] + [
        shutil.which(name) or "" for name in ("chromium", "chromium-browser", "google-chrome")
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "no Chromium found: install it with `make chromium` (Debian: apt-get install -y chromium) "
        "or set CHROMIUM=/path/to/chromium",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def browser(site: Path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the `playwright` package is missing: pip install playwright "
                    "(its bundled browsers are not needed)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One page, opened in a fresh browser context, with everything that went wrong on the way."""

    def __init__(self, browser, base_url: str, path: str):
        self.problems: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        host = urlsplit(base_url).netloc
        self.context.route("**/*", functools.partial(self._route, host))
        self.pending: dict = {}
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.pending.setdefault(id(request), request.url))
        self.page.on("requestfinished", lambda request: self.pending.pop(id(request), None))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)
        self.url = urljoin(base_url, path)
        self.page.goto(self.url, wait_until="load")

    def _route(self, host, route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).netloc == host:
            route.continue_()
        else:
            self.problems.append(f"request to another host (the site must work offline): {url}")
            route.abort("blockedbyclient")

    def _console(self, message):
        if message.type == "error" and "ERR_BLOCKED_BY_CLIENT" not in message.text:  # see _route
            self.problems.append(f"console error: {message.text} ({message.location.get('url', '')})")

    def _failed(self, request):
        self.pending.pop(id(request), None)
        if "ERR_BLOCKED_BY_CLIENT" not in (request.failure or ""):  # already reported by _route
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response):
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def settle(self):
        """Wait until no request has been in flight for half a second."""
        try:
            self.page.wait_for_load_state("networkidle")
        except Exception:
            still = ", ".join(sorted(set(self.pending.values()))) or "none seen"
            self.problems.append(f"the page never stopped loading; requests in flight: {still}")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, base_url):
    opened = []

    def open_page(path: str) -> Visit:
        opened.append(Visit(browser, base_url, path))
        return opened[-1]

    yield open_page
    for page in opened:
        page.close()


# ----------------------------------------------------------------------------- in-page checks

WAIT_FOR_MATHJAX = """
async () => {
  if (!window.MathJax) return "no MathJax on this page";
  for (let i = 0; i < 400 && !(MathJax.startup && MathJax.startup.promise); i++) {
    await new Promise(resolve => setTimeout(resolve, 50));
  }
  if (!(MathJax.startup && MathJax.startup.promise)) return "MathJax never started";
  await MathJax.startup.promise;
  return "typeset";
}
"""

# Every widget view placeholder gets a rendered view inserted before it by the embed manager.
WIDGETS_RENDERED = """
() => Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'))
  .every(s => { const d = s.previousElementSibling;
                return d && d.classList.contains("widget-subarea") && d.children.length > 0; })
"""

# A bertviz view is drawn into <div id="bertviz-..."> ... <div id="vis"><svg> with token labels
# and attention lines.
BERTVIZ_RENDERED = """
() => Array.from(document.querySelectorAll('div[id^="bertviz-"]'))
  .every(v => v.querySelectorAll("svg text").length > 0 && v.querySelectorAll("svg line").length > 0)
"""

# Visible text outside code, scripts and typeset math.
VISIBLE_TEXT = """
() => {
  const skip = "SCRIPT,STYLE,PRE,CODE,TEXTAREA,KBD,SAMP,MJX-CONTAINER,MJX-ASSISTIVE-MML,NOSCRIPT";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip) || parent.closest(".highlight")) continue;
    if (node.textContent.trim()) out.push(node.textContent);
  }
  return out.join("\\n");
}
"""

# An image needs a text that describes it: alt text (or, for a widget's live picture, its title,
# which is the accessible name of an image without alt); a file name ("../_images/3f2a....png") is not one.
IMAGES_WITHOUT_ALT = """
() => Array.from(document.images)
  .filter(img => { const alt = (img.getAttribute("alt") || img.getAttribute("aria-label")
                                || img.getAttribute("title") || "").trim();
                   return !alt || /\\.(png|jpe?g|svg|gif)$/i.test(alt); })
  .map(img => img.getAttribute("src"))
"""

LOAD_ALL_IMAGES = """
async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return images.filter(img => !img.complete || img.naturalWidth === 0)
               .map(img => img.currentSrc || img.src || img.outerHTML.slice(0, 120));
}
"""

UNTYPESET_TEX = [
    re.compile(r"\$\$"),
    re.compile(r"\\\(|\\\)"),
    re.compile(r"\\\[|\\\]"),
    re.compile(r"\\begin\{"),
    re.compile(r"\$[^$\n]{0,200}\\[A-Za-z]+[^$\n]{0,200}\$"),
]


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.hrefs.append(href)


def _links(path: Path) -> list[str]:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser.hrefs


def _broken_internal_links(hrefs: list[str], base_url: str) -> list[str]:
    broken = []
    for href in sorted(set(hrefs)):
        if not href.startswith(base_url):
            continue  # other hosts: links to them are fine, loading from them is not
        url, fragment = urldefrag(href)
        rel = unquote(urlsplit(url).path)[1:]
        target = SITE / rel
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"broken link: {href}")
        elif fragment and target.suffix == ".html" and unquote(fragment) not in _anchors(target):
            broken.append(f"broken anchor: {href}")
    return broken


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline(path, site, visit, base_url):
    page = visit(path)
    tab = page.page
    assert tab.evaluate(WAIT_FOR_MATHJAX) in ("typeset", "no MathJax on this page"), "MathJax did not start"

    if tab.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        try:
            tab.wait_for_function(WIDGETS_RENDERED)
        except Exception:
            page.problems.append("an ipywidgets view stayed empty")
    if tab.locator('div[id^="bertviz-"]').count():
        try:
            tab.wait_for_function(BERTVIZ_RENDERED)
        except Exception:
            page.problems.append("a bertviz view stayed empty")

    missing = tab.evaluate(LOAD_ALL_IMAGES)
    page.problems += [f"image did not load: {src}" for src in missing]
    page.problems += [f"image without alt text: {src}" for src in tab.evaluate(IMAGES_WITHOUT_ALT)]
    page.settle()

    text = tab.evaluate(VISIBLE_TEXT)
    for pattern in UNTYPESET_TEX:
        for match in pattern.finditer(text):
            context = text[max(0, match.start() - 40): match.end() + 40].replace("\n", " ")
            page.problems.append(f"untypeset TeX: ...{context}...")
    errors = tab.locator("mjx-merror").all_text_contents()
    page.problems += [f"MathJax TeX error: {error}" for error in errors]

    hrefs = tab.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    page.problems += _broken_internal_links(hrefs, base_url)

    assert not page.problems, f"{path}:\n  " + "\n  ".join(dict.fromkeys(page.problems))


CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_links_to_the_highlighted_source_it_uses(site, chapter):
    """"The code behind this chapter" leads to sphinx.ext.viewcode's pages (_modules/), at an anchor
    each of them has, and never to a download of the .py file. (test_page_works_offline checks
    every link again in the browser, and opens the source pages themselves.)"""
    page = site / "chapters" / f"{chapter}.html"
    assert page.is_file(), f"{page.relative_to(ROOT)} was not built"
    hrefs = _links(page)
    source = [href for href in hrefs if "_modules/llmbook/" in href]
    anchored = [href for href in source if "#" in href]
    assert anchored, f"{chapter}: no link to the highlighted source of a function or class"
    assert not [href for href in hrefs if href.endswith(".py")], f"{chapter}: links to a .py download"
    for href in source:
        url, fragment = urldefrag(href)
        target = (page.parent / unquote(url)).resolve()
        assert target.is_file(), f"{chapter}: {href} leads to no page"
        assert not fragment or unquote(fragment) in _anchors(target), f"{chapter}: {href}: no such anchor"


def test_mathjax_typesets_the_notation_page(site, visit):
    page = visit("book/notation.html")
    assert page.page.evaluate(WAIT_FOR_MATHJAX) == "typeset"
    count = page.page.locator("mjx-container").count()
    assert count > 50, f"only {count} formulas typeset on the notation page"
    # served from this site, not a CDN
    sources = page.page.eval_on_selector_all("script[src]", "s => s.map(x => x.src)")
    assert any("/vendor/mathjax/" in src for src in sources), sources
    assert not page.problems, page.problems


CJK_FACE = """
async (load) => {
  if (load) await document.fonts.load('16px "LLMBook CJK"', '\u4e2d');  // ask for one character: 中
  await document.fonts.ready;
  return [...document.fonts].filter(f => f.family.replaceAll('"', '') === 'LLMBook CJK').map(f => f.status);
}
"""


def test_the_shipped_cjk_font_loads_from_the_site(site, visit):
    # the glossary has a column of Chinese terms; the font it falls back on must be there to load
    page = visit("book/glossary.html")
    page.settle()
    assert page.page.evaluate(CJK_FACE, True) == ["loaded"]
    assert not page.problems, page.problems


def test_a_page_without_chinese_does_not_download_the_cjk_font(site, visit):
    page = visit("book/notation.html")
    page.settle()
    text = page.page.inner_text("body")
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in text), "the notation page now has Chinese"
    assert page.page.evaluate(CJK_FACE, False) == ["unloaded"]  # declared, never fetched (unicode-range)
    assert not page.problems, page.problems


def test_index_redirects_to_the_introduction(site, visit):
    page = visit("index.html")
    page.page.wait_for_url("**/book/intro.html")
    assert "Large Language Models" in page.page.title()
    assert not page.problems, page.problems


def test_search_works_offline(site, visit):
    page = visit("search.html?q=softmax")
    # Sphinx's search adds its results one by one and says "Search finished" after the last one
    page.page.locator("#search-results p.search-summary", has_text="Search finished").wait_for()
    results = page.page.locator("#search-results ul.search li a")
    links = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any("03_attention" in href for href in links), links
    page.settle()
    assert not page.problems, page.problems


OFFLINE_BUNDLE = ROOT / "_build" / "llmbook-offline.zip"


@pytest.fixture(scope="module")
def offline_bundle(tmp_path_factory) -> Path:
    if not OFFLINE_BUNDLE.is_file():
        pytest.fail(f"{OFFLINE_BUNDLE.relative_to(ROOT)} does not exist: run `make offline` first", pytrace=False)
    import zipfile

    folder = tmp_path_factory.mktemp("offline")
    with zipfile.ZipFile(OFFLINE_BUNDLE) as archive:
        archive.extractall(folder)
    return folder / "llmbook-offline"


def test_offline_bundle_holds_the_site_the_notebooks_and_the_package(offline_bundle):
    assert (offline_bundle / "website" / "index.html").is_file()
    assert (offline_bundle / "README.txt").read_text().count("website/index.html") >= 1
    chapters = sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb"))
    for edition in ("notebooks", "student"):
        present = sorted(p.name for p in (offline_bundle / edition).glob("*.ipynb"))
        assert present == sorted(chapters + ["getting_started.ipynb"]), (edition, present)
    assert len(list(offline_bundle.glob("llmbook-*-py3-none-any.whl"))) == 1


@pytest.mark.parametrize("path", ["chapters/03_attention.html", "search.html?q=attention"])
def test_offline_bundle_opens_from_disk(offline_bundle, browser, path):
    """Opened as file:// (a double-click on the file): math typesets, images load, widgets and
    bertviz's views draw, search finds pages, and nothing is fetched from another host."""
    page = Visit(browser, (offline_bundle / "website").as_uri() + "/", path)
    try:
        tab = page.page
        if path.startswith("search"):
            tab.locator("#search-results ul.search li a").first.wait_for()
        else:
            assert tab.evaluate(WAIT_FOR_MATHJAX) == "typeset"
            assert tab.locator("mjx-container").count() > 20
            if tab.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
                tab.wait_for_function(WIDGETS_RENDERED)
            assert tab.locator('div[id^="bertviz-"]').count() > 0, "chapter 3 shows a bertviz head view"
            tab.wait_for_function(BERTVIZ_RENDERED)
            page.problems += [f"image did not load: {src}" for src in tab.evaluate(LOAD_ALL_IMAGES)]
        assert not page.problems, page.problems
    finally:
        page.close()
