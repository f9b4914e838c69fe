// A page opened straight from disk (file://) may not read other files with fetch(): the browser
// blocks it. Sphinx's search would fetch every result page to show a snippet of it, and each
// fetch would fail with an error; without snippets the results (titles and links) still work.
if (window.location.protocol === "file:" && typeof DOCUMENTATION_OPTIONS !== "undefined") {
  DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY = false;
}
