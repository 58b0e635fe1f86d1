# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs:
# uv (pinned, in .uv/) and then the locked environment (.venv/, from uv.lock); `make test` also
# the MariaDB server its tests start (.ci/install-mariadb). `make test-fast` is what to run
# after every change: the unit and sandbox tests, no server.
UV_VERSION := 0.13.8
PYTHON ?= python3
UV := .uv/bin/uv
# pytest-xdist workers for `make test`; each starts its own PostgreSQL, MariaDB and Prefect
# test server. Four on 2 cores: many tests wait (on RootFi's latency, a lease, a second
# process), and the other workers run meanwhile (526 s against 556 s with three, on the same
# code; docs/testing.md).
TEST_WORKERS ?= 4
# More pytest arguments for `make test` and `make test-fast`, e.g. PYTEST_ARGS='-k doctor -x'.
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-normalizing lint env bench mariadb sdk

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: the environment's modules are compiled once, here (under a second when
# nothing changed), not by every process that imports them where PYTHONDONTWRITEBYTECODE is
# set, as on CI's machines: the tests start a hundred Python processes (Prefect servers,
# workers, flows, the CLI), and each compiled Prefect anew (docs/testing.md).
env: $(UV)
	$(UV) sync --locked --quiet --compile-bytecode

demo: env
	$(UV) run --no-sync rootfi-sync demo

# Everything, on TEST_WORKERS processes; the e2e tests on the e2e package's real Prefect server
# run on one of them, so it starts once (tests/conftest.py, pytest_xdist_make_scheduler).
test: env mariadb sdk
	bash .ci/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The fast tier: tests/unit and tests/sandbox (`-m "unit or sandbox"` selects the same, but
# imports every test module first). No PostgreSQL, no MariaDB, no Prefect server: Prefect's
# temporary server is turned off, so a test that would start one fails instead of quietly
# costing ten seconds. One process: on 2 cores, workers' start-up eats what they save.
test-fast: env sdk
	PREFECT_SERVER_EPHEMERAL_ENABLED=false bash .ci/pytest tests/unit tests/sandbox $(PYTEST_ARGS)

# The delivery tests again, with every project test's sandbox behind the `normalizing` platform
# profile (records kept as platforms rewrite them: lower-cased emails, E.164 phones, ISO-2
# countries...; tests/factories.py reads ROOTFI_TEST_PLATFORM). Not in .ci/run: over 4 minutes.
NORMALIZING_TESTS := $(addprefix tests/integration/,test_sync_flow.py test_exactly_once.py \
	test_exactly_once_in_the_field.py test_proof_of_creation.py test_send_cache.py \
	test_ledger_time.py test_clock_skew.py test_dirty_rows.py)
test-normalizing: env mariadb
	ROOTFI_TEST_PLATFORM=normalizing bash .ci/pytest -n $(TEST_WORKERS) $(NORMALIZING_TESTS) \
		$(PYTEST_ARGS)

# RootFi's official SDK, which tests/sandbox/test_sdk_conformance.py drives (`npm ci` from the
# lock file, again when it changes); without npm that test is skipped, saying what to install.
SDK := tests/sandbox/sdk
sdk: $(SDK)/node_modules/.package-lock.json
$(SDK)/node_modules/.package-lock.json: $(SDK)/package-lock.json
	@if command -v npm >/dev/null; then cd $(SDK) && npm ci --no-audit --no-fund --silent; \
	else echo "npm not found: the official-SDK conformance test will be skipped"; fi

# The MariaDB server the tests start (tests/mariadb.py): installed from Debian's packages when
# missing and we are root; otherwise .ci/install-mariadb says what to install (the tests skip).
mariadb:
	@bash .ci/install-mariadb

lint: env
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy
	$(UV) run --no-sync lint-imports

# Every figure of bench/RESULTS.md, at sizes that take about 15 minutes on 2 cores (longer when
# others load the machine): each bench prints its Markdown table, gathered in bench/out/tables.md,
# and writes its JSON, with the commit, to bench/out/.
BENCH := set -o pipefail; $(UV) run --no-sync python -m
bench: SHELL := /bin/bash
bench: env
	mkdir -p bench/out && : > bench/out/tables.md
	$(BENCH) bench.pipeline --n 2000 20000 --db sqlite --mode single batch | tee -a bench/out/tables.md
	$(BENCH) bench.pipeline --n 2000 --db postgres --mode single batch | tee -a bench/out/tables.md
	$(BENCH) bench.fault_run --n 2000 --mode single | tee -a bench/out/tables.md
	$(BENCH) bench.fault_run --n 2000 --mode batch | tee -a bench/out/tables.md
	$(BENCH) bench.rate_governor --budget 600 --window 60 | tee -a bench/out/tables.md
	$(BENCH) bench.fanout --n 100 1000 10000 --new 5 10 50 | tee -a bench/out/tables.md
	$(BENCH) bench.sandbox_throughput --requests 20000 --concurrency 64 | tee -a bench/out/tables.md
