# The two commands of the README. Each installs what it needs first.
.PHONY: setup study test bench

setup:
	./scripts/install-deps

study: setup
	meshload study

test: setup
	python3 -m pytest -q

bench: setup
	python3 bench/run_all.py
