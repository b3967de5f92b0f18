# The two commands of the quick start: `make up` and `make test`.
.PHONY: up test lint unit integration fuzz bench bootstrap

# `make fuzz` runs each target until it has tried FUZZ_INPUTS inputs, or FUZZ_SECONDS at
# most (`make test` runs a short run of each).
FUZZ_INPUTS ?= 100000
FUZZ_SECONDS ?= 900

bootstrap:
	@bash deploy/bootstrap.sh

up: bootstrap
	.venv/bin/engine up

lint: bootstrap
	.venv/bin/ruff check engine tests bench
	.venv/bin/ruff format --check engine tests bench
	.venv/bin/mypy engine tests bench
	.venv/bin/lint-imports
	.venv/bin/engine rules check engine/rules/default.yaml

# Three pytest processes at once: the unit tests and the short fuzzing runs, and the
# integration tests in two lanes (tests/integration/conftest.py, SECOND_LANE), each with its
# own broker: they spend most of their time waiting on the broker and the engine. The first
# lane reports as it goes, the others' reports are printed after it.
# pytest exits 5 when it collects no test: that is a failure here, said plainly.
test: lint
	@unit_log=$$(mktemp); second_log=$$(mktemp); \
	.venv/bin/pytest tests/unit tests/fuzz >"$$unit_log" 2>&1 & unit_pid=$$!; \
	.venv/bin/pytest tests/integration --lane second >"$$second_log" 2>&1 & second_pid=$$!; \
	.venv/bin/pytest tests/integration --lane first; first=$$?; \
	wait $$second_pid; second=$$?; \
	wait $$unit_pid; unit=$$?; \
	echo "=== tests/integration, second lane ==="; cat "$$second_log"; \
	echo "=== tests/unit tests/fuzz ==="; cat "$$unit_log"; rm -f "$$unit_log" "$$second_log"; \
	for status in $$first $$second $$unit; do \
	  if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	  if [ $$status -ne 0 ]; then exit $$status; fi; \
	done

unit: bootstrap
	.venv/bin/pytest tests/unit tests/fuzz

# Each fuzz target in turn: inputs tried, crashes, the slowest input; fails on a crash or an
# input over 1 s (docs/security.md, "Fuzzing").
fuzz: bootstrap
	.venv/bin/python -m tests.fuzz.runner --inputs $(FUZZ_INPUTS) --seconds $(FUZZ_SECONDS)

integration: bootstrap
	.venv/bin/pytest tests/integration

bench: bootstrap
	.venv/bin/python -m bench.classify_rules
	.venv/bin/python -m bench.smtp_ingest
	.venv/bin/python -m bench.http_chat
	.venv/bin/python -m bench.throughput
	.venv/bin/python -m bench.restart
	.venv/bin/python -m bench.takeover
	.venv/bin/python -m bench.sla_ticks
	.venv/bin/python -m bench.sla_worker
	.venv/bin/python -m bench.snmp_traps
	.venv/bin/python -m bench.storm
	.venv/bin/python -m bench.e2e
	.venv/bin/python -m bench.assignment
	.venv/bin/python -m bench.chaos
