/* Loaded (by myst-nb, see nb_ipywidgets_js in _config.yml) on pages that embed ipywidgets, after
 * require.js and before the ipywidgets HTML embed manager (embed-amd.js).
 *
 * 1. The embed manager's bundles find their Font Awesome fonts next to where require.js thinks
 *    the bundle lives (the AMD "module" URI), which by default is a folder named after the module,
 *    next to the page. Tell require.js that those modules live in vendor/jupyter-widgets/
 *    html-manager/ of this site, where the fonts are. (The modules themselves are all defined inside
 *    embed-amd.js, so nothing is fetched from these paths.)
 * 2. ipywidgets typesets widget labels with the MathJax 2 call MathJax.Hub.Queue(["Typeset", ...]).
 *    This site uses MathJax 3, which has no Hub: translate that one call to MathJax 3's API.
 */
(function () {
  var here = document.currentScript && document.currentScript.src;
  if (here) {
    var manager = new URL("../vendor/jupyter-widgets/html-manager", here).href;
    window.__jupyter_widgets_assets_path__ = manager + "/";
    if (window.require && window.require.config) {
      window.require.config({
        paths: {
          "@jupyter-widgets/html-manager/dist": manager,
          "@jupyter-widgets": manager,
        },
      });
    }
  }

  function addHubShim() {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.version || mj.version.charAt(0) !== "3") return;
    mj.Hub = {
      Queue: function () {
        Array.prototype.forEach.call(arguments, function (job) {
          if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
            var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
            ready.then(function () { return mj.typesetPromise([job[2]]); })
                 .catch(function (err) { console.warn("MathJax could not typeset a widget:", err); });
          }
        });
      },
    };
  }
  // MathJax is loaded with "defer": it has replaced window.MathJax by DOMContentLoaded, and the
  // embed manager draws the widgets only after the window's "load" event.
  document.addEventListener("DOMContentLoaded", addHubShim);
})();
