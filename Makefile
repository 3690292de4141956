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

.PHONY: install test test-isa book lab bench clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install -q -e ".[test,book]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests notebooks --nbval --nbval-current-env --nbval-cell-timeout=900
	$(MAKE) test-isa

# the chapters that train (their numbers depend on the CPU's kernels) again on other kernels than the committed
# outputs were made with: no SIMD in ATen, oneDNN at SSE4.1, one thread; nbval must still pass (notebooks/conftest.py)
ISA_NOTEBOOKS := $(addprefix notebooks/,03_training.ipynb 04_cross_dataset.ipynb 05_ablations.ipynb \
	06_sam_strategies.ipynb 07_multicentre.ipynb)
test-isa: $(STAMP)
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 \
		$(PY) -m pytest -q -p no:cacheprovider $(ISA_NOTEBOOKS) --nbval --nbval-current-env --nbval-cell-timeout=900

book: $(STAMP)
	$(PY) -m polyplib book --profile smoke

lab: $(STAMP)
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install -q -e ".[lab]"
	$(PY) -m jupyterlab notebooks

bench: $(STAMP)
	$(PY) -m polyplib bench $(if $(QUICK),--quick,)

clean:
	rm -rf book/_build .pytest_cache
