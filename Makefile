# The two commands a newcomer needs: `make demo` and `make test`.
# Each creates .venv if missing and installs the project with what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bluesky-suite lint format bench clean system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m runengine.cli.demo

# Debian packages the tests use: redis-server and postgresql (the tests start their own servers
# on loopback and stop them).
system-deps:
	@command -v redis-server >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	    SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server postgresql; }

test: $(STAMP) system-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

# bluesky's own RunEngine tests on our engine (minutes; deselected from `test` by its marker).
# Fails on a failure that is neither environmental nor in tests/bluesky_suite/deviations.json.
# Side by side with bluesky's engine: $(PY) -m tests.bluesky_suite.run --engine both
bluesky-suite: $(STAMP)
	$(PY) -m pytest -m bluesky_suite tests/bluesky_suite

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info
