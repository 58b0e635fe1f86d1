"""The suite's own database servers (tests/postgres.py, tests/mariadb.py): a real PostgreSQL 15
and a real MariaDB 10.11, one fresh database per test, dropped after it by one janitor."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests import mariadb
from tests.mariadb import MariaDBServer
from tests.servers import create_database, drop_database

POSTGRES = pytest.param("pg_url", marks=pytest.mark.postgres, id="postgresql")
MARIADB = pytest.param("mysql_url", marks=pytest.mark.mariadb, id="mariadb")
# What each server answers: driver, `SELECT version()` prefix and marker, current database,
# and every database it holds.
EXPECTED = {
    "pg_url": ("postgresql+psycopg", "PostgreSQL 15.", "PostgreSQL"),
    "mysql_url": ("mysql+pymysql", "10.11.", "MariaDB"),
}
CURRENT = {"pg_url": "SELECT current_database()", "mysql_url": "SELECT database()"}
DATABASES = {
    "pg_url": "SELECT datname FROM pg_database",
    "mysql_url": "SELECT schema_name FROM information_schema.schemata",
}


@pytest.fixture(params=[POSTGRES, MARIADB])
def kind(request: pytest.FixtureRequest) -> str:
    """Which fixture gives the test its database: `pg_url`, then `mysql_url`."""
    name: str = request.param
    return name


@pytest.fixture
def url(kind: str, request: pytest.FixtureRequest) -> str:
    """A fresh database on that server."""
    value: str = request.getfixturevalue(kind)
    return value


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_round_trip_with_four_byte_text(engine: Engine, url: str, kind: str) -> None:
    driver, version_prefix, product = EXPECTED[kind]
    assert (make_url(url).drivername, make_url(url).host) == (driver, "127.0.0.1")

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE widgets (id integer PRIMARY KEY, name text NOT NULL)"))
        conn.execute(
            text("INSERT INTO widgets (id, name) VALUES (:id, :name)"),
            [{"id": 1, "name": "bolt ✓"}, {"id": 2, "name": "nut 🔩"}],
        )
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name FROM widgets ORDER BY id")).all()
        version = conn.execute(text("SELECT version()")).scalar_one()
        database = conn.execute(text(CURRENT[kind])).scalar_one()

    assert [tuple(row) for row in rows] == [(1, "bolt ✓"), (2, "nut 🔩")]
    assert version.startswith(version_prefix) and product in version, version
    assert database == make_url(url).database


# Each run gets its own database: whichever runs second must not see the first one's table,
# and the two URLs name different databases.
_seen_databases: list[str] = []


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_its_own_empty_database(
    engine: Engine, url: str, kind: str, run: str
) -> None:
    database = make_url(url).database
    assert database is not None
    assert database not in _seen_databases
    assert inspect(engine).get_table_names() == []

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE marker (run text)"))
        conn.execute(text("INSERT INTO marker VALUES (:run)"), {"run": run})
        others = conn.execute(text(DATABASES[kind])).scalars().all()

    # The previous tests' databases were dropped after those tests finished.
    assert set(others).isdisjoint(_seen_databases)
    _seen_databases.append(database)


def test_a_database_left_in_an_open_transaction_is_still_dropped(url: str, kind: str) -> None:
    server = make_url(url).set(database="postgres" if kind == "pg_url" else None)
    server_url = server.render_as_string(hide_password=False)
    name = "t_open_transaction_" + os.urandom(4).hex()
    engine = create_engine(create_database(server_url, name))
    leaked = engine.connect()  # left open, as a test that forgot it would
    leaked.execute(text("CREATE TABLE t (id int)"))
    leaked.execute(text("INSERT INTO t VALUES (1)"))  # holds a lock on t
    try:
        started = time.monotonic()
        drop_database(server_url, name)  # DROP would wait for that lock: it is ended
        assert time.monotonic() - started < 10
        admin = create_engine(server_url)
        with admin.connect() as conn:
            assert name not in conn.execute(text(DATABASES[kind])).scalars().all()
        admin.dispose()
    finally:
        leaked.invalidate()  # its server connection is gone: drop it without a rollback
        leaked.close()
        engine.dispose()


@pytest.mark.mariadb
def test_the_mariadb_server_runs_throwaway_and_fast(
    mysql_url: str, mariadb_server: MariaDBServer
) -> None:
    engine = create_engine(mysql_url)
    with engine.connect() as conn:
        settings = conn.execute(
            text(
                "SELECT @@innodb_flush_log_at_trx_commit, @@log_bin, @@bind_address, @@port, "
                "@@datadir, @@character_set_server, version()"
            )
        ).one()
    engine.dispose()
    flush, log_bin, bind, port, datadir, charset, version = settings
    assert (flush, log_bin, bind, port, charset) == (
        0,
        0,
        "127.0.0.1",
        mariadb_server.port,
        "utf8mb4",
    )
    assert mariadb_server.version == version
    assert Path(datadir).resolve() == mariadb_server.datadir.resolve()
    assert mariadb_server.socket.is_socket() and mariadb_server.logfile.exists()
    if os.access("/dev/shm", os.W_OK) and "PYTEST_MARIADB_TMPDIR" not in os.environ:
        assert str(mariadb_server.datadir).startswith(("/dev/shm/", os.path.realpath("/tmp")))


def test_without_a_mariadb_server_the_tests_skip_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mariadb, "SEARCH_DIRS", (str(tmp_path),))
    monkeypatch.setattr(pytestconfig.option, "mariadb_exec", None)

    with pytest.raises(pytest.skip.Exception) as skipped:
        mariadb._require_binaries(pytestconfig)

    assert "apt-get install --no-install-recommends mariadb-server" in str(skipped.value)
