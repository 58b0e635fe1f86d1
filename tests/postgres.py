"""Pytest plugin: one throwaway PostgreSQL server per test session, one database per test.

Load it with ``pytest_plugins = ["tests.postgres"]`` (or ``-p tests.postgres``).

Fixtures
--------
``postgresql_server`` (session)
    Starts a single PostgreSQL server for the whole session with pytest-postgresql's
    ``PostgreSQLExecutor`` (initdb + ``pg_ctl start``), listening on 127.0.0.1 on a
    free port with ``trust`` auth, and yields that executor (``.host``, ``.port``,
    ``.user``, ``.password``, ``.logfile``, ``.datadir``). The server is stopped and
    its files removed at the end of the session, whether tests pass or fail.
``pg_url`` (function)
    Creates a fresh, empty database with a unique name on that server and yields its
    SQLAlchemy URL, ``postgresql+psycopg://postgres@127.0.0.1:PORT/DBNAME``. After the
    test, leftover connections are terminated and the database is dropped.

If ``pg_ctl`` cannot be found at all the fixtures skip; if it is found but the server
cannot start, they fail with the server log tail.

Running as root (sessions and CI do)
------------------------------------
PostgreSQL refuses to run as root. pg_ctl is therefore always called through a small
generated wrapper script; when the effective uid is 0 the wrapper re-runs pg_ctl as the
``postgres`` OS user via ``runuser -u postgres --`` (from ``/``, so an unreadable
working directory does not matter). The data directory, Unix socket and server log live
in a fresh ``pytest-pg-*/run`` directory chowned to that user, under ``/dev/shm`` when
it is a roomy tmpfs (else the system temp dir; ``PYTEST_PG_TMPDIR`` overrides).

Why not pytest-postgresql's ``factories.postgresql_proc`` fixture itself: it always puts
the data directory and the server log under pytest's basetemp
(``/tmp/pytest-of-root/...``), which pytest creates with mode 0700 for root, so the
``postgres`` user can neither create the cluster nor write the log there, and the factory
offers no hook to choose another location. Its executor carries no such assumption, so this
plugin drives it directly; each test's database is made and dropped by ``tests.servers``'
janitor, which the MariaDB plugin shares. (``trust`` instead of a password:
the executor writes the initdb password file root-only 0600, which ``postgres`` cannot
read.)

Options: ``--postgresql-exec PATH`` (pytest-postgresql's own option) picks the pg_ctl;
otherwise ``pg_ctl`` on PATH, then ``pg_config --bindir``, then the newest
``/usr/lib/postgresql/*/bin/pg_ctl``. ``PYTEST_PG_OS_USER`` overrides the OS user
(default ``postgres``) used when running as root.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from mirakuru.exceptions import AlreadyRunning
from pytest_postgresql.executors import PostgreSQLExecutor
from sqlalchemy.engine import URL

from tests.servers import (
    HOST,
    ServerDidNotStart,
    database_name,
    free_port,
    log_tail,
    scratch_parent,
    throwaway_database,
)

SUPERUSER = "postgres"  # database role created by initdb; not the OS user
START_TIMEOUT = 60  # seconds, for initdb / pg_ctl start / the first connection / pg_ctl stop
PORT_ATTEMPTS = 3

# Throwaway cluster: durability off makes startup and CREATE DATABASE fast.
SERVER_OPTIONS = (
    f"-c listen_addresses={HOST} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
)


# --------------------------------------------------------------------------- helpers


def find_pg_ctl(explicit: str | None = None) -> str | None:
    """Locate pg_ctl (`explicit` if given); None if it is nowhere to be found."""
    if explicit:
        # An explicit choice that does not exist is an error, not a reason to skip.
        return os.path.realpath(explicit)
    found = shutil.which("pg_ctl")
    if found:
        return os.path.realpath(found)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        candidate = os.path.join(bindir, "pg_ctl")
        if os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)

    def major(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else -1

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=major, reverse=True)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    output = getattr(exc, "output", None)  # CalledProcessError from initdb
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    if output:
        text += f"\n--- command output ---\n{output.rstrip()}"
    return text


def _pg_ctl_command(pg_ctl: str) -> tuple[tuple[int, int] | None, str]:
    """Shell command that runs pg_ctl, and the (uid, gid) to own the cluster (None: us).

    As root, pg_ctl (and so initdb/postgres) is re-run as an unprivileged OS user.
    """
    if os.geteuid() != 0:
        return None, shlex.quote(pg_ctl)
    os_user = os.environ.get("PYTEST_PG_OS_USER", "postgres")
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise ServerDidNotStart(
            f"Running as root, but there is no {os_user!r} OS user to run PostgreSQL as "
            "(PostgreSQL refuses to run as root). Create it or set PYTEST_PG_OS_USER."
        ) from None
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if not os.access(runuser, os.X_OK):
        raise ServerDidNotStart(
            "Running as root, but `runuser` (util-linux) was not found; it is needed to run "
            f"PostgreSQL as {os_user!r}."
        )
    command = f"{shlex.quote(runuser)} -u {shlex.quote(os_user)} -- {shlex.quote(pg_ctl)}"
    return (entry.pw_uid, entry.pw_gid), command


def _postmaster_pid(datadir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((datadir / "postmaster.pid").read_text().splitlines()[0])
    return None


def _proc_state(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _wait_gone(pid: int, timeout: float = 3.0) -> None:
    """Wait until the stopped postmaster has disappeared from the process table.

    pg_ctl daemonizes the postmaster, so once it exits it is reaped by init, not by us; some
    inits (e.g. this VM's) take ~1.5 s to do so, and a `<defunct>` postgres entry in `ps`
    looks like a leak. If it is somehow still running after the timeout, SIGKILL it.
    """
    first = _proc_state(pid)
    if first is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = _proc_state(pid)
        if current is None or current[1] != first[1]:  # gone (or the pid was reused)
            return
        time.sleep(0.02)
    current = _proc_state(pid)
    if current is not None and current[1] == first[1] and current[0] not in ("Z", "X"):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class PostgresServer:
    """Owns the run directory, the pg_ctl wrapper and the executor; cleanup is idempotent."""

    def __init__(self, pg_ctl: str) -> None:
        self.pg_ctl = pg_ctl
        self.executor: PostgreSQLExecutor | None = None
        owner, command = _pg_ctl_command(pg_ctl)  # fails before anything is created
        scratch = scratch_parent("PYTEST_PG_TMPDIR")
        self.base = Path(tempfile.mkdtemp(prefix="pytest-pg-", dir=scratch))
        self.run_dir = self.base / "run"  # data dir, socket and log: owned by the server user
        self.run_dir.mkdir(mode=0o700)
        self.wrapper = self.base / "pg_ctl"
        self.logfile = self.run_dir / "postgresql.log"
        if owner is not None:
            # base stays root-owned (it holds the wrapper root executes) but traversable.
            self.base.chmod(0o755)
            os.chown(self.run_dir, *owner)
        # cd /          the server user may not be able to read the caller's cwd (e.g. /root).
        # --no-sync     initdb skips fsync of the new cluster (seconds saved; pg_ctl joins -o's).
        # 2>&1          initdb/pg_ctl errors land in the captured output shown on failure.
        self.wrapper.write_text(
            "#!/bin/sh\n"
            "cd / || exit 1\n"
            'if [ "$1" = initdb ]; then set -- "$@" -o --no-sync; fi\n'
            f'exec {command} "$@" 2>&1\n'
        )
        self.wrapper.chmod(0o755)

    def start(self) -> PostgreSQLExecutor:
        failures: list[str] = []
        tail = ""
        for _attempt in range(PORT_ATTEMPTS):
            self._remove_datadir()
            self.logfile.unlink(missing_ok=True)
            executor = PostgreSQLExecutor(
                executable=str(self.wrapper),
                host=HOST,
                port=free_port(),
                datadir=str(self.run_dir / "data"),
                unixsocketdir=str(self.run_dir),
                logfile=str(self.logfile),
                startparams=f"-w -t {START_TIMEOUT}",
                dbname="tests",
                user=SUPERUSER,
                password=None,
                postgres_options=SERVER_OPTIONS,
                timeout=START_TIMEOUT,
            )
            self.executor = executor
            try:
                executor.start()
            except Exception as exc:
                tail = log_tail(self.logfile)
                failures.append(f"port {executor.port}: {_describe(exc)}")
                self._stop_executor()
                # Someone took the port between choosing and binding it: try another one.
                if isinstance(exc, AlreadyRunning) or "could not bind" in tail:
                    continue
                break
            else:
                if self._ready(executor):
                    return executor
                tail = log_tail(self.logfile)
                failures.append(f"port {executor.port}: not accepting connections")
                break
        self.cleanup()
        raise ServerDidNotStart(
            f"PostgreSQL server did not start (pg_ctl: {self.pg_ctl}).\n"
            + "\n".join(failures)
            + f"\n--- server log tail ({self.logfile}) ---\n{tail}"
        )

    @staticmethod
    def _ready(executor: PostgreSQLExecutor) -> bool:
        """Wait (up to START_TIMEOUT) until the server takes a connection; whether it did.

        The executor returns once the port listens, and `pg_ctl -w` gives up after its
        timeout: on a loaded machine the first test then met "the database system is
        starting up".
        """
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                psycopg.connect(
                    host=executor.host,
                    port=executor.port,
                    user=executor.user,
                    dbname="postgres",
                    connect_timeout=5,
                ).close()
                return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)

    def _stop_executor(self) -> None:
        executor, self.executor = self.executor, None
        if executor is None:
            return
        postmaster = _postmaster_pid(Path(executor.datadir))
        with contextlib.suppress(Exception):
            executor.stop()
        with contextlib.suppress(Exception):
            if executor.running():  # pg_ctl stop failed: make sure nothing outlives us
                subprocess.run(
                    [str(self.wrapper), "stop", "-D", executor.datadir, "-m", "immediate"],
                    capture_output=True,
                    timeout=START_TIMEOUT,
                    check=False,
                )
        with contextlib.suppress(Exception):
            executor.kill()  # also kills anything carrying this executor's env marker
        if postmaster is not None:
            _wait_gone(postmaster)

    def _remove_datadir(self) -> None:
        shutil.rmtree(self.run_dir / "data", ignore_errors=True)

    def cleanup(self) -> None:
        self._stop_executor()
        shutil.rmtree(self.base, ignore_errors=True)


def server_url(executor: PostgreSQLExecutor, database: str = "postgres") -> str:
    """SQLAlchemy URL (psycopg 3) of `database` on the server `executor` runs."""
    return URL.create(
        "postgresql+psycopg",
        username=executor.user,
        password=executor.password or None,
        host=executor.host,
        port=executor.port,
        database=database,
    ).render_as_string(hide_password=False)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def postgresql_server(request: pytest.FixtureRequest) -> Iterator[PostgreSQLExecutor]:
    """Start one PostgreSQL server for the session; yield pytest-postgresql's executor."""
    pg_ctl = find_pg_ctl(request.config.getoption("postgresql_exec", default=None))
    if pg_ctl is None:
        pytest.skip(
            "PostgreSQL tests need `pg_ctl`, which is not on PATH, not reported by "
            "`pg_config --bindir` and not under /usr/lib/postgresql/*/bin; install the "
            "PostgreSQL server binaries or pass --postgresql-exec=/path/to/pg_ctl."
        )
    if not os.access(pg_ctl, os.X_OK):
        pytest.fail(f"--postgresql-exec points at {pg_ctl}, which is not executable.")
    try:
        server = PostgresServer(pg_ctl)
        atexit.register(server.cleanup)  # backstop if the session dies before teardown
        executor = server.start()
    except ServerDidNotStart as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield executor
    finally:
        server.cleanup()
        atexit.unregister(server.cleanup)


@pytest.fixture
def pg_url(postgresql_server: PostgreSQLExecutor, request: pytest.FixtureRequest) -> Iterator[str]:
    """Create a fresh empty database for this test; yield its SQLAlchemy URL; drop it after."""
    with throwaway_database(server_url(postgresql_server), database_name(request.node.name)) as url:
        yield url
