"""A throwaway PostgreSQL server for the benchmark, started exactly as the test suite does.

It reuses `tests.postgres._Server` (pytest-postgresql's executor; as root, pg_ctl re-run as the
`postgres` OS user through runuser; data on /dev/shm; fsync off) and its pg_ctl lookup, so
the benchmark's server is the suite's server. One server per harness invocation, one fresh
database per benchmark run.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy.engine import URL


class _NoOptions:
    """Stands in for the pytest config that `_find_pg_ctl` reads `--postgresql-exec` from."""

    def getoption(self, name: str, default: Any = None) -> Any:
        return default


class PostgresServer:
    """Start on `__enter__`, stop and remove everything on `__exit__` (also on errors)."""

    def __init__(self) -> None:
        from tests.postgres import _find_pg_ctl, _Server

        pg_ctl = _find_pg_ctl(_NoOptions())  # type: ignore[arg-type]
        if pg_ctl is None:
            raise RuntimeError("pg_ctl not found: install the PostgreSQL server binaries")
        self._server = _Server(pg_ctl)
        self.executor: Any = None

    def __enter__(self) -> PostgresServer:
        try:
            self.executor = self._server.start()
        except BaseException as exc:  # pytest.fail raises a BaseException subclass
            self._server.cleanup()
            raise RuntimeError(f"PostgreSQL did not start: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._server.cleanup()

    def create_database(self, stem: str) -> tuple[str, Any]:
        """Create an empty database; return its SQLAlchemy URL and the janitor that drops it."""
        from pytest_postgresql.janitor import DatabaseJanitor

        ex = self.executor
        name = f"bench_{stem}_{uuid.uuid4().hex[:8]}"
        janitor = DatabaseJanitor(
            user=ex.user, host=ex.host, port=ex.port, dbname=name, password=ex.password,
            connection_timeout=10,
        )  # fmt: skip
        janitor.init()
        url = URL.create(
            "postgresql+psycopg", username=ex.user, password=ex.password, host=ex.host,
            port=ex.port, database=name,
        ).render_as_string(hide_password=False)  # fmt: skip
        return url, janitor
