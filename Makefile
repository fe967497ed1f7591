# The README's two commands (`make study`, `make test`), the gates CI runs before the tests, and the
# benchmarks. Each target installs what it needs first (scripts/install-deps: Debian packages and a
# project virtual environment in .venv; the system Python is never touched).
VENV ?= .venv
PY := $(VENV)/bin/python
export MESHLOAD_VENV := $(VENV)

.PHONY: setup inplace study quick-study test lower-bounds chart-check lint bench

setup:
	./scripts/install-deps

# The compiled response path built inside src/, for running a working tree with PYTHONPATH=src (the
# benchmarks, tests of uncommitted changes); `make setup` compiles it into the installed package.
inplace: setup
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "Cython>=3.1"
	$(VENV)/bin/cythonize -i -3 -q src/meshload/worker/hot_path.pyx

study: setup
	$(PY) -m meshload study $(ARGS)

quick-study: setup
	$(PY) -m meshload study --quick $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

# meshload with every runtime dependency at its lowest allowed version (a throw-away venv), and a
# quick part of the suite; `make test` runs everything against the newest releases.
lower-bounds: setup
	$(PY) scripts/check_lower_bounds.py

# The Helm chart rendered with the real Helm engine, linted and schema-checked; the Dockerfile linted.
chart-check: setup
	$(PY) scripts/chart_check.py

lint: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/bench_engine.py
	$(PY) bench/bench_locust.py
	$(PY) bench/bench_grpc.py
	$(PY) bench/bench_aggregation.py
	$(PY) bench/bench_aggregation_merge.py
	$(PY) bench/bench_testbed.py
	$(PY) bench/bench_study_statistics.py
