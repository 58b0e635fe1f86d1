# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs:
# uv (pinned, in .uv/) and then the locked environment (.venv/, from uv.lock); `make test` also
# the MariaDB server its tests start (.ci/install-mariadb).
UV_VERSION := 0.13.8
PYTHON ?= python3
UV := .uv/bin/uv

.PHONY: demo test lint env bench mariadb sdk

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

env: $(UV)
	$(UV) sync --locked --quiet

demo: env
	$(UV) run --no-sync rootfi-sync demo

test: env mariadb sdk
	$(UV) run --no-sync pytest

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
	$(BENCH) bench.sandbox_throughput --requests 20000 --concurrency 64 | tee -a bench/out/tables.md
