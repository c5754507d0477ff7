# Quick start: `make run` (the live demo) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DURATION ?= 0
# `make test` runs in this many pytest-xdist workers (every test has its own vhost,
# database and temp dir, so they never share state); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

.PHONY: run test test-faults test-browser test-volume test-cluster test-bench console-screenshots test-all setup broker lint typecheck check bench bench-all bench-peers bench-smoke clean

$(BIN)/pipeline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/pipeline

broker:
	@bash scripts/ensure-broker.sh

## The live demo: consumers, admin notifier, a producer, a live table (Ctrl-C stops it).
run: setup broker
	$(BIN)/pipeline demo --fast-ladder --duration $(DURATION)

## The test suite against the real broker (each test in its own vhost); < 10 min.
test: setup broker
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not faults and not browser and not volume and not cluster and not bench"

## Fault injection on throwaway broker nodes (kill -9, alarms, closed connections, fuzzing).
test-faults: setup broker
	$(BIN)/pytest -m faults

## A three-node throwaway cluster: the leader of a consumer queue killed under load.
test-cluster: setup broker
	$(BIN)/pytest -m cluster

## The benchmark's quick run, every case and the peers (checks it works, not speed; minutes).
test-bench: setup broker
	$(BIN)/pytest -m bench

## 100 000 stored dead letters read to the last; 10 000 migrated through a kill (minutes).
test-volume: setup broker
	$(BIN)/pytest -m volume -s

## The console in a real headless Chromium (Debian's chromium package; docs/console.md).
test-browser: setup broker
	$(BIN)/pytest -m browser

## The same, saving its screenshots into docs/images for docs/console.md.
console-screenshots: setup broker
	CONSOLE_SCREENSHOTS=docs/images $(BIN)/pytest -m browser

## Everything CI runs.
test-all: test test-faults test-browser test-volume test-cluster test-bench

lint: setup
	$(BIN)/ruff check pipeline topology consumers tests bench

typecheck: setup
	$(BIN)/mypy

check: lint typecheck test-all

## The cases with targets, ours vs raw aio-pika in one run (< 10 min): table + bench/results/latest.json.
bench: setup broker
	$(BIN)/python -m bench --json bench/results/latest.json

## Every case (ledger, outbox, delays, lanes, replicas, scaling, consume at prefetch 1/10/100).
bench-all: setup broker
	$(BIN)/python -m bench --all --json bench/results/all.json

## FastStream, Dramatiq and Celery beside ours and raw aio-pika (bench/peers/):
## table + bench/results/peers.json; `python -m bench.report --peers FILE` for the README.
bench-peers: setup broker
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench --cases peers --json bench/results/peers.json

## The same with tiny counts (CI runs it through tests/e2e/test_bench_smoke.py).
bench-smoke: setup broker
	$(BIN)/python -m bench --quick --peers
	$(BIN)/python -m bench.tracing_cost --quick
	$(BIN)/python -m bench.failure_micro --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
