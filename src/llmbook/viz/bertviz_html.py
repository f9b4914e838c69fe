"""bertviz's view HTML made self-contained: it draws with no network and no require.js.

bertviz (1.4) returns a view as three pieces: a ``<script src=...>`` that loads require.js from a
CDN, the view's ``<div>``, and a script that asks require.js for d3 and jQuery (from a CDN too)
and then draws. Offline, or in a JupyterLab with no global ``require``, that view stays empty.

``self_contained(html)`` keeps the ``<div>`` and bertviz's drawing code, drops the two CDN parts,
and puts everything into one ``<script>``: d3 and jQuery inlined from ``static/`` (copied from npm
by tools/vendor_viz_scripts.py, versions in static/VERSIONS.json), each loaded as a CommonJS
module into local variables, and a local ``requirejs`` that hands them to bertviz's code. Nothing
is added to the page's globals, so a page that has its own require.js (the website) or its own
jQuery is unaffected, and the same output works in JupyterLab, Notebook, VS Code, Colab and the
website.

Used in chapters 3, Attention, step by step; 4, Encoder and decoder; and 5, Pretraining.
"""
from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

REQUIRE_JS_TAG = re.compile(r'\A<script src="https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/[0-9.]+/'
                            r'require\.min\.js"></script>')
SCRIPT_START = '\n<script type="text/javascript">\n'
SCRIPT_END = "\n</script>\n"
# bertviz's CDN paths for d3 and jQuery, the one statement that names an address.
REQUIRE_CONFIG = re.compile(r"^require\.config\(\{.*?^\}\);\n", re.DOTALL | re.MULTILINE)
# What would end the <script> element early, or switch the HTML parser into its escaped mode.
HTML_BREAKING = re.compile(r"</script|<!--", re.IGNORECASE)

# Runs each library's source as a CommonJS module: `define` is shadowed, so a page's require.js
# never sees an anonymous define(); `module` is given, so jQuery sets no window.$.
LOADER = """\
(function () {
  function load(source) {
    var module = {exports: {}};
    source(module, module.exports, undefined);
    return module.exports;
  }
  var libraries = {};
%(libraries)s
  function requirejs(names, callback) {
    callback.apply(null, names.map(function (name) {
      if (!(name in libraries)) throw new Error("llmbook.viz: bertviz asked for " + name + ", which is not inlined");
      return libraries[name];
    }));
  }
%(view)s
})();"""
LIBRARY = """\
  libraries[%(name)s] = load(function (module, exports, define) {
%(source)s
  });"""


@cache
def _library_sources() -> dict[str, str]:
    """name -> minified source of each library listed in static/VERSIONS.json (require.js names)."""
    static = resources.files("llmbook.viz") / "static"
    record = json.loads((static / "VERSIONS.json").read_text(encoding="utf-8"))
    sources = {name: (static / entry["file"]).read_text(encoding="utf-8") for name, entry in record.items()}
    for name, source in sources.items():
        if HTML_BREAKING.search(source):
            raise ValueError(f"static/{record[name]['file']} contains '</script' or '<!--', which would break "
                             "out of the <script> element it is inlined into")
    return sources


def _split(html: str) -> tuple[str, str]:
    """bertviz's returned HTML -> (the view's markup, its script without the require.js config)."""
    match = REQUIRE_JS_TAG.match(html)
    if match is None or html.count(SCRIPT_START) != 1 or not html.endswith(SCRIPT_END):
        raise ValueError("bertviz's HTML is not the require.js tag, markup and one script that "
                         "llmbook.viz.bertviz_html expects; has bertviz changed? (tested with bertviz 1.4)")
    markup, script = html[match.end():-len(SCRIPT_END)].split(SCRIPT_START)
    script, found = REQUIRE_CONFIG.subn("", script)
    if found != 1:
        raise ValueError(f"expected one require.config(...) statement in bertviz's script, found {found}")
    return markup, script


def _script_safe(code: str) -> str:
    """bertviz's drawing code, safe inside <script>: a token such as "</script>" only occurs in
    the JSON of its parameters, inside strings, where "<\\/" and "<\\!--" mean the same."""
    return code.replace("</", "<\\/").replace("<!--", "<\\!--")


def self_contained(html: str) -> str:
    """The HTML that bertviz.head_view / model_view return (html_action="return"), rewritten to
    draw with no network: its markup, then one script with d3, jQuery and bertviz's code."""
    markup, script = _split(html)
    libraries = "\n".join(LIBRARY % {"name": json.dumps(name), "source": source}
                          for name, source in _library_sources().items())
    code = LOADER % {"libraries": libraries, "view": _script_safe(script)}
    return f"{markup}<script>\n{code}\n</script>\n"
