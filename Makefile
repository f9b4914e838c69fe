# The few commands a person types. `make book` and `make test` work on a fresh machine.
VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
STAMP     := $(VENV)/.installed
NOTEBOOKS := book/getting_started.ipynb book/pretrained_models.ipynb $(wildcard chapters/*.ipynb)
NBVAL     := --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg
# One worker per core; all cells of a notebook (and all tests of a file) stay in one worker.
PARALLEL  := -n auto --dist loadscope
STUDENT   := student
NBGRADER  := _build/nbgrader
OFFLINE   := _build/llmbook-offline.zip

.PHONY: setup book html book-assets chromium student nbgrader offline lint test test-unit test-notebooks test-website lab bench clean

setup: $(STAMP)

# torch is installed first and on its own: bertviz asks for an unpinned torch, which would
# otherwise pull a multi-gigabyte CUDA build.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet -c constraints.txt pip
	$(PIP) install --quiet -c constraints.txt torch
	$(PIP) install --quiet -c constraints.txt -r requirements.txt
	$(PIP) install --quiet --no-deps -e .
	touch $@

# The JavaScript the website serves itself (MathJax 3, require.js, the ipywidgets embed manager),
# from the npm registry at the versions pinned in package-lock.json,
# copied to _build/web_assets/site/vendor/ (html_extra_path puts it at _build/html/vendor/).
book-assets: $(STAMP)
	$(PY) tools/fetch_web_assets.py

# Build the website into _build/html. -W: a warning fails the build; -n: every reference must
# resolve; --keep-going: report all warnings; --all: write every page and copy every static file.
html: book-assets
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --all

book: html
	@echo "The book is built. Open $(CURDIR)/_build/html/index.html in a browser."

# Headless browser for tests/test_website.py (Debian/Ubuntu; needs root for apt-get).
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

# The student edition: every notebook with its exercise solutions replaced by stubs that raise
# NotImplementedError (see tools/make_student_edition.py), written to student/. It is committed, so
# that each student notebook opens on Colab; tests/test_notebooks.py fails when it is out of date.
student: $(STAMP)
	rm -rf $(STUDENT)
	$(PY) tools/make_student_edition.py --out $(STUDENT)

# An nbgrader course in _build/nbgrader/: one assignment per chapter, its coding exercises autograded
# by the book's checkers (see tools/make_nbgrader_course.py and the instructor guide).
nbgrader: $(STAMP)
	rm -rf $(NBGRADER)
	$(PY) tools/make_nbgrader_course.py --out $(NBGRADER)

# One zip a teacher can hand out: the website (opens from disk, no network), both editions of the
# notebooks, and the package as a wheel with the data the notebooks read.
offline: html
	$(PY) tools/make_offline_bundle.py --out $(OFFLINE)

# The linter (rules in pyproject.toml) over everything that is Python and not a notebook.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests tools bench

# Every test: the linter, the package's unit tests, the website and the offline bundle in a browser, the
# package installed from its sdist into a fresh venv, every notebook re-run by nbval in strict mode
# (committed outputs must be what the code produces), and the student edition re-run with its
# exercises open (each checker must report the open exercise).
# --durations=15 lists the slowest tests, so that a slow one is seen and trimmed.
test: lint offline chromium
	$(PY) -m pytest tests $(NOTEBOOKS) $(STUDENT) $(NBVAL) $(PARALLEL) -p no:cacheprovider --durations=15

test-unit: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/test_website.py -p no:cacheprovider

test-notebooks: $(STAMP)
	$(PY) -m pytest $(NOTEBOOKS) $(STUDENT) $(NBVAL) $(PARALLEL) -p no:cacheprovider

test-website: offline chromium
	$(PY) -m pytest tests/test_website.py -p no:cacheprovider

# JupyterLab serves the whole repository, so that the chapters' links to src/llmbook/*.py open the
# file ("The code behind this chapter"), and starts in chapters/.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/chapters

bench: $(STAMP)
	$(PY) bench/throughput.py

clean:
	rm -rf _build
