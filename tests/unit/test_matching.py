"""The matching rule that adopts records a lost request created (rootfi_sync.lookup)."""

from __future__ import annotations

from typing import Any

from rootfi_sync.lookup import Item, fingerprint, match_records
from rootfi_sync.models import Address, CustomerPayload


def item(cid: str, **fields: Any) -> Item:
    fields.setdefault("name", "Ada Lovelace")
    return Item(cid, CustomerPayload(**fields))


def record(rootfi_id: int, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "Ada Lovelace")
    return {"rootfi_id": rootfi_id, "rootfi_company_id": 1089, **fields}


def test_adopts_the_record_with_the_same_fields() -> None:
    items = [item("1", email="ada@x.org"), item("2", email="bob@x.org", name="Bob")]
    records = [record(10, email="bob@x.org", name="Bob"), record(11, email="ada@x.org")]
    matched = match_records(items, records, taken=set())
    assert {cid: r["rootfi_id"] for cid, r in matched.items()} == {"1": 11, "2": 10}


def test_ignores_case_and_spacing_differences_the_platform_may_introduce() -> None:
    items = [item("1", name="Ada  Lovelace", email="Ada@X.org", address=Address(city="London"))]
    records = [record(3, name="ada lovelace", email="ada@x.org", address={"city": " LONDON "})]
    assert match_records(items, records, taken=set())["1"]["rootfi_id"] == 3


def test_does_not_adopt_a_record_whose_fields_differ() -> None:
    items = [item("1", email="ada@x.org", phone="+44 1")]
    records = [record(3, email="ada@x.org", phone="+44 2")]
    assert match_records(items, records, taken=set()) == {}


def test_never_adopts_a_record_the_ledger_already_gives_to_another_customer() -> None:
    items = [item("2", email="twin@x.org")]
    records = [record(10, email="twin@x.org")]
    assert match_records(items, records, taken={"10"}) == {}


def test_identical_customers_each_get_their_own_record_lowest_id_first() -> None:
    items = [
        item("1", email="twin@x.org"),
        item("2", email="twin@x.org"),
        item("3", email="twin@x.org"),
    ]
    records = [record(21, email="twin@x.org"), record(20, email="twin@x.org")]
    matched = match_records(items, records, taken=set())
    assert {cid: r["rootfi_id"] for cid, r in matched.items()} == {"1": 20, "2": 21}


def test_status_and_timestamps_do_not_take_part_in_the_match() -> None:
    payload = {"name": "A", "status": "ACTIVE", "created_at": "2024-01-01T00:00:00.000Z"}
    assert fingerprint(payload) == fingerprint({"name": "A", "status": "UNKNOWN"})


def test_adopts_the_record_of_a_payload_sent_before_the_row_was_edited() -> None:
    sent_before = item("1", name="Ada Lovelace", email="ada@x.org")
    edited = Item(
        "1", CustomerPayload(name="Ada King", email="ada@x.org"), sent_keys=sent_before.keys
    )
    records = [record(4, name="Ada Lovelace", email="ada@x.org")]

    assert match_records([edited], records, taken=set())["1"]["rootfi_id"] == 4
    assert match_records([item("1", name="Ada King", email="ada@x.org")], records, set()) == {}
