"""Keys of any type (BIGINT, text, UUID), NULL or shared, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
from rootfi_sync.ledger.db import make_engine
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.integration.helpers import assert_exactly_once, create_source, ledger_rows

pytestmark = pytest.mark.usefixtures("prefect_server")

KEYS: dict[str, tuple[sa.types.TypeEngine[Any], Callable[[int], Any]]] = {
    "bigint": (sa.BigInteger(), lambda n: 9_000_000_000_000 + n),  # far above 2**31
    "text": (sa.Text(), lambda n: f"C-{n:04d}"),
    "uuid": (sa.Uuid(), lambda n: uuid.uuid4()),
}
CASES = [
    pytest.param("sqlite", "bigint", id="sqlite-bigint"),
    pytest.param("sqlite", "text", id="sqlite-text"),
    pytest.param("postgresql", "bigint", id="pg-bigint", marks=pytest.mark.postgres),
    pytest.param("postgresql", "text", id="pg-text", marks=pytest.mark.postgres),
    pytest.param("postgresql", "uuid", id="pg-uuid", marks=pytest.mark.postgres),
]


def database(request: pytest.FixtureRequest, dialect: str) -> str:
    """The URL of a fresh SQLite file or PostgreSQL database."""
    return str(request.getfixturevalue("sqlite_url" if dialect == "sqlite" else "pg_url"))


def keyed_rows(kind: str, count: int) -> list[dict[str, Any]]:
    """Return valid rows whose keys are of `kind`, in no particular order."""
    key = KEYS[kind][1]
    return [make_customer(id=key(n)) for n in (5, 1, 4, 2, 3, 7, 6)[:count]]


@pytest.mark.parametrize(("dialect", "kind"), CASES)
def test_syncs_every_customer_once_whatever_the_type_of_its_key(
    request: pytest.FixtureRequest, sandbox: SandboxServer, configure: Any, dialect: str, kind: str
) -> None:
    url = database(request, dialect)
    rows = keyed_rows(kind, 7)
    create_source(url, rows, id=KEYS[kind][0])
    configure(url, rootfi_batch_size=3)  # pages of 3, 3 and 1: keyset paging on that key

    first = sync_customers()
    second = sync_customers()

    assert (first["synced"], second["picked"]) == (7, 0)
    assert_exactly_once(sandbox, url, rows)


@pytest.mark.parametrize(("dialect", "kind"), CASES)
def test_syncs_only_the_customers_asked_for_as_text_or_as_values_of_the_key(
    request: pytest.FixtureRequest, sandbox: SandboxServer, configure: Any, dialect: str, kind: str
) -> None:
    url = database(request, dialect)
    rows = keyed_rows(kind, 5)
    create_source(url, rows, id=KEYS[kind][0])
    configure(url)
    as_text, as_value = rows[1]["id"], rows[3]["id"]  # the command line gives text
    wanted = [str(as_text), as_value if isinstance(as_value, int | str) else str(as_value)]

    counts = sync_customers(customer_ids=wanted)

    assert counts["synced"] == 2
    assert {cid: r.status for cid, r in ledger_rows(url).items()} == {
        str(as_text): "SYNCED",
        str(as_value): "SYNCED",
    }
    assert {c["email"] for c in sandbox.admin.customers(COMPANY)} == {
        rows[1]["email"],
        rows[3]["email"],
    }


@pytest.mark.parametrize(
    ("dialect", "kind", "wrong"),
    [
        pytest.param("sqlite", "bigint", "C-0001", id="sqlite-bigint"),
        pytest.param("postgresql", "bigint", "C-0001", id="pg-bigint", marks=pytest.mark.postgres),
        pytest.param("postgresql", "uuid", "42", id="pg-uuid", marks=pytest.mark.postgres),
    ],
)
def test_an_id_that_cannot_be_a_key_matches_no_customer_and_is_named_in_the_log(
    request: pytest.FixtureRequest,
    sandbox: SandboxServer,
    configure: Any,
    caplog: pytest.LogCaptureFixture,
    dialect: str,
    kind: str,
    wrong: str,
) -> None:
    url = database(request, dialect)
    create_source(url, keyed_rows(kind, 3), id=KEYS[kind][0])
    configure(url)

    counts = sync_customers(customer_ids=[wrong])

    assert counts["picked"] == 0
    assert ledger_rows(url) == {} and sandbox.admin.customers(COMPANY) == []
    assert f"no customer can have the id(s) '{wrong}'" in caplog.text


@pytest.mark.parametrize(("dialect", "kind"), CASES[:4])
def test_skips_rows_without_a_key_and_fails_a_shared_key_without_sending_it(
    request: pytest.FixtureRequest,
    sandbox: SandboxServer,
    configure: Any,
    caplog: pytest.LogCaptureFixture,
    dialect: str,
    kind: str,
) -> None:
    url = database(request, dialect)
    key = KEYS[kind][1]
    # NULLs sort first in SQLite, last in PostgreSQL: a page can hold nothing else.
    keyless = [make_customer(id=None) for _ in range(3)]
    shared = [make_customer(id=key(3)) for _ in range(2)]  # split by the first page's end
    unique = [make_customer(id=key(n)) for n in (1, 2, 4, 5, 6)]
    create_source(
        url,
        keyless + unique + shared,
        id=KEYS[kind][0],
        primary_key=False,
        columns={"id": "client_no"},
    )
    configure(url, rootfi_batch_size=3, source_columns='{"id": "client_no"}')

    first = sync_customers()

    ledger = ledger_rows(url)
    assert Counter(r.status for r in ledger.values()) == {"SYNCED": 5, "FAILED": 1}
    assert "[id.duplicate]" in ledger[str(key(3))].last_error
    assert {c["email"] for c in sandbox.admin.customers(COMPANY)} == {r["email"] for r in unique}
    assert (first["picked"], first["synced"], first["failed"], first["skipped"]) == (6, 5, 1, 3)
    assert "skipped 3 source row(s) whose key column 'client_no' is NULL" in caplog.text
    assert sync_customers()["picked"] == 0  # the shared key stays parked while unchanged

    drop_one_copy(url, shared[1]["email"])
    third = sync_customers()

    assert (third["picked"], third["synced"]) == (1, 1)
    assert ledger_rows(url)[str(key(3))].status == "SYNCED"


def drop_one_copy(url: str, email: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM customers WHERE email = :email"), {"email": email})
    engine.dispose()


@pytest.mark.postgres
def test_skips_a_key_longer_than_the_ledger_holds_and_syncs_the_others(
    pg_url: str, sandbox: SandboxServer, configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [make_customer(id="C-0001"), make_customer(id="K" * 300), make_customer(id="L-0001")]
    create_source(pg_url, rows, id=sa.Text())
    configure(pg_url, rootfi_batch_size=2)

    counts = sync_customers()

    assert (counts["synced"], counts["skipped"]) == (2, 1)
    assert set(ledger_rows(pg_url)) == {"C-0001", "L-0001"}
    assert "skipped 1 source row(s) whose key column 'id' is NULL or longer than 255" in caplog.text
