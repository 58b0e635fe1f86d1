"""The matching rule that adopts records a lost request created (rootfi_sync.rootfi.lookup, on the
normalized values of rootfi_sync.rootfi.matching): what platforms change must not hide a record."""

from __future__ import annotations

from typing import Any

import pytest
from rootfi_sandbox.platforms import PLATFORMS

from rootfi_sync.models import (
    DEFAULT_MATCH_FIELDS,
    MATCHABLE_FIELDS,
    Address,
    CustomerPayload,
    parse_match_fields,
)
from rootfi_sync.rootfi.lookup import Item
from rootfi_sync.rootfi.matching import legacy_key, match_records, signature
from rootfi_sync.source.transform import to_payload
from tests.factories import make_customer


def item(cid: str, **fields: Any) -> Item:
    fields.setdefault("name", "Ada Lovelace")
    return Item(cid, CustomerPayload(**fields))


def record(rootfi_id: int, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "Ada Lovelace")
    return {"rootfi_id": rootfi_id, "rootfi_company_id": 1089, **fields}


def adopted(items: list[Item], records: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    found = match_records(items, records, taken=kw.pop("taken", set()), **kw)
    return {cid: r["rootfi_id"] for cid, r in found.records.items()}


def test_adopts_the_record_with_the_same_fields() -> None:
    items = [item("1", email="ada@x.org"), item("2", email="bob@x.org", name="Bob")]
    records = [record(10, email="bob@x.org", name="Bob"), record(11, email="ada@x.org")]
    assert adopted(items, records) == {"1": 11, "2": 10}


def test_ignores_case_and_spacing_differences_the_platform_may_introduce() -> None:
    items = [item("1", name="Ada  Lovelace", email="Ada@X.org", address=Address(city="London"))]
    records = [record(3, name="ada lovelace", email="ada@x.org", address={"city": " LONDON "})]
    assert adopted(items, records) == {"1": 3}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"phone": "+1-555-010-7777"}, {"phone": "+15550107777"}),  # E.164, as Shopify keeps it
        ({"phone": "555 010 7777"}, {"phone": "+15550107777"}),  # no country code sent
        ({"phone": "(555) 010-7777"}, {"phone": "+1 555-010-7777"}),
        (
            {"phone": "020 7946 0018", "address": Address(country="GBR")},
            {"phone": "+442079460018", "address": {"country": "GB"}},
        ),  # a national number read in the customer's country
        ({"address": Address(country="BRA")}, {"address": {"country": "BR"}}),
        ({"address": Address(country="Brazil")}, {"address": {"country": "BRA"}}),
        ({"email": "Ada.Lovelace@Example.ORG"}, {"email": "ada.lovelace@example.org"}),
        ({"address": Address(street="1 Main St", city="Leeds")}, {"address": {"city": "leeds"}}),
        ({"address": Address(street="1 Main St")}, {}),  # the platform dropped the address
        ({"currency_id": "usd"}, {"currency_id": "USD"}),
    ],
    ids=[
        "e164",
        "no-country-code",
        "punctuation",
        "national-number",
        "alpha3-to-alpha2",
        "name-to-alpha3",
        "email-case",
        "street-dropped",
        "address-dropped",
        "currency-case",
    ],
)
def test_adopts_a_record_the_platform_stored_in_its_own_form(
    sent: dict[str, Any], stored: dict[str, Any]
) -> None:
    fields = ("name", "email", "phone", "currency_id", "street", "city", "country")
    items = [item("1", **({"email": "ada@x.org"} | sent))]
    records = [record(3, **({"email": "ada@x.org"} | stored))]
    assert adopted(items, records, fields=fields) == {"1": 3}


def test_does_not_adopt_a_record_whose_identifying_fields_differ() -> None:
    items = [item("1", email="ada@x.org")]
    records = [record(3, email="ada@y.org"), record(4, name="Ada King", email="ada@x.org")]
    assert adopted(items, records) == {}


def test_a_field_outside_the_match_fields_pairs_records_and_must_not_contradict() -> None:
    items = [
        item("1", email="ada@x.org", phone="+44 1"),
        item("2", email="ada@x.org", phone="+44 2"),
    ]
    records = [
        record(3, email="ada@x.org", phone="+442"),
        record(4, email="ada@x.org", phone="+441"),
    ]
    assert adopted(items, records) == {"1": 4, "2": 3}
    # A record that holds another phone is someone else (the forms absorb what platforms
    # rewrite; what is left is a real difference). It was adopted before the review fix.
    assert adopted([item("1", email="ada@x.org", phone="+44 1")], [records[0]]) == {}


def test_a_customer_with_no_email_does_not_adopt_a_namesake_who_lives_elsewhere() -> None:
    # Before the review fix, the name alone identified a customer sent with no email, and the
    # merchant's other "Ada Lovelace" (another phone, another country) was adopted: ours was
    # then never created.
    ours = item("1", phone="+44 20 7946 0018", address={"city": "Leeds", "country": "GB"})
    namesake = record(5, phone="+1 555 0107", address={"city": "Boston", "country": "US"})
    assert adopted([ours], [namesake]) == {}
    assert adopted([ours], [record(6, phone="+442079460018")]) == {"1": 6}  # the platform's form


def test_a_phone_among_the_match_fields_must_agree() -> None:
    items = [item("1", email="ada@x.org", phone="+44 1")]
    records = [record(3, email="ada@x.org", phone="+44 2")]
    assert adopted(items, records, fields=("name", "email", "phone")) == {}


def test_never_adopts_a_record_the_ledger_already_gives_to_another_customer() -> None:
    items = [item("2", email="twin@x.org")]
    records = [record(10, email="twin@x.org")]
    assert adopted(items, records, taken={"10"}) == {}


def test_identical_customers_each_get_their_own_record_lowest_id_first() -> None:
    items = [item(str(n), email="twin@x.org") for n in (1, 2, 3)]
    records = [record(21, email="twin@x.org"), record(20, email="twin@x.org")]
    found = match_records(items, records, taken=set())
    assert {cid: r["rootfi_id"] for cid, r in found.records.items()} == {"1": 20, "2": 21}
    assert found.duplicates == {}


def test_two_records_matching_one_customer_are_reported_as_a_duplicate() -> None:
    items = [item("1", email="ada@x.org", phone="+1 555 0107")]
    records = [
        record(7, email="ada@x.org", phone="+15550107"),
        record(5, email="ADA@x.org"),
        record(9, email="ada@x.org", phone="+1 555 0199"),  # another phone: someone else
    ]
    found = match_records(items, records, taken=set())
    assert found.records["1"]["rootfi_id"] == 5
    assert found.duplicates == {"1": ("7",)}


def test_status_and_timestamps_do_not_take_part_in_the_match() -> None:
    payload = {"name": "A", "status": "ACTIVE", "created_at": "2024-01-01T00:00:00.000Z"}
    assert signature(payload) == signature({"name": "A", "status": "UNKNOWN"})


def test_adopts_the_record_of_a_payload_sent_before_the_row_was_edited() -> None:
    sent_before = item("1", name="Ada Lovelace", email="ada@x.org")
    edited = Item(
        "1", CustomerPayload(name="Ada King", email="ada@x.org"), sent_keys=sent_before.keys
    )
    records = [record(4, name="Ada Lovelace", email="ADA@x.org")]

    assert adopted([edited], records) == {"1": 4}
    assert adopted([item("1", name="Ada King", email="ada@x.org")], records) == {}


def test_a_row_in_doubt_from_before_the_upgrade_is_still_found_by_its_old_key() -> None:
    old = {"name": "Ada Lovelace", "email": "ada@x.org", "phone": "+44 1"}
    written_by_old_code = legacy_key(old)  # a 32-hex digest of every field
    edited = Item("1", CustomerPayload(name="Ada King"), sent_keys=(written_by_old_code,))

    assert adopted([edited], [record(4, **old)]) == {"1": 4}


def test_the_legacy_key_is_the_one_the_old_code_wrote() -> None:
    # lookup.match_key of 8591cdd for this payload, computed there.
    payload = {"name": " Ada  Lovelace", "email": "Ada@X.org", "address": {"city": "Leeds"}}
    assert legacy_key(payload) == "ace70784b04ccdf7f746e833b62821d8"


def test_the_ledger_keeps_digests_not_values() -> None:
    keys = item("1", email="ada@x.org", phone="+1 555 0107").keys
    assert all(" " not in k and "ada" not in k and "555" not in k for k in keys)


@pytest.mark.parametrize(
    ("value", "fields"),
    [("name,email", ("name", "email")), (" Email , PHONE ", ("email", "phone"))],
)
def test_reads_the_match_fields_setting(value: str, fields: tuple[str, ...]) -> None:
    assert parse_match_fields(value) == fields


@pytest.mark.parametrize("value", ["name,mail", "city,country", "", "name,name"])
def test_refuses_match_fields_that_cannot_identify_a_customer(value: str) -> None:
    with pytest.raises(ValueError):
        parse_match_fields(value)


def test_the_default_match_fields_are_name_and_email() -> None:
    assert DEFAULT_MATCH_FIELDS == ("name", "email")


@pytest.mark.parametrize(
    "fields", [DEFAULT_MATCH_FIELDS, MATCHABLE_FIELDS], ids=["default", "every-field"]
)
def test_adopts_each_demo_customer_as_the_normalizing_platform_profile_keeps_it(
    fields: tuple[str, ...],
) -> None:
    # The sandbox profile ROOTFI_TEST_PLATFORM=normalizing runs the integration tests under:
    # every payload the factories make, kept in the platform's forms, is still its own record.
    payloads = [to_payload(make_customer()) for _ in range(60)]
    items = [Item(str(n), payload) for n, payload in enumerate(payloads)]
    keep = PLATFORMS["normalizing"].keep
    records = [{"rootfi_id": n, **keep(p.to_api())} for n, p in enumerate(payloads)]
    assert adopted(items, records, fields=fields) == {str(n): n for n in range(60)}
