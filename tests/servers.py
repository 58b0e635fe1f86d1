"""What the suite's throwaway servers share (tests/postgres.py, tests/mariadb.py, Prefect's).

Where a server's files go, a free port, the tail of its log, and the per-test database
janitor: `throwaway_database` creates a database, yields its URL and then terminates the
connections still using it and drops it, the same way on PostgreSQL and on MariaDB; and
`migrated_prefect_database`, which Prefect's test servers start on. The
benchmarks (bench/) use the same janitor and `tests.postgres.PostgresServer`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

HOST = "127.0.0.1"
LOG_TAIL_LINES = 40
MIN_TMPFS_FREE = 1 << 30  # bytes free on /dev/shm before a server's files are put there


class ServerDidNotStart(RuntimeError):
    """A throwaway server could not be started; the message carries its log's tail."""


def scratch_parent(override: str) -> str:
    """Where a server's files live: $override, else a roomy tmpfs, else the temp dir.

    A tmpfs keeps initialisation, logs and the final removal off the disk; a server needs
    ~50 MB, so a small (e.g. Docker's default 64 MB) /dev/shm is skipped.
    """
    explicit = os.environ.get(override)
    if explicit:
        return explicit
    shm = "/dev/shm"
    with contextlib.suppress(OSError):
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= MIN_TMPFS_FREE:
            return shm
    return tempfile.gettempdir()


def migrated_prefect_database(tmp_path_factory: pytest.TempPathFactory, target: Path) -> None:
    """Make `target` a Prefect database already migrated, for a Prefect server to start on.

    A Prefect server migrates an empty database as it starts: 10 s of its 20 s of CPU (11.2 s
    against 20.9 s, measured by hand), and `make test` starts one per xdist worker and two
    more. The first worker to ask migrates one for the session (`prefect server database
    upgrade`, under a lock); each server's is a copy of it.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    template = shared / "prefect-migrated.db"
    with (shared / "prefect-migrated.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            making = shared / "prefect-migrating.db"
            url = f"sqlite+aiosqlite:///{making}"
            done = subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env=os.environ | {"PREFECT_SERVER_DATABASE_CONNECTION_URL": url},
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise ServerDidNotStart(f"migrating a Prefect database failed:\n{done.stderr}")
            making.rename(template)
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a server's log, or why there are none."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def database_name(stem: str) -> str:
    """A unique database name from `stem` (at most 53 characters: MariaDB allows 64)."""
    stem = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")[:40]
    return f"t_{stem}_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class _Janitor:
    """The statements that create a database, find and end its connections, and drop it."""

    create: str
    others: str  # the ids of other connections using :name
    end: str  # ends one of them
    drop: str


JANITORS = {
    "postgresql": _Janitor(
        create='CREATE DATABASE "{name}"',
        others="SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()",
        end="SELECT pg_terminate_backend({id})",
        drop='DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',  # refuses new connections too
    ),
    "mysql": _Janitor(
        create="CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        others="SELECT id FROM information_schema.processlist WHERE db = :name "
        "AND id <> connection_id()",
        end="KILL {id}",
        drop="DROP DATABASE IF EXISTS `{name}`",
    ),
}


def _admin(server_url: str) -> sa.Engine:
    return sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def create_database(server_url: str, name: str) -> str:
    """Create an empty database `name` on the server at `server_url`; return its URL."""
    engine = _admin(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(JANITORS[engine.dialect.name].create.format(name=name)))
    finally:
        engine.dispose()
    url = sa.make_url(server_url).set(database=name)
    return url.render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """End the connections still using `name` (an open transaction too), then drop it."""
    engine = _admin(server_url)
    janitor = JANITORS[engine.dialect.name]
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "mysql":  # DROP waits for a killed thread's locks
                conn.execute(sa.text("SET SESSION lock_wait_timeout = 30"))
            for (other,) in conn.execute(sa.text(janitor.others), {"name": name}).all():
                with contextlib.suppress(sa.exc.DBAPIError):  # it may have just gone
                    conn.execute(sa.text(janitor.end.format(id=int(other))))
            conn.execute(sa.text(janitor.drop.format(name=name)))
    finally:
        engine.dispose()


@contextlib.contextmanager
def throwaway_database(server_url: str, name: str) -> Iterator[str]:
    """Create database `name`, yield its URL, then drop it whatever happened."""
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)
