# polyp-book: `make book` builds the book, `make test` runs every test, `make lab` opens the notebooks in JupyterLab.
# Both create a virtualenv in .venv when none is active and install polyplib into it.
SHELL := /bin/bash
VENV ?= .venv
ifdef VIRTUAL_ENV
PY := python
STAMP := $(VIRTUAL_ENV)/.polyplib-installed
else
PY := $(VENV)/bin/python
STAMP := $(VENV)/.polyplib-installed
endif
export OMP_NUM_THREADS ?= 2

.PHONY: install test book lab bench clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install -q -e ".[test,book]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests notebooks --nbval --nbval-current-env --nbval-cell-timeout=900

book: $(STAMP)
	$(PY) -m polyplib book --profile smoke

lab: $(STAMP)
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install -q -e ".[lab]"
	$(PY) -m jupyterlab notebooks

bench: $(STAMP)
	$(PY) -m polyplib bench $(if $(QUICK),--quick,)

clean:
	rm -rf book/_build .pytest_cache
