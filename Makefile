# The two commands of the quick start: `make up` and `make test`.
.PHONY: up test lint unit integration bench bootstrap

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

# pytest exits 5 when it collects no test: that is a failure here, said plainly. Two
# processes: the integration tests in one, in order (they share a broker and the CPU's
# waits), the unit tests in the other.
test: lint
	@.venv/bin/pytest -n 2 --dist loadgroup; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

unit: bootstrap
	.venv/bin/pytest tests/unit

integration: bootstrap
	.venv/bin/pytest tests/integration

bench: bootstrap
	.venv/bin/python -m bench.classify_rules
	.venv/bin/python -m bench.smtp_ingest
	.venv/bin/python -m bench.http_chat
	.venv/bin/python -m bench.throughput
	.venv/bin/python -m bench.restart
	.venv/bin/python -m bench.sla_ticks
	.venv/bin/python -m bench.sla_worker
	.venv/bin/python -m bench.snmp_traps
	.venv/bin/python -m bench.storm
	.venv/bin/python -m bench.e2e
	.venv/bin/python -m bench.assignment
