"""Pytest plugin: one throwaway MariaDB server per test session, one database per test.

Load it with ``pytest_plugins = ["tests.mariadb"]`` (or ``-p tests.mariadb``).

Fixtures
--------
``mariadb_server`` (session)
    Initialises a fresh data directory with ``mariadb-install-db`` (or ``mysql_install_db``)
    and starts ``mariadbd --no-defaults`` on 127.0.0.1 on a free port, with its own socket,
    pid file, error log and temp dir, and yields a ``MariaDBServer`` (``.host``, ``.port``,
    ``.user``, ``.socket``, ``.datadir``, ``.logfile``, ``.version``, ``.url(database)``).
    The server is stopped and its files removed at the end of the session, whether tests
    pass or fail (and killed by the kernel should the pytest process itself be killed).
``mysql_url`` (function)
    Creates a fresh, empty database (utf8mb4, ``utf8mb4_unicode_ci``) with a unique name on
    that server and yields its SQLAlchemy URL,
    ``mysql+pymysql://root@127.0.0.1:PORT/DBNAME?charset=utf8mb4``. After the test,
    leftover connections to it are killed and the database is dropped.

If no MariaDB server binary can be found the fixtures skip, saying what to install
(``make test`` installs it through ``.ci/install-mariadb`` when run as root); if one is found
but the server cannot start, they fail with the server log tail.

The server
----------
Throwaway and fast: durability is off (``--innodb-flush-log-at-trx-commit=0``,
``--innodb-doublewrite=0``, ``--skip-log-bin``), the buffer pool and redo log are small
(64 MB, 16 MB), the performance schema and name resolution are off. The data directory
takes ~35 MB; ``mariadb-install-db`` takes 0.5-1.5 s and the server accepts connections
0.3-0.6 s later (2 cores, idle to busy); stopping it and removing its files, ~0.1 s. The
server's character set is utf8mb4 with ``utf8mb4_unicode_ci`` (a common choice, and not the
connection's ``utf8mb4_general_ci``, so a mix of collations shows up in the tests). Its
files live in a fresh ``pytest-mariadb-*`` directory under ``/dev/shm`` when that is a roomy
tmpfs (else the system temp dir; ``PYTEST_MARIADB_TMPDIR`` overrides). The database user is
``root`` with no password (``--auth-root-authentication-method=normal``: a password-less
``root@127.0.0.1`` account rather than unix-socket authentication), reached over TCP.

Running as root (sessions and CI do)
------------------------------------
mariadbd refuses to run as root unless told ``--user=root``. This plugin does exactly that
(and passes ``--user=root`` to ``mariadb-install-db`` too) rather than switching to the
``mysql`` OS user the way tests/postgres.py switches to ``postgres``: the server listens only
on 127.0.0.1 and only ever holds throwaway test data in a private directory, so running it
as root costs nothing, while running it as ``mysql`` would need that user to exist (only
Debian's ``mariadb-server`` package creates it, ``mariadb-server-core`` does not), ``runuser``,
and the run directory chowned to it. mariadbd is started directly (no ``mysqld_safe``, no
daemonizing), so it is this process's own child: it is stopped with SIGTERM and waited for,
and ``PR_SET_PDEATHSIG`` makes the kernel kill it if pytest dies without tearing down. Not
running as root, the server simply runs as the current user.

Options: ``--mariadb-exec PATH`` picks the server binary; otherwise ``mariadbd`` (then a
``mysqld`` that is MariaDB's) on PATH, then in /usr/sbin, /usr/local/sbin, /usr/libexec.
A MySQL server binary is not used: MySQL 8 is supported by rootfi-sync through the same
``mysql+pymysql://`` dialect, but the suite's own server is MariaDB (Debian 12 ships it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pymysql
import pytest
from sqlalchemy.engine import URL

from tests.servers import (
    HOST,
    database_name,
    free_port,
    log_tail,
    scratch_parent,
    throwaway_database,
)

USER = "root"
START_TIMEOUT = 30  # seconds, for install-db, start-up and shut-down each
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40
NOT_LISTENING_YET = {2002, 2003, 2006, 2013}  # client error codes while the server starts
SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec")
INSTALL_HINT = (
    "install Debian's MariaDB server with `apt-get install --no-install-recommends "
    "mariadb-server` as root (`make test` does this itself when run as root, through "
    ".ci/install-mariadb), or pass --mariadb-exec=/path/to/mariadbd"
)

# Sizes for install-db's bootstrap server and the server alike: small files, quick start.
SIZE_OPTIONS = ("--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M")
SERVER_OPTIONS = (
    *SIZE_OPTIONS,
    "--skip-log-bin",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--skip-performance-schema",
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
    "--max-connections=300",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--mariadb-exec",
        default=None,
        help="MariaDB server binary (mariadbd) for the MariaDB tests' throwaway server.",
    )


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class MariaDBServer:
    """A running throwaway server, as the `mariadb_server` fixture yields it."""

    host: str
    port: int
    user: str
    socket: Path
    datadir: Path
    logfile: Path
    version: str

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL of `database` (or of no database) on this server."""
        return URL.create(
            "mysql+pymysql",
            username=self.user,
            host=self.host,
            port=self.port,
            database=database,
            query={"charset": "utf8mb4"},
        ).render_as_string(hide_password=False)

    def connect(self, **kwargs: Any) -> pymysql.connections.Connection:
        """A plain PyMySQL connection as root (autocommit), for fixtures and checks."""
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=5,
            **kwargs,
        )


def _is_mariadb(binary: str) -> bool:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        return "mariadb" in out.lower()
    return False


def _find_server(config: pytest.Config) -> str | None:
    """Locate mariadbd (or a mysqld that is MariaDB's); None if there is none."""
    explicit = config.getoption("mariadb_exec", default=None)
    if explicit:
        # An explicit choice that does not exist is an error, not a reason to skip.
        return os.path.realpath(explicit)
    for name in ("mariadbd", "mysqld"):
        candidates = [shutil.which(name), *(os.path.join(d, name) for d in SEARCH_DIRS)]
        for candidate in candidates:
            if candidate and os.access(candidate, os.X_OK) and _is_mariadb(candidate):
                return os.path.realpath(candidate)
    return None


def _find_install_db(server: str) -> str | None:
    """Locate mariadb-install-db (or mysql_install_db), preferring the server's own bin dir."""
    prefix = Path(server).parent.parent
    for name in ("mariadb-install-db", "mysql_install_db"):
        for candidate in (prefix / "bin" / name, prefix / "scripts" / name):
            if os.access(candidate, os.X_OK):
                return str(candidate)
        found = shutil.which(name)
        if found:
            return found
    return None


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGKILL the child when pytest dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return preexec


class _Server:
    """Owns the run directory and the server process; cleanup is idempotent."""

    def __init__(self, server: str, install_db: str) -> None:
        self.server, self.install_db = server, install_db
        self.process: subprocess.Popen[bytes] | None = None
        scratch = scratch_parent("PYTEST_MARIADB_TMPDIR")
        self.base = Path(tempfile.mkdtemp(prefix="pytest-mariadb-", dir=scratch))
        self.datadir = self.base / "data"
        self.tmpdir = self.base / "tmp"
        self.socket = self.base / "mariadb.sock"
        self.pidfile = self.base / "mariadb.pid"
        self.logfile = self.base / "server.log"
        self.as_root = ("--user=root",) if os.geteuid() == 0 else ()

    def initialise(self) -> None:
        """Create the system tables in a fresh data directory (~0.5 s)."""
        self.datadir.mkdir()
        self.tmpdir.mkdir()
        command = [
            self.install_db,
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            f"--datadir={self.datadir}",
            *self.as_root,
            "--skip-test-db",
            # Debian's script finds its SQL files and mariadbd from --basedir=/usr.
            f"--basedir={Path(self.server).parent.parent}",
            *SIZE_OPTIONS,
        ]
        try:
            result = subprocess.run(
                command, cwd="/", capture_output=True, text=True, timeout=START_TIMEOUT
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self.fail(f"{' '.join(command)} could not run: {exc}")
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
            self.fail(
                f"{' '.join(command)} exited {result.returncode}:\n" + "\n".join(output),
                log=False,
            )

    def start(self) -> MariaDBServer:
        failures: list[str] = []
        for _attempt in range(PORT_ATTEMPTS):
            port = free_port()
            self.logfile.unlink(missing_ok=True)
            command = [
                self.server,
                "--no-defaults",
                *self.as_root,
                f"--datadir={self.datadir}",
                f"--tmpdir={self.tmpdir}",
                f"--socket={self.socket}",
                f"--pid-file={self.pidfile}",
                f"--log-error={self.logfile}",
                f"--bind-address={HOST}",
                f"--port={port}",
                *SERVER_OPTIONS,
            ]
            with open(self.base / "stdout.log", "ab") as out:
                self.process = subprocess.Popen(
                    command,
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent(),
                )
            error = self._wait_ready(port)
            if error is None:
                return MariaDBServer(
                    HOST, port, USER, self.socket, self.datadir, self.logfile, self._version(port)
                )
            failures.append(f"port {port}: {error}")
            log = log_tail(self.logfile)
            self._stop_process()
            # Someone took the port between choosing and binding it: try another one.
            if "Address already in use" not in log and "Bind on TCP/IP port" not in log:
                break
        self.fail("\n".join(failures))

    def _wait_ready(self, port: int) -> str | None:
        """None once the server accepts connections; else why it never did."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                return f"mariadbd exited with status {code} before accepting connections"
            try:
                pymysql.connect(host=HOST, port=port, user=USER, connect_timeout=2).close()
            except pymysql.err.MySQLError as exc:
                if exc.args and exc.args[0] not in NOT_LISTENING_YET:
                    return f"connecting failed: {exc}"
                last_error = exc
                time.sleep(0.05)
            else:
                return None
        return f"not accepting connections after {START_TIMEOUT} s (last error: {last_error})"

    def _version(self, port: int) -> str:
        with contextlib.closing(pymysql.connect(host=HOST, port=port, user=USER)) as conn:
            return re.sub(r"^5\.5\.5-", "", str(conn.get_server_info()))  # the protocol's prefix

    def fail(self, message: str, *, log: bool = True) -> NoReturn:
        tail = f"\n--- server log tail ({self.logfile}) ---\n{log_tail(self.logfile)}"
        tail = tail if log else ""
        self.cleanup()
        pytest.fail(
            f"MariaDB server did not start ({self.server}).\n{message}{tail}", pytrace=False
        )

    def _stop_process(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # mariadbd shuts down cleanly on SIGTERM
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=START_TIMEOUT)

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_process()
        shutil.rmtree(self.base, ignore_errors=True)


# --------------------------------------------------------------------------- fixtures


def _require_binaries(config: pytest.Config) -> tuple[str, str]:
    """The server binary and its install-db script; skips, saying what to install, if absent."""
    binary = _find_server(config)
    if binary is None:
        pytest.skip(
            "MariaDB tests need the MariaDB server binary `mariadbd`, which is not on PATH "
            f"nor in {', '.join(SEARCH_DIRS)}: {INSTALL_HINT}."
        )
    if not os.access(binary, os.X_OK):
        pytest.fail(f"--mariadb-exec points at {binary}, which is not executable.")
    install_db = _find_install_db(binary)
    if install_db is None:
        pytest.skip(
            f"MariaDB tests found {binary} but not `mariadb-install-db` (or "
            f"`mysql_install_db`) to create its data directory with: {INSTALL_HINT}."
        )
    return binary, install_db


@pytest.fixture(scope="session")
def mariadb_server(request: pytest.FixtureRequest) -> Iterator[MariaDBServer]:
    """Start one MariaDB server for the session; yield where it listens."""
    server = _Server(*_require_binaries(request.config))
    atexit.register(server.cleanup)  # backstop if the session dies before teardown
    try:
        server.initialise()
        yield server.start()
    finally:
        server.cleanup()
        atexit.unregister(server.cleanup)


@pytest.fixture
def mysql_url(mariadb_server: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """Create a fresh empty database for this test; yield its SQLAlchemy URL; drop it after."""
    with throwaway_database(mariadb_server.url(), database_name(request.node.name)) as url:
        yield url
