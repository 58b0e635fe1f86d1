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
offers no hook to choose another location. Its executor and ``DatabaseJanitor`` carry no
such assumption, so this plugin drives those directly. (``trust`` instead of a password:
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
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mirakuru.exceptions import AlreadyRunning
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy.engine import URL

HOST = "127.0.0.1"
SUPERUSER = "postgres"  # database role created by initdb; not the OS user
START_TIMEOUT = 30  # seconds, for initdb / pg_ctl start / pg_ctl stop each
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40
MIN_TMPFS_FREE = 1 << 30  # bytes free on /dev/shm before the cluster is put there

# Throwaway cluster: durability off makes startup and CREATE DATABASE fast.
SERVER_OPTIONS = (
    f"-c listen_addresses={HOST} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
)


# --------------------------------------------------------------------------- helpers


def _find_pg_ctl(config: pytest.Config) -> str | None:
    """Locate pg_ctl; None if it is nowhere to be found."""
    explicit = config.getoption("postgresql_exec", default=None)
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


def _scratch_parent() -> str:
    """Where the cluster lives: $PYTEST_PG_TMPDIR, else a roomy tmpfs, else the temp dir.

    A tmpfs keeps initdb, WAL and the final removal of the ~1000 cluster files off the disk;
    the cluster needs ~50 MB, so a small (e.g. Docker's default 64 MB) /dev/shm is skipped.
    """
    explicit = os.environ.get("PYTEST_PG_TMPDIR")
    if explicit:
        return explicit
    shm = "/dev/shm"
    with contextlib.suppress(OSError):
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= MIN_TMPFS_FREE:
            return shm
    return tempfile.gettempdir()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


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
        pytest.fail(
            f"Running as root, but there is no {os_user!r} OS user to run PostgreSQL as "
            "(PostgreSQL refuses to run as root). Create it or set PYTEST_PG_OS_USER.",
            pytrace=False,
        )
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if not os.access(runuser, os.X_OK):
        pytest.fail(
            "Running as root, but `runuser` (util-linux) was not found; it is needed to run "
            f"PostgreSQL as {os_user!r}.",
            pytrace=False,
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


class _Server:
    """Owns the run directory, the pg_ctl wrapper and the executor; cleanup is idempotent."""

    def __init__(self, pg_ctl: str) -> None:
        self.pg_ctl = pg_ctl
        self.executor: PostgreSQLExecutor | None = None
        owner, command = _pg_ctl_command(pg_ctl)  # fails before anything is created
        self.base = Path(tempfile.mkdtemp(prefix="pytest-pg-", dir=_scratch_parent()))
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
        log_tail = ""
        for _attempt in range(PORT_ATTEMPTS):
            self._remove_datadir()
            self.logfile.unlink(missing_ok=True)
            executor = PostgreSQLExecutor(
                executable=str(self.wrapper),
                host=HOST,
                port=_free_port(),
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
                log_tail = _tail(self.logfile)
                failures.append(f"port {executor.port}: {_describe(exc)}")
                self._stop_executor()
                # Someone took the port between choosing and binding it: try another one.
                if isinstance(exc, AlreadyRunning) or "could not bind" in log_tail:
                    continue
                break
            else:
                return executor
        self.cleanup()
        pytest.fail(
            f"PostgreSQL server did not start (pg_ctl: {self.pg_ctl}).\n"
            + "\n".join(failures)
            + f"\n--- server log tail ({self.logfile}) ---\n{log_tail}",
            pytrace=False,
        )

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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def postgresql_server(request: pytest.FixtureRequest) -> Iterator[PostgreSQLExecutor]:
    """Start one PostgreSQL server for the session; yield pytest-postgresql's executor."""
    pg_ctl = _find_pg_ctl(request.config)
    if pg_ctl is None:
        pytest.skip(
            "PostgreSQL tests need `pg_ctl`, which is not on PATH, not reported by "
            "`pg_config --bindir` and not under /usr/lib/postgresql/*/bin; install the "
            "PostgreSQL server binaries or pass --postgresql-exec=/path/to/pg_ctl."
        )
    if not os.access(pg_ctl, os.X_OK):
        pytest.fail(f"--postgresql-exec points at {pg_ctl}, which is not executable.")

    server = _Server(pg_ctl)
    atexit.register(server.cleanup)  # backstop if the session dies before teardown
    try:
        yield server.start()
    finally:
        server.cleanup()
        atexit.unregister(server.cleanup)


def _database_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{stem}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_url(postgresql_server: PostgreSQLExecutor, request: pytest.FixtureRequest) -> Iterator[str]:
    """Create a fresh empty database for this test; yield its SQLAlchemy URL; drop it after."""
    server = postgresql_server
    janitor = DatabaseJanitor(
        user=server.user,
        host=server.host,
        port=server.port,
        dbname=_database_name(request),
        password=server.password,
        connection_timeout=10,
    )
    # drop() refuses new connections, terminates leftover ones, then drops the database.
    with janitor:
        yield URL.create(
            "postgresql+psycopg",
            username=server.user,
            password=server.password,
            host=server.host,
            port=server.port,
            database=janitor.dbname,
        ).render_as_string(hide_password=False)
