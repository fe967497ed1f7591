# The two commands of the README (study, test), and the benchmarks. Each installs what it needs first.
.PHONY: setup study test bench

setup:
	./scripts/install-deps

study: setup
	python3 -m meshload study

test: setup
	python3 -m pytest -q

bench: setup
	python3 bench/bench_engine.py
	python3 bench/bench_aggregation.py
	python3 bench/bench_aggregation_merge.py
	python3 bench/bench_testbed.py
