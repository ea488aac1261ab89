# Two commands matter: `make run` and `make test` (see README). Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench clean

# The extension's build and test tools (esbuild, web-ext, playwright-core, puppeteer-core); browsers come from Debian (.ci/run).
NODE_STAMP := extension/node_modules/.installed-stamp
$(NODE_STAMP): extension/package.json extension/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix extension --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the extension tests will skip (with CI=true they fail)"; fi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,detect]'
	# detection: metadata pins older celery/torch than we run; installed without deps (see docs/detection.md)
	$(PY) -m pip install --quiet --no-deps -c constraints.txt celery-batches facenet-pytorch
	# Meta's vpdq for the video interop tests: a C++ build against FFmpeg's headers, where they are (.ci/run installs them)
	if pkg-config --exists libavcodec libavformat libavutil libswscale 2>/dev/null; then \
	  $(PY) -m pip install --quiet -c constraints.txt vpdq; \
	else echo "FFmpeg development headers not found: the vpdq interop tests will skip (docs/testing.md)"; fi
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/credence serve

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/cached_path.py
	$(PY) bench/uncached_path.py
	$(PY) bench/c2pa_read.py
	$(PY) bench/hashing.py
	$(PY) bench/pdq_index.py --sizes 1000000
	$(PY) bench/bank_snapshot.py --sizes 1000000
	$(PY) bench/rematch_scan.py --sizes 100000
	$(PY) bench/detectors.py
	$(PY) bench/video.py
	$(PY) bench/page.py

clean:
	rm -rf $(VENV) data .pytest_cache
