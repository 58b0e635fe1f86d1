"""Reading a create request: the body's envelope and each record's schema, as RootFi's docs
state them (field names, types, the `status` enum, ISO 8601 timestamps) and no more.

Schema problems refuse the whole request (400 VALIDATION_ERROR, field `data[i].<field>`).
What a platform refuses (an email's form, a phone, a name's length, a currency) is the
platform profile's business (`rootfi_sandbox.platforms`), per record.

`strict` (`Faults.strict_schema`) adds, as schema errors of the whole request, the rules the
sandbox applied before it followed the docs (`STRICT_RULES`): RootFi does not state them, but
tests of a request refused whole need something the project sends to be refused whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rootfi_sandbox.errors import VALIDATION_ERROR, ApiError, invalid, json_object
from rootfi_sandbox.platforms import PHONE_CHARACTERS
from rootfi_sandbox.timefmt import parse_iso

STATUSES = frozenset({"ACTIVE", "ARCHIVED", "UNKNOWN"})
STRING_FIELDS = ("name", "email", "phone", "currency_id", "status", "created_at", "updated_at")
RECORD_FIELDS = frozenset({"address", *STRING_FIELDS})
ADDRESS_STRINGS = ("platform_id", "street", "locality", "city", "state", "pincode", "country")
ADDRESS_FIELDS = frozenset({"rootfi_id", *ADDRESS_STRINGS})
STRICT_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "name": (re.compile(r"(?=.*\S).{1,255}", re.S), "name must be 1-255 characters, not blank"),
    "email": (re.compile(r"[^@]*@[^@]*"), "email must contain exactly one @"),
    "currency_id": (re.compile(r"[A-Z]{3}"), "currency_id must be three upper-case letters"),
    "phone": (PHONE_CHARACTERS, "phone may contain only digits, spaces and + - ( ) ."),
}


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A well-formed create request (records not yet schema-checked)."""

    company_id: int
    records: list[Any]
    run_async: bool


def parse_create(raw: bytes, query_async: bool) -> CreateRequest:
    """The envelope `{"company_id", "data", "run_async"}`; anything else is INVALID_REQUEST."""
    body = json_object(raw)
    company_id = body.get("company_id")
    if type(company_id) is not int:
        raise invalid("company_id is required and must be an integer", "company_id")
    records = body.get("data")
    if not isinstance(records, list) or not records:
        raise invalid("data must be a non-empty list of customers", "data")
    run_async = body.get("run_async", False)
    if run_async is None:
        run_async = False
    if not isinstance(run_async, bool):
        raise invalid("run_async must be a boolean", "run_async")
    return CreateRequest(company_id, records, run_async or query_async)


def _refuse(index: int, field: str, message: str) -> ApiError:
    where = f"data[{index}].{field}" if field else f"data[{index}]"
    return ApiError(400, VALIDATION_ERROR, message, where)


def _check_address(index: int, address: Any) -> None:
    if address is None:
        return
    if not isinstance(address, dict):
        raise _refuse(index, "address", "address must be an object")
    for key, value in address.items():
        where = f"address.{key}"
        if key not in ADDRESS_FIELDS:
            raise _refuse(index, where, f"Unknown field {where}")
        if value is None:
            continue
        if key == "rootfi_id":
            if type(value) is not int:
                raise _refuse(index, where, "address.rootfi_id must be an integer")
        elif not isinstance(value, str):
            raise _refuse(index, where, f"{where} must be a string")


def _string_problem(field: str, value: str, strict: bool) -> str | None:
    rule = STRICT_RULES.get(field) if strict else None
    if rule is not None and not rule[0].fullmatch(value):
        return rule[1]
    if field == "status" and value not in STATUSES:
        return "status must be one of ACTIVE, ARCHIVED, UNKNOWN"
    if field in ("created_at", "updated_at"):
        try:
            parse_iso(value)
        except ValueError:
            return f"{field} must be an ISO 8601 date-time"
    return None


def check_record(index: int, record: Any, strict: bool = False) -> None:
    """Raise VALIDATION_ERROR for the first schema problem of `data[index]`."""
    if not isinstance(record, dict):
        raise _refuse(index, "", "Each customer must be a JSON object")
    for key in record:
        if key not in RECORD_FIELDS:
            raise _refuse(index, key, f"Unknown field {key}")
    for field in STRING_FIELDS:
        value = record.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _refuse(index, field, f"{field} must be a string")
        problem = _string_problem(field, value, strict)
        if problem:
            raise _refuse(index, field, problem)
    _check_address(index, record.get("address"))


def check_records(records: list[Any], strict: bool = False) -> None:
    """Schema-check every record; the first problem refuses the whole request."""
    for index, record in enumerate(records):
        check_record(index, record, strict)
