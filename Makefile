# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs:
# uv (pinned, in .uv/) and then the locked environment (.venv/, from uv.lock); `make test` also
# the MariaDB server its tests start (.ci/install-mariadb).
UV_VERSION := 0.13.8
PYTHON ?= python3
UV := .uv/bin/uv

.PHONY: demo test lint env bench mariadb

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

env: $(UV)
	$(UV) sync --locked --quiet

demo: env
	$(UV) run --no-sync rootfi-sync demo

test: env mariadb
	$(UV) run --no-sync pytest

# The MariaDB server the tests start (tests/mariadb.py): installed from Debian's packages when
# missing and we are root; otherwise .ci/install-mariadb says what to install (the tests skip).
mariadb:
	@bash .ci/install-mariadb

lint: env
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy
	$(UV) run --no-sync lint-imports

bench: env
	$(UV) sync --locked --quiet --group bench
	$(UV) run --no-sync python -m bench.pipeline
