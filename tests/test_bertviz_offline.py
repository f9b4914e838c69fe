"""bertviz's views draw offline: their scripts come from inside the package, never from a CDN.

The HTML that llmbook.viz.head_view / model_view produce is checked as text (no require.js, no
address that loads anything, d3 and jQuery inlined once each, the vendored files as recorded), and
in a live JupyterLab: a real Jupyter server on 127.0.0.1 runs a notebook in headless Chromium,
which must draw both views while every request the page makes stays on the machine.

The browser is Debian's ``chromium`` (``make chromium``), driven by the ``playwright`` package, as in
tests/test_website.py; set ``CHROMIUM=/path/to/chrome`` to use another Chromium-based browser.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
import torch

from llmbook import viz
from llmbook.viz import bertviz_html

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "llmbook" / "viz" / "static"
RECORD = json.loads((STATIC / "VERSIONS.json").read_text())
BANNERS = {"d3": "// https://d3js.org v5.7.0 Copyright", "jquery": "/*! jQuery v3.7.1 |"}
# The only http(s) text a view may hold: XML namespace names, which d3 uses as identifiers (never
# fetched), d3's licence banner and bertviz's credit to tensor2tensor, both in comments.
NAMES_NOT_ADDRESSES = {
    "http://www.w3.org/1999/xhtml", "http://www.w3.org/1999/xlink", "http://www.w3.org/2000/svg",
    "http://www.w3.org/2000/xmlns/", "http://www.w3.org/XML/1998/namespace", "https://d3js.org",
    "https://github.com/tensorflow/tensor2tensor/blob/master/tensor2tensor/visualization/attention.js",
}
TOKENS = ["the", "cat", "sat", "</script>"]


def _attention(layers=2, heads=2, length=4):  # 4: len(TOKENS)
    torch.manual_seed(0)
    return [torch.softmax(torch.randn(1, heads, length, length), dim=-1) for _ in range(layers)]


@pytest.fixture(scope="module", params=["head_view", "model_view"])
def view_html(request) -> str:
    return getattr(viz, request.param)(_attention(), TOKENS, html_action="return").data


# ----------------------------------------------------------------------------- the HTML, as text


def test_view_uses_no_require_js(view_html):
    assert "require(" not in view_html and "require.config" not in view_html and "require.min" not in view_html
    # bertviz's own call, requirejs([...]), now reaches the local function defined in the same script
    assert view_html.count("function requirejs(") == 1 and view_html.count("requirejs([") == 1


def _without_libraries(html: str) -> str:
    """The view with the inlined d3 and jQuery taken out: the markup and the code that llmbook and
    bertviz wrote (the libraries themselves mention <script> and src= in their DOM helpers)."""
    for entry in RECORD.values():
        html = html.replace((STATIC / entry["file"]).read_text(), "")
    return html


def test_view_loads_nothing_from_the_network(view_html):
    addresses = {url.rstrip("\n") for url in re.findall(r"https?://[^\"'\s)]+", view_html)}
    assert addresses <= NAMES_NOT_ADDRESSES, addresses - NAMES_NOT_ADDRESSES
    own = _without_libraries(view_html)
    assert not re.search(r"\b(src|href)\s*=", own), "a view must not load a file"
    assert "cdnjs" not in view_html and "//cdn" not in view_html


def test_view_inlines_each_library_exactly_once(view_html):
    for name, banner in BANNERS.items():
        assert view_html.count(banner) == 1, name
        assert view_html.count((STATIC / RECORD[name]["file"]).read_text()) == 1, name


def test_view_is_one_div_and_one_script(view_html):
    own = _without_libraries(view_html)
    assert own.count("<script") == 1 and own.count("</script>") == 1 and own.rstrip().endswith("</script>")
    assert len(re.findall(r'<div id="bertviz-[0-9a-f]{32}"', own)) == 1


def test_a_token_cannot_end_the_script_early(view_html):
    # the token "</script>" appears in the view's JSON as "<\/script>", the same string to JavaScript
    assert '"<\\/script>"' in view_html


def test_encoder_decoder_views_are_self_contained_too():
    torch.manual_seed(0)
    encoder, decoder = _attention(length=5), _attention(length=3)
    cross = [torch.softmax(torch.randn(1, 2, 3, 5), dim=-1) for _ in range(2)]
    html = viz.head_view(encoder_attention=encoder, decoder_attention=decoder, cross_attention=cross,
                         encoder_tokens=list("abcde"), decoder_tokens=list("xyz"), html_action="return").data
    assert "Encoder" in html and "Cross" in html and "cdnjs" not in html
    assert _without_libraries(html).count("<script") == 1


def test_view_is_displayed_by_default(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    assert viz.model_view(_attention(), TOKENS) is None
    (html,) = shown
    assert html.data.count(BANNERS["d3"]) == 1


def test_unknown_html_action_is_refused_by_name():
    with pytest.raises(ValueError, match="html_action='show'"):
        viz.head_view(_attention(), TOKENS, html_action="show")


def test_unexpected_bertviz_html_is_refused():
    with pytest.raises(ValueError, match="has bertviz changed"):
        bertviz_html.self_contained("<div>a view</div><script>draw()</script>")


def test_bertviz_scripts_name_no_script_end_so_escaping_its_json_is_safe():
    """self_contained escapes '</' in bertviz's code; that is only safe if every '</' there is
    inside a string, which holds when bertviz's own template has none."""
    import bertviz

    folder = Path(bertviz.__file__).parent
    for name in ("head_view.js", "model_view.js"):
        assert "</" not in (folder / name).read_text() and "<!--" not in (folder / name).read_text(), name


def test_d3_is_the_version_bertviz_asks_for():
    import bertviz

    script = (Path(bertviz.__file__).parent / "head_view.js").read_text()
    d3 = re.search(r"libs/d3/([0-9.]+)/d3", script).group(1)
    jquery = re.search(r"libs/jquery/([0-9.]+)/jquery", script).group(1)
    assert RECORD["d3"]["version"] == d3
    # npm has no jQuery 2.0.0; see tools/vendor_viz_scripts.py for why 3.7.1 serves bertviz
    assert (jquery, RECORD["jquery"]["version"]) == ("2.0.0", "3.7.1")


def test_vendored_files_match_their_record():
    for name, entry in RECORD.items():
        data = (STATIC / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{entry['file']} differs from VERSIONS.json"
        assert entry["npm"] == f"{name}@{entry['version']}" and BANNERS[name] in data.decode()
        assert (STATIC / entry["licence_file"]).stat().st_size > 500, f"{name}: licence missing"
    assert {p.name for p in STATIC.iterdir()} == {"VERSIONS.json"} | {
        f for entry in RECORD.values() for f in (entry["file"], entry["licence_file"])}


# ----------------------------------------------------------------------------- a live JupyterLab

NOTEBOOK_CELLS = [
    "import llmbook\nimport torch\nfrom llmbook import viz\n\n"
    "torch.manual_seed(0)\n"
    f"tokens = {TOKENS!r}\n"
    "attention = [torch.softmax(torch.randn(1, 2, 4, 4), dim=-1) for _ in range(2)]\n"
    "viz.head_view(attention, tokens)",
    "viz.model_view(attention, tokens)",
]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 180_000  # a kernel that imports torch on two busy cores takes a while
DRAW_TIMEOUT_MS = 30_000  # after the cells have run

# Resolves once the notebook is open and its kernel is ready, then runs every cell.
RUN_ALL = """
async () => {
  for (let i = 0; i < 1200 && !window.jupyterapp; i++) await new Promise(resolve => setTimeout(resolve, 100));
  const app = window.jupyterapp;
  await app.restored;
  let panel = null;
  for (let i = 0; i < 1200 && !(panel && panel.sessionContext); i++) {
    panel = app.shell.currentWidget;
    await new Promise(resolve => setTimeout(resolve, 100));
  }
  await panel.context.ready;
  await panel.sessionContext.ready;
  await app.commands.execute("notebook:run-all-cells");
}
"""
# Every bertviz view: its token labels and its attention lines, as the SVG it drew.
VIEWS = """
() => Array.from(document.querySelectorAll('div[id^="bertviz-"]')).map(v => ({
  texts: Array.from(v.querySelectorAll("svg text")).map(t => t.textContent),
  lines: v.querySelectorAll("svg line").length,
}))
"""
ALL_DRAWN = f"() => {{ const views = ({VIEWS})(); return views.length === 2 && views.every(v => v.lines > 0); }}"


def _chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM", ""), *(shutil.which(n) or "" for n in ("chromium", "google-chrome"))):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no Chromium found: install it with `make chromium` or set CHROMIUM=/path/to/chromium", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with {server.returncode}:\n{log.read_text()[-3000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer at {url} within {seconds} s:\n{log.read_text()[-3000:]}", pytrace=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab on 127.0.0.1 serving a temporary folder with one notebook; yields its URL."""
    tmp = tmp_path_factory.mktemp("lab")
    notebooks, home = tmp / "notebooks", tmp / "jupyter"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebooks / "views.ipynb")
    port, token = _free_port(), "llmbook-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    log = tmp / "lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={notebooks}", "--ServerApp.allow_root=True",
               "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run the cells
               f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}"]
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{base}/api/status?token={token}", server, log)
        yield f"{base}/lab/tree/views.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _drawn_within(page, timeout_ms: int) -> bool:
    from playwright.sync_api import TimeoutError

    try:
        page.wait_for_function(ALL_DRAWN, timeout=timeout_ms)
        return True
    except TimeoutError:
        return False


def _stays_on_this_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "file") or parts.hostname == "127.0.0.1"


def test_views_draw_in_a_live_offline_jupyterlab(lab):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the `playwright` package is missing: pip install playwright", pytrace=False)
    left, sockets, errors = [], [], []

    def block_remote(route):
        left.append(route.request.url)
        route.abort("blockedbyclient")

    def visit():
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
                context.set_default_timeout(TIMEOUT_MS)
                context.route(lambda url: not _stays_on_this_machine(url), block_remote)
                page = context.new_page()
                page.on("websocket", lambda socket: sockets.append(socket.url))
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(lab, wait_until="load")
                page.evaluate(RUN_ALL)  # returns once every cell has run
                drawn = _drawn_within(page, DRAW_TIMEOUT_MS)
                views = page.evaluate(VIEWS)
                outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            finally:
                browser.close()
        return drawn, views, outputs

    # In a thread of its own: Playwright's sync API refuses to start where an asyncio loop runs, and
    # another test in the same worker (the website's session-wide browser) may hold one open.
    with ThreadPoolExecutor(max_workers=1) as pool:
        drawn, views, outputs = pool.submit(visit).result()

    assert not left, f"requests that would have left the machine: {left}"
    assert drawn, f"the views did not draw; outputs: {outputs}; views: {views}"
    assert len(views) == 2, f"expected the head view and the model view, found {views}"
    head, model = views
    assert set(TOKENS) <= set(head["texts"]), f"the head view's labels are {head['texts']}"
    assert head["lines"] > 0 and model["lines"] > 0 and model["texts"], views
    assert not any("Javascript Error" in text for text in outputs), outputs
    assert not errors, f"uncaught exceptions in the page: {errors}"
    assert sockets and all(_stays_on_this_machine(url.replace("ws", "http", 1)) for url in sockets), sockets
