"""Transform rules, one table per column: source row in, RootFi payload or rejection out."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from rootfi_sync.errors import RootFiSyncError
from rootfi_sync.models import ADDRESS_FIELDS, CustomerPayload
from rootfi_sync.source.transform import (
    COPIES,
    Rejection,
    RowRejected,
    Transformed,
    build_payloads,
    to_payload,
)
from tests.factories import make_customer

IST = timezone(timedelta(hours=5, minutes=30))
PST = timezone(timedelta(hours=-8))


def payload_for(**overrides: Any) -> CustomerPayload:
    """Return the payload of a valid factory row with `overrides` applied."""
    return to_payload(make_customer(**overrides))


def rejection_for(**overrides: Any) -> Rejection:
    """Return the rejection raised for a factory row with `overrides` applied."""
    with pytest.raises(RowRejected) as caught:
        to_payload(make_customer(**overrides))
    return caught.value.rejection


def test_turns_a_complete_valid_row_into_the_exact_api_payload() -> None:
    row = make_customer(
        id=7,
        name="  Asha Rao ",
        email="Asha.Rao@Example.COM",
        phone=" +91 98450 12345 ",
        currency="inr",
        status=" Enabled ",
        street="12 MG Road",
        locality="Indiranagar",
        city="Bengaluru",
        state="Karnataka",
        pincode=560038,
        country="India",
        created_at=datetime(2024, 3, 1, 10, 15, 30, 987654),
        updated_at="2024-03-02T08:00:00+05:30",
    )

    assert to_payload(row).to_api() == {
        "name": "Asha Rao",
        "email": "Asha.Rao@example.com",
        "phone": "+91 98450 12345",
        "currency_id": "INR",
        "status": "ACTIVE",
        "created_at": "2024-03-01T10:15:30.987Z",
        "updated_at": "2024-03-02T02:30:00.000Z",
        "address": {
            "street": "12 MG Road",
            "locality": "Indiranagar",
            "city": "Bengaluru",
            "state": "Karnataka",
            "pincode": "560038",
            "country": "India",
        },
    }


def test_leaves_every_optional_field_out_of_a_row_that_has_only_a_name() -> None:
    row = {"id": 1, "name": "Solo"} | {column: None for column in ("email", "phone", "status")}

    assert to_payload(row).to_api() == {"name": "Solo", "status": "UNKNOWN"}


# --- name -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("  Ada Lovelace\n", "Ada Lovelace"),
        ("Ada\tLovelace", "Ada\tLovelace"),
        ("Zoë Ñúñez 李小龍", "Zoë Ñúñez 李小龍"),
        ("x" * 255, "x" * 255),
        (42, "42"),
        (Decimal("1.50"), "1.50"),
        (3.0, "3"),
        ("Zoë".encode(), "Zoë"),
        (bytearray(b"Ada"), "Ada"),
        (memoryview(b"Ada"), "Ada"),
    ],
)
def test_accepts_and_trims_a_name(value: Any, expected: str) -> None:
    assert payload_for(name=value).name == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (None, "name.required"),
        ("", "name.required"),
        ("   \t\n ", "name.required"),
        (b"  ", "name.required"),
        ("x" * 256, "name.too_long"),
        ("  " + "x" * 256 + "  ", "name.too_long"),
        ("Ada\x00Lovelace", "name.control_characters"),
        ("Ada\nLovelace", "name.control_characters"),
        ("Ada\x1bLovelace", "name.control_characters"),
        ("Ada\x7f", "name.control_characters"),
        ("Ada\x85Lovelace", "name.control_characters"),
        ("Ada\ud800", "name.not_text"),
        (b"\xff\xfe", "name.not_text"),
        (True, "name.not_text"),
        (float("nan"), "name.not_text"),
        (float("inf"), "name.not_text"),
        (Decimal("NaN"), "name.not_text"),
        (datetime(2024, 1, 1), "name.not_text"),
        (["Ada"], "name.not_text"),
        (10**400, "name.not_text"),
    ],
)
def test_rejects_a_row_whose_name_breaks_a_rule(value: Any, rule: str) -> None:
    rejection = rejection_for(name=value)

    assert (rejection.field, rejection.rule) == ("name", rule)


def test_rejects_a_row_that_has_no_name_column_at_all() -> None:
    with pytest.raises(RowRejected) as caught:
        to_payload({"id": 1})

    assert caught.value.rejection.rule == "name.required"


# --- email ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bob@example.com", "bob@example.com"),
        ("Bob.Smith@EXAMPLE.COM", "Bob.Smith@example.com"),
        ("  bob@example.com \n", "bob@example.com"),
        ("bob+tag@sub.example.co.uk", "bob+tag@sub.example.co.uk"),
        ("anna@MÜNCHEN.de", "anna@münchen.de"),
        (b"bob@example.com", "bob@example.com"),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_accepts_an_email_normalizing_its_domain_or_leaves_a_blank_one_out(
    value: Any, expected: str | None
) -> None:
    assert payload_for(email=value).email == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("bob@", "email.invalid"),
        ("bob", "email.invalid"),
        ("bob@@example.com", "email.invalid"),
        ("bob smith@example.com", "email.invalid"),
        ("bob@localhost", "email.invalid"),
        ("bob@example", "email.invalid"),
        ("@example.com", "email.invalid"),
        ("x" * 250 + "@example.com", "email.invalid"),
        (12345, "email.invalid"),
        ("bob@example.com\x00", "email.control_characters"),
        (b"\xc3\x28@example.com", "email.not_text"),
        (object(), "email.not_text"),
    ],
)
def test_rejects_a_row_with_an_email_that_is_not_a_valid_address(value: Any, rule: str) -> None:
    rejection = rejection_for(email=value)

    assert (rejection.field, rejection.rule) == ("email", rule)


def test_rejects_a_row_with_an_email_that_has_no_domain_and_says_why() -> None:
    rejection = rejection_for(email="bob@")

    assert rejection.message == (
        "email: 'bob@' is not a valid email address "
        "(There must be something after the @-sign.) [email.invalid]"
    )


# --- currency ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("USD", "USD"),
        ("usd", "USD"),
        (" eUr ", "EUR"),
        ("inr", "INR"),
        ("XAU", "XAU"),
        (b"jpy", "JPY"),
        (None, None),
        ("", None),
        ("  ", None),
    ],
)
def test_upper_cases_an_iso_4217_currency_or_leaves_a_blank_one_out(
    value: Any, expected: str | None
) -> None:
    assert payload_for(currency=value).currency_id == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("US", "currency.not_iso4217"),
        ("USDX", "currency.not_iso4217"),
        ("ZZZ", "currency.not_iso4217"),
        ("US D", "currency.not_iso4217"),
        ("u\u017fd", "currency.not_iso4217"),
        ("$", "currency.not_iso4217"),
        ("dollar", "currency.not_iso4217"),
        (840, "currency.not_iso4217"),
        ("USD\x00", "currency.control_characters"),
        (date(2024, 1, 1), "currency.not_text"),
    ],
)
def test_rejects_a_row_whose_currency_is_not_an_iso_4217_code(value: Any, rule: str) -> None:
    rejection = rejection_for(currency=value)

    assert (rejection.field, rejection.rule) == ("currency", rule)


# --- status -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("active", "ACTIVE"),
        ("ACTIVE", "ACTIVE"),
        ("  Enabled ", "ACTIVE"),
        (b"active", "ACTIVE"),
        ("archived", "ARCHIVED"),
        ("Inactive", "ARCHIVED"),
        ("DISABLED", "ARCHIVED"),
        (" deleted\n", "ARCHIVED"),
        ("pending", "UNKNOWN"),
        ("activated", "UNKNOWN"),
        ("", "UNKNOWN"),
        ("   ", "UNKNOWN"),
        (None, "UNKNOWN"),
        (1, "UNKNOWN"),
        (True, "UNKNOWN"),
        (b"\xff", "UNKNOWN"),
        ("active\x00", "UNKNOWN"),
    ],
)
def test_maps_a_status_and_never_rejects_one(value: Any, expected: str) -> None:
    assert payload_for(status=value).status == expected


# --- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 5, 6, 7, 8, 9), "2024-05-06T07:08:09.000Z"),
        (datetime(2024, 5, 6, 7, 8, 9, 123456), "2024-05-06T07:08:09.123Z"),
        (datetime(2024, 5, 6, 7, 8, 9, 999999), "2024-05-06T07:08:09.999Z"),
        (datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), "2024-05-06T07:08:09.000Z"),
        (datetime(2024, 5, 6, 1, 0, 0, tzinfo=IST), "2024-05-05T19:30:00.000Z"),
        (datetime(2024, 12, 31, 20, 0, 0, tzinfo=PST), "2025-01-01T04:00:00.000Z"),
        (date(2024, 2, 29), "2024-02-29T00:00:00.000Z"),
        ("2024-05-06T07:08:09Z", "2024-05-06T07:08:09.000Z"),
        ("2024-05-06T07:08:09.5z", "2024-05-06T07:08:09.500Z"),
        ("2024-05-06T07:08:09.123456Z", "2024-05-06T07:08:09.123Z"),
        ("2024-05-06T07:08:09+02:00", "2024-05-06T05:08:09.000Z"),
        ("2024-05-06T07:08:09-05:30", "2024-05-06T12:38:09.000Z"),
        ("2024-05-06T07:08:09", "2024-05-06T07:08:09.000Z"),
        (" 2024-05-06 07:08 ", "2024-05-06T07:08:00.000Z"),
        ("2024-05-06", "2024-05-06T00:00:00.000Z"),
        (b"2024-05-06T07:08:09Z", "2024-05-06T07:08:09.000Z"),
        ("2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00.000Z"),
        ("2024-01-01 10:00:00+02", "2024-01-01T08:00:00.000Z"),
        ("2024-01-15 09:30:00.123456", "2024-01-15T09:30:00.123Z"),  # as SQLAlchemy stores it
        (datetime(1, 1, 1), "0001-01-01T00:00:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999), "0999-12-31T23:59:59.999Z"),
        ("0999-12-31T23:00:00-01:00", "1000-01-01T00:00:00.000Z"),
        (None, None),
    ],
)
def test_formats_a_timestamp_as_utc_with_milliseconds_and_z(
    field: str, value: Any, expected: str | None
) -> None:
    assert getattr(payload_for(**{field: value}), field) == expected


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "yesterday",
        "12/31/2023",
        "1700000000",
        "2024-13-01T00:00:00",
        "2024-02-30",
        "2024-05-06T25:00:00Z",
        "2024-05-06T07:08:09+25:00",
        "2024-05-06T07:08:09\x00",
        "06/05/2024",
        b"\xff\xfe",
        1714979289,
        1700000000000,
        1714979289.5,
        Decimal("1714979289"),
        True,
        timedelta(days=1),
        datetime(1, 1, 1, 0, 30, tzinfo=IST),
        datetime(9999, 12, 31, 23, 0, tzinfo=PST),
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_rejects_a_row_whose_timestamp_is_unparseable_or_out_of_range(
    field: str, value: Any
) -> None:
    rejection = rejection_for(**{field: value})

    assert (rejection.field, rejection.rule) == (field, f"{field}.not_a_timestamp")


# --- phone and address ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" +1 (555) 010-9999 ", "+1 (555) 010-9999"),
        ("9" * 64, "9" * 64),
        # A phone in a numeric column is sent as its digits; a leading 0 or + it lost there
        # cannot be told back, and RootFi takes free text.
        (5550109999, "5550109999"),
        (5550109999.0, "5550109999"),
        (Decimal("5550109999"), "5550109999"),
        (b"+1 555 010 9999", "+1 555 010 9999"),
        (None, None),
        ("  ", None),
    ],
)
def test_passes_a_phone_through_trimmed(value: Any, expected: str | None) -> None:
    assert payload_for(phone=value).phone == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("9" * 65, "phone.too_long"),
        ("555\x000109", "phone.control_characters"),
        (b"\x80", "phone.not_text"),
    ],
)
def test_rejects_a_row_whose_phone_breaks_a_rule(value: Any, rule: str) -> None:
    rejection = rejection_for(phone=value)

    assert (rejection.field, rejection.rule) == ("phone", rule)


def test_groups_the_address_fields_under_address() -> None:
    payload = payload_for(
        street=" 1 Main St ",
        locality="Old Town",
        city="Springfield",
        state="IL",
        pincode="62701",
        country="US",
    )

    assert payload.to_api()["address"] == {
        "street": "1 Main St",
        "locality": "Old Town",
        "city": "Springfield",
        "state": "IL",
        "pincode": "62701",
        "country": "US",
    }


def test_keeps_only_the_address_fields_that_are_present() -> None:
    payload = payload_for(street=None, locality="", city="Pune", state="  ", pincode=None)

    assert payload.to_api()["address"] == {"city": "Pune", "country": "US"}


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_leaves_the_address_out_when_every_address_field_is_blank(blank: Any) -> None:
    payload = payload_for(**dict.fromkeys(ADDRESS_FIELDS, blank))

    assert payload.address is None
    assert "address" not in payload.to_api()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(560038, "560038"), (560038.0, "560038"), (Decimal("560038"), "560038"), ("02134", "02134")],
)
def test_turns_a_numeric_pincode_into_text(value: Any, expected: str) -> None:
    address = payload_for(pincode=value).address

    assert address is not None
    assert address.pincode == expected


@pytest.mark.parametrize("field", ADDRESS_FIELDS)
def test_accepts_an_address_field_of_255_characters(field: str) -> None:
    address = payload_for(**{field: "a" * 255}).address

    assert address is not None
    assert getattr(address, field) == "a" * 255


@pytest.mark.parametrize("field", ADDRESS_FIELDS)
@pytest.mark.parametrize(
    ("value", "rule"),
    [("a" * 256, "too_long"), ("a\x00b", "control_characters"), (object(), "not_text")],
)
def test_rejects_a_row_whose_address_field_breaks_a_rule(field: str, value: Any, rule: str) -> None:
    rejection = rejection_for(**{field: value})

    assert (rejection.field, rejection.rule) == (field, f"{field}.{rule}")


# --- order and messages -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "first_rule"),
    [
        ({"name": "", "email": "bad", "currency": "bad"}, "name.required"),
        ({"email": "bad", "currency": "bad", "created_at": "bad"}, "email.invalid"),
        ({"currency": "bad", "created_at": "bad"}, "currency.not_iso4217"),
        ({"status": object(), "created_at": "bad"}, "created_at.not_a_timestamp"),
        ({"created_at": "bad", "updated_at": "bad"}, "created_at.not_a_timestamp"),
        ({"updated_at": "bad", "phone": "9" * 65}, "updated_at.not_a_timestamp"),
        ({"phone": "9" * 65, "street": "a" * 256}, "phone.too_long"),
    ],
)
def test_reports_only_the_first_broken_rule_in_check_order(
    overrides: dict[str, Any], first_rule: str
) -> None:
    assert rejection_for(**overrides).rule == first_rule


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"name": None}, "name: None is blank; a name is required [name.required]"),
        (
            {"currency": "usdx"},
            "currency: 'usdx' is not an ISO 4217 code [currency.not_iso4217]",
        ),
        (
            {"created_at": "soon"},
            "created_at: 'soon' is not an ISO 8601 timestamp [created_at.not_a_timestamp]",
        ),
        (
            {"phone": "1" * 70},
            f"phone: '{'1' * 60}'... is 70 characters long, more than 64 [phone.too_long]",
        ),
        (
            {"city": "a\x00"},
            r"city: 'a\x00' contains control characters [city.control_characters]",
        ),
        ({"name": [1]}, "name: [1] is not text (list) [name.not_text]"),
    ],
)
def test_writes_a_message_naming_the_field_the_value_and_the_rule(
    overrides: dict[str, Any], expected: str
) -> None:
    assert rejection_for(**overrides).message == expected


def test_cuts_a_huge_offending_value_short_in_the_message() -> None:
    rejection = rejection_for(name="z" * 10_000)

    assert len(rejection.message) < 200
    assert rejection.message.startswith("name: 'zzz")


def test_raises_a_value_error_whose_text_is_the_rejection_message() -> None:
    with pytest.raises(ValueError, match=r"email\.invalid") as caught:
        to_payload(make_customer(email="nope"))

    assert isinstance(caught.value, RowRejected)
    assert isinstance(caught.value, RootFiSyncError)
    assert str(caught.value) == caught.value.rejection.message


# --- build_payloads ---------------------------------------------------------------------


def test_splits_rows_into_accepted_and_rejected_keeping_input_order() -> None:
    rows = [
        make_customer(id=1),
        make_customer(id=2, email="bad"),
        make_customer(id=3),
        make_customer(id=4, name=""),
        make_customer(id=5),
    ]

    result = build_payloads(rows)

    assert [customer_id for customer_id, _ in result.accepted] == [1, 3, 5]
    assert [(cid, r.rule) for cid, r in result.rejected] == [
        (2, "email.invalid"),
        (4, "name.required"),
    ]
    assert result.accepted[0][1] == to_payload(rows[0])


@pytest.mark.parametrize(
    "row",
    [{"name": "No Id"}, {"id": None, "name": "Null Id"}, {}],
    ids=["no id column", "null id", "empty row"],
)
def test_rejects_a_row_without_a_customer_id_instead_of_raising(row: dict[str, Any]) -> None:
    result = build_payloads([row])

    assert result.accepted == []
    assert result.rejected == [
        (
            None,
            Rejection("id", "id.missing", "id: None is missing; every row needs one [id.missing]"),
        )
    ]


def test_keeps_the_customer_id_of_any_type_as_given() -> None:
    key = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    rows = [make_customer(id="cus_0001"), make_customer(id=0), make_customer(id=key)]

    result = build_payloads(rows)

    assert [customer_id for customer_id, _ in result.accepted] == ["cus_0001", 0, key]


@pytest.mark.parametrize("key", [9_000_000_000_000, "C-0001"])
def test_rejects_a_key_that_several_source_rows_share_and_sends_neither(key: Any) -> None:
    row = make_customer(id=key) | {COPIES: 2}

    result = build_payloads([row, make_customer()])

    assert len(result.accepted) == 1
    assert result.rejected == [
        (
            key,
            Rejection(
                "id",
                "id.duplicate",
                f"id: {key!r} is the key of 2 source rows; nothing is sent until it is unique "
                "[id.duplicate]",
            ),
        )
    ]


def test_returns_empty_lists_for_no_rows() -> None:
    assert build_payloads(iter([])) == Transformed(accepted=[], rejected=[])


def test_folds_a_multi_line_street_into_one_line_instead_of_refusing_it() -> None:
    payload = to_payload(make_customer(street="Flat 4\r\n 12 High Street\nBack door"))
    assert payload.address is not None
    assert payload.address.street == "Flat 4, 12 High Street, Back door"
