"""The MariaDB fixtures from tests/mariadb.py: a real server, one fresh database per test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests import mariadb
from tests.mariadb import MariaDBServer, _drop_database

pytestmark = pytest.mark.mariadb


@pytest.fixture
def engine(mysql_url: str) -> Iterator[Engine]:
    engine = create_engine(mysql_url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_round_trip_on_mariadb_10_11(
    engine: Engine, mysql_url: str, mariadb_server: MariaDBServer
) -> None:
    url = make_url(mysql_url)
    assert url.drivername == "mysql+pymysql"
    assert (url.host, url.username, url.query) == ("127.0.0.1", "root", {"charset": "utf8mb4"})

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE widgets (id integer PRIMARY KEY, name text NOT NULL)"))
        conn.execute(
            text("INSERT INTO widgets (id, name) VALUES (:id, :name)"),
            [{"id": 1, "name": "bolt ✓"}, {"id": 2, "name": "nut 🔩"}],  # 4-byte UTF-8 too
        )

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name FROM widgets ORDER BY id")).all()
        version = conn.execute(text("SELECT version()")).scalar_one()
        database = conn.execute(text("SELECT database()")).scalar_one()
        charset = conn.execute(
            text("SELECT default_character_set_name FROM information_schema.schemata "
                 "WHERE schema_name = database()")
        ).scalar_one()  # fmt: skip

    assert [tuple(row) for row in rows] == [(1, "bolt ✓"), (2, "nut 🔩")]
    assert version.startswith("10.11.") and "MariaDB" in version, version
    assert engine.dialect.is_mariadb  # type: ignore[attr-defined]
    assert mariadb_server.version == version
    assert (database, charset) == (url.database, "utf8mb4")


def test_the_server_runs_throwaway_and_fast(engine: Engine, mariadb_server: MariaDBServer) -> None:
    with engine.connect() as conn:
        settings = conn.execute(
            text("SELECT @@innodb_flush_log_at_trx_commit, @@log_bin, @@bind_address, @@port, "
                 "@@datadir, @@character_set_server")
        ).one()  # fmt: skip
    flush, log_bin, bind, port, datadir, charset = settings
    assert (flush, log_bin, bind, port, charset) == (
        0, 0, "127.0.0.1", mariadb_server.port, "utf8mb4",
    )  # fmt: skip
    assert Path(datadir).resolve() == mariadb_server.datadir.resolve()
    assert mariadb_server.socket.is_socket() and mariadb_server.logfile.exists()
    if os.access("/dev/shm", os.W_OK) and "PYTEST_MARIADB_TMPDIR" not in os.environ:
        assert str(mariadb_server.datadir).startswith(("/dev/shm/", os.path.realpath("/tmp")))


# Each run gets its own database: whichever runs second must not see the first one's table,
# and the two URLs name different databases.
_seen_databases: list[str] = []


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_its_own_empty_database(engine: Engine, mysql_url: str, run: str) -> None:
    database = make_url(mysql_url).database
    assert database is not None
    assert database not in _seen_databases
    assert inspect(engine).get_table_names() == []

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE marker (run text)"))
        conn.execute(text("INSERT INTO marker VALUES (:run)"), {"run": run})
        others = conn.execute(
            text("SELECT schema_name FROM information_schema.schemata"),
        ).scalars().all()  # fmt: skip

    # The previous test's database was dropped after that test finished.
    assert set(others).isdisjoint(_seen_databases)
    _seen_databases.append(database)


def test_a_database_left_in_an_open_transaction_is_still_dropped(
    mariadb_server: MariaDBServer,
) -> None:
    name = "t_open_transaction_" + os.urandom(4).hex()
    admin = mariadb_server.connect()
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    engine = create_engine(mariadb_server.url(name))
    leaked = engine.connect()  # left open, as a test that forgot it would
    leaked.execute(text("CREATE TABLE t (id int)"))
    leaked.execute(text("INSERT INTO t VALUES (1)"))  # holds a metadata lock on t
    try:
        started = time.monotonic()
        _drop_database(mariadb_server, name)  # DROP would wait for that lock: it is killed
        assert time.monotonic() - started < 10
        cur = admin.cursor()
        cur.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                    (name,))  # fmt: skip
        assert cur.fetchone() == (0,)
    finally:
        leaked.invalidate()  # its server thread is gone: drop it without a rollback
        leaked.close()
        engine.dispose()
        admin.close()


def test_without_a_server_the_tests_skip_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mariadb, "SEARCH_DIRS", (str(tmp_path),))
    monkeypatch.setattr(pytestconfig.option, "mariadb_exec", None)

    with pytest.raises(pytest.skip.Exception) as skipped:
        mariadb._require_binaries(pytestconfig)

    assert "apt-get install --no-install-recommends mariadb-server" in str(skipped.value)
