# Two commands matter: `make run` and `make test` (see README). Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/credence serve

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/cached_path.py
	$(PY) bench/uncached_path.py
	$(PY) bench/c2pa_read.py
	$(PY) bench/hashing.py
	$(PY) bench/pdq_index.py --sizes 1000000

clean:
	rm -rf $(VENV) data .pytest_cache
