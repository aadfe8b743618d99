# CareLoop: the two commands (README) and a few helpers.
.PHONY: run test lint perf faults soak cluster stop clean venv audit lock

venv:
	@scripts/bootstrap.sh

## run: the whole suite with demo data on SQLite and the local RabbitMQ; a process that dies is restarted
## (var/log/runner.log); Ctrl-C or `make stop` stops it
run: venv
	@scripts/infra.sh rabbitmq
	@.venv/bin/python -m deploy.local.run

## test: lint, then unit, integration and end-to-end tests (PostgreSQL; SQLite too where quick)
test: venv
	@scripts/infra.sh rabbitmq postgresql prometheus chromium
	@.venv/bin/ruff check .
	@.venv/bin/python -m pytest $(PYTEST_ARGS)

lint: venv
	@.venv/bin/ruff check .

## perf: the benchmarks under tests/perf (minutes; figures go to the terminal, see tests/perf/RESULTS.md)
perf: venv
	@scripts/infra.sh rabbitmq postgresql wrk chromium
	@.venv/bin/python -m pytest tests/perf -s -p no:randomly -m "not soak" $(PYTEST_ARGS)

## faults: the fault-injection suite with long load around each fault (tests/faults/README.md; ~25 min)
faults: venv
	@CARELOOP_FAULTS_FULL=1 .venv/bin/python -m pytest tests/faults -p no:randomly -m faults_full $(PYTEST_ARGS)

## soak: an hour of mixed load with a fault every 5 minutes (CARELOOP_SOAK_MINUTES to shorten)
soak: venv
	@.venv/bin/python -m pytest tests/perf/test_soak.py -s -p no:randomly -m soak $(PYTEST_ARGS)

## cluster: a 3-node RabbitMQ cluster on loopback with quorum queues, paid-bill load, one node stopped and
## restarted; prints the table of deploy/README.md (~5 min; tests/perf/test_rabbit_cluster.py)
cluster: venv
	@scripts/infra.sh postgresql
	@.venv/bin/python -m pytest tests/perf/test_rabbit_cluster.py -s -p no:randomly $(PYTEST_ARGS)

## stop: stop a `make run` started in another terminal (its runner first, so nothing is restarted)
stop:
	@.venv/bin/python -m deploy.local.run --stop

## audit: pip-audit over the locked runtime and development sets; says NOT AUDITED (exit 2) where no
## vulnerability database (osv.dev, PyPI's JSON API) can be reached, as on a machine that sees only a package index
audit: venv
	@.venv/bin/python scripts/audit.py

## lock: re-lock requirements.txt and requirements-dev.txt (with hashes) from the .in files
lock:
	@scripts/lock.sh

clean:
	rm -rf var .pytest_cache
