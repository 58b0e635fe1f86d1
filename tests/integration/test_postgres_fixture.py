"""The PostgreSQL fixtures from tests/postgres.py: a real server, one fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_round_trip_on_postgresql_15(engine: Engine, pg_url: str) -> None:
    url = make_url(pg_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE widgets (id integer PRIMARY KEY, name text NOT NULL)"))
        conn.execute(
            text("INSERT INTO widgets (id, name) VALUES (:id, :name)"),
            [{"id": 1, "name": "bolt"}, {"id": 2, "name": "nut"}],
        )

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name FROM widgets ORDER BY id")).all()
        version = conn.execute(text("SELECT version()")).scalar_one()
        database = conn.execute(text("SELECT current_database()")).scalar_one()

    assert [tuple(row) for row in rows] == [(1, "bolt"), (2, "nut")]
    assert version.startswith("PostgreSQL 15."), version
    assert database == url.database


# Each run gets its own database: whichever runs second must not see the first one's table,
# and the two URLs name different databases.
_seen_databases: list[str] = []


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_its_own_empty_database(engine: Engine, pg_url: str, run: str) -> None:
    database = make_url(pg_url).database
    assert database is not None
    assert database not in _seen_databases
    assert inspect(engine).get_table_names() == []

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE marker (run text)"))
        conn.execute(text("INSERT INTO marker VALUES (:run)"), {"run": run})
        others = (
            conn.execute(
                text("SELECT datname FROM pg_database WHERE datname = ANY(:names)"),
                {"names": _seen_databases},
            )
            .scalars()
            .all()
        )

    # The previous test's database was dropped after that test finished.
    assert others == []
    _seen_databases.append(database)
