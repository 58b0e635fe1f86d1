"""Reading the source: ids asked for made keys of the column's type, rows grouped by key,
and the fingerprint of a row whatever its values."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from rootfi_sync.source.rows import copies_hash, key_values, rows_by_key, source_hash

KEY = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")


@pytest.mark.parametrize(
    ("given", "sample", "values", "unknown"),
    [
        (["42", 43], 9_000_000_000_000, [42, 43], []),
        (["C-0001", "4.0", ""], 7, [], ["C-0001", "4.0", ""]),
        ([42, "C-0001"], "C-0009", ["42", "C-0001"], []),
        ([str(KEY).upper(), "42"], KEY, [KEY], ["42"]),
        (["1.50", "x"], Decimal("2"), [Decimal("1.50")], ["x"]),
        (["42", 43], None, ["42", 43], []),  # no key read: the table has no row to match
        (["42"], b"\x01", ["42"], []),  # a key type without a parser: left to the database
    ],
)
def test_makes_the_ids_asked_for_values_of_the_keys_type_or_sets_them_apart(
    given: list[Any], sample: Any, values: list[Any], unknown: list[Any]
) -> None:
    assert key_values(given, sample) == (values, unknown)


def test_groups_rows_by_their_key_as_text_in_order_of_first_sight() -> None:
    rows = [{"id": 2}, {"id": 1}, {"id": 2, "n": "copy"}, {"id": "1"}]

    assert rows_by_key(rows) == {
        "2": [{"id": 2}, {"id": 2, "n": "copy"}],
        "1": [{"id": 1}, {"id": "1"}],  # one ledger id, so one customer
    }


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xfe",
        bytearray(b"\xff"),
        memoryview(b"\xff"),
        Decimal("1.50"),
        Decimal("NaN"),
        datetime(2024, 1, 1, tzinfo=UTC),
        date(2024, 1, 1),
        KEY,
        float("nan"),
        "\ud800",
        10**30,
    ],
)
def test_fingerprints_a_row_holding_any_raw_value_the_same_way_every_time(value: Any) -> None:
    again = memoryview(bytes(value)) if isinstance(value, memoryview) else value

    assert source_hash({"id": 1, "name": value}) == source_hash({"id": 1, "name": again})


def test_fingerprints_rows_sharing_a_key_whatever_order_they_were_read_in() -> None:
    first, second = {"id": 1, "name": "A"}, {"id": 1, "name": "B"}

    assert copies_hash([first, second]) == copies_hash([second, first]) != source_hash(first)
