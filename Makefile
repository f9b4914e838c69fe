# The few commands a person types. `make book` and `make test` work on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
NOTEBOOKS := book/getting_started.ipynb $(wildcard chapters/*.ipynb)

.PHONY: setup book html test unit lab bench clean chromium

setup: $(STAMP)

# torch is installed first and on its own: bertviz asks for an unpinned torch, which would
# otherwise pull a multi-gigabyte CUDA build.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt torch
	$(PIP) install --quiet -c constraints.txt -r requirements.txt
	$(PIP) install --quiet --no-deps -e .
	touch $@

book: html
	@echo "The book is built. Open $(CURDIR)/_build/html/index.html in a browser."

lab: $(STAMP)
	$(VENV)/bin/jupyter lab chapters/

bench: $(STAMP)
	$(PY) bench/throughput.py

clean:
	rm -rf _build
