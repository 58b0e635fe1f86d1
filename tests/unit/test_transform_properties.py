"""Properties of the transform over arbitrary values: it never raises, and what it accepts is
always a payload RootFi's model takes back and JSON can carry."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta, timezone
from typing import Any

import pycountry
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rootfi_sync.models import CustomerPayload
from rootfi_sync.source.transform import RowRejected, Transformed, build_payloads, to_payload
from tests.factories import SOURCE_COLUMNS, make_customer

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
huge_text = st.builds(
    lambda chunk, times: chunk * times, st.text(min_size=1, max_size=3), st.integers(0, 4_000)
)
junk = st.one_of(
    st.none(),
    any_text,
    huge_text,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.binary(max_size=40),
    st.datetimes(timezones=st.none() | st.just(UTC) | offsets),
    st.dates(),
    st.timedeltas(),
    st.lists(st.integers(), max_size=2),
)
clean_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=260)
# Mostly plausible rows with a few junk columns, so acceptance is exercised as much as rejection.
plausible = {
    "id": st.integers(1, 10**9) | st.uuids().map(str),
    "name": clean_text,
    "email": st.emails().map(lambda email: f" {email.upper()} ") | st.just(""),
    "currency": st.sampled_from(sorted(c.alpha_3 for c in pycountry.currencies)).map(str.lower),
    "status": st.sampled_from(["active", "ARCHIVED", " Disabled ", "enabled", "weird"]),
    "phone": st.from_regex(r"\+?[0-9 ()-]{0,70}", fullmatch=True),
    "created_at": st.datetimes(timezones=st.none() | offsets).map(lambda dt: dt.isoformat()),
    "updated_at": st.datetimes(timezones=st.none() | offsets) | st.dates(),
    "pincode": st.integers(0, 10**12),
}
clean_rows = st.fixed_dictionaries(
    {column: plausible.get(column, clean_text) for column in SOURCE_COLUMNS}
)
rows = st.one_of(
    st.builds(
        lambda row, junk_columns: row | junk_columns,
        clean_rows,
        st.dictionaries(st.sampled_from(SOURCE_COLUMNS), junk, max_size=3),
    ),
    st.fixed_dictionaries({}, optional={column: junk for column in SOURCE_COLUMNS}),
)


def assert_is_sound(payload: CustomerPayload) -> None:
    """Fail unless the payload round-trips through the model and JSON and obeys the rules."""
    body = payload.to_api()
    assert CustomerPayload.model_validate(body) == payload
    json.dumps(body, allow_nan=False, ensure_ascii=False).encode("utf-8")
    payload.model_dump_json()
    assert 1 <= len(payload.name) <= 255
    assert payload.name == payload.name.strip()
    assert not any(CONTROL.search(text) for text in _strings(body))
    if payload.currency_id is not None:
        assert pycountry.currencies.get(alpha_3=payload.currency_id) is not None
    for moment in (payload.created_at, payload.updated_at):
        assert moment is None or TIMESTAMP.fullmatch(moment)


def _strings(value: Any) -> list[str]:
    """Return every string inside a JSON-like value."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return [value] if isinstance(value, str) else []


@FUZZ
@given(st.lists(rows, max_size=8))
def test_places_every_row_in_exactly_one_list_in_input_order(batch: list[dict[str, Any]]) -> None:
    numbered = [row | {"id": index} if "id" in row else row for index, row in enumerate(batch)]

    result = build_payloads(numbered)

    assert len(result.accepted) + len(result.rejected) == len(batch)
    accepted_ids = [customer_id for customer_id, _ in result.accepted]
    rejected_ids = [customer_id for customer_id, _ in result.rejected if customer_id is not None]
    assert accepted_ids == sorted(accepted_ids)
    assert rejected_ids == sorted(rejected_ids)
    assert sorted(accepted_ids + rejected_ids) == [i for i, row in enumerate(batch) if "id" in row]


@FUZZ
@given(rows)
def test_never_raises_and_accepts_only_sound_payloads(row: dict[str, Any]) -> None:
    result = build_payloads([row])

    for _, payload in result.accepted:
        assert_is_sound(payload)
    for _, rejection in result.rejected:
        assert rejection.message
        assert rejection.field in rejection.message
        assert rejection.rule.startswith(f"{rejection.field}.")


@FUZZ
@given(st.sampled_from(SOURCE_COLUMNS[1:]), junk)
def test_blames_only_the_column_that_holds_the_junk(column: str, value: Any) -> None:
    result = build_payloads([make_customer(**{column: value})])

    match result:
        case Transformed(accepted=[(_, payload)], rejected=[]):
            assert_is_sound(payload)
        case Transformed(accepted=[], rejected=[(_, rejection)]):
            assert rejection.field == column
            assert rejection.rule.startswith(f"{column}.")
            assert column in rejection.message and rejection.rule in rejection.message
        case _:
            raise AssertionError(f"row landed in neither or both lists: {result}")


@FUZZ
@given(rows)
def test_to_payload_agrees_with_build_payloads(row: dict[str, Any]) -> None:
    row = row | {"id": 1}
    [outcome] = build_payloads([row]).accepted or build_payloads([row]).rejected

    try:
        assert to_payload(row) == outcome[1]
    except RowRejected as error:
        assert error.rejection == outcome[1]
        assert str(error) == error.rejection.message


@FUZZ
@given(st.sampled_from(SOURCE_COLUMNS[1:]), st.data())
def test_content_hash_is_the_same_for_equal_payloads(column: str, data: st.DataObject) -> None:
    value = data.draw(st.one_of(plausible.get(column, clean_text), junk))
    row = make_customer(**{column: value})
    accepted = build_payloads([row]).accepted
    assume(accepted)
    payload = accepted[0][1]

    reversed_row = dict(reversed(list(row.items())))
    rebuilt = CustomerPayload.model_validate(payload.to_api())
    assert to_payload(reversed_row).content_hash() == payload.content_hash()
    assert rebuilt == payload
    assert rebuilt.content_hash() == payload.content_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", payload.content_hash())
