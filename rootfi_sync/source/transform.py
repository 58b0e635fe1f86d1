"""Turn source customer rows into RootFi payloads, or say which rule each row broke.

Pure: no database, no HTTP, no clock. Values come as the database holds them (a timestamp
may be a string, a number or bytes): parsing them is a rule like any other. `to_payload`
checks one row and raises `RowRejected` on its first broken rule (name, email, currency,
status, created_at, updated_at, then phone and the address fields); `build_payloads` checks
each row's key first, then sorts many rows into accepted and rejected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pycountry
from email_validator import EmailNotValidError, validate_email

from rootfi_sync.errors import RootFiSyncError
from rootfi_sync.models import ADDRESS_FIELDS, Address, CustomerPayload, CustomerStatus
from rootfi_sync.timefmt import iso_ms

NAME_MAX = 255
PHONE_MAX = 64
ADDRESS_MAX = 255
SHOWN_MAX = 60
COPIES = "_copies"
"""Set by the reader on a row whose key other source rows share too: how many share it."""

STATUSES: dict[str, CustomerStatus] = {
    "active": "ACTIVE",
    "enabled": "ACTIVE",
    "archived": "ARCHIVED",
    "inactive": "ARCHIVED",
    "disabled": "ARCHIVED",
    "deleted": "ARCHIVED",
}

# C0 and C1 controls and DEL, but not tab: databases and the API choke on them.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Lone surrogates cannot be encoded as UTF-8, so they could never be stored or sent.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BINARY = (bytes, bytearray, memoryview)
# Multi-line addresses are common in source tables; the API wants one line per field.
_LINE_BREAKS = re.compile(r"\s*(?:\r\n|\r|\n)\s*")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a source row is not sent: the column, a short rule id and a sentence."""

    field: str
    rule: str
    message: str


class RowRejected(RootFiSyncError, ValueError):
    """A source row broke a transform rule; `.rejection` says which."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(frozen=True, slots=True)
class Transformed:
    """Rows split into (customer_id, payload) and (customer_id, rejection), in input order."""

    accepted: list[tuple[Any, CustomerPayload]]
    rejected: list[tuple[Any, Rejection]]


def build_payloads(rows: Iterable[Mapping[str, Any]]) -> Transformed:
    """Return every row's payload or rejection; a bad row never raises."""
    accepted: list[tuple[Any, CustomerPayload]] = []
    rejected: list[tuple[Any, Rejection]] = []
    for row in rows:
        customer_id = row.get("id")
        try:
            _key(customer_id, row.get(COPIES, 1))
            accepted.append((customer_id, to_payload(row)))
        except RowRejected as error:
            rejected.append((customer_id, error.rejection))
    return Transformed(accepted=accepted, rejected=rejected)


def _key(value: Any, copies: int) -> None:
    """Check that the row has a key of its own: one customer, one outcome in the ledger."""
    if value is None:
        raise _rejected("id", "missing", value, "is missing; every row needs one")
    if copies > 1:
        # Which of the rows would be the customer? Sending either could be wrong.
        problem = f"is the key of {copies} source rows; nothing is sent until it is unique"
        raise _rejected("id", "duplicate", value, problem)


def to_payload(row: Mapping[str, Any]) -> CustomerPayload:
    """Return the RootFi payload for one source row; raise RowRejected on its first broken rule."""
    name = _name(row.get("name"))
    email = _email(row.get("email"))
    currency = _currency(row.get("currency"))
    status = _status(row.get("status"))
    created_at = _timestamp("created_at", row.get("created_at"))
    updated_at = _timestamp("updated_at", row.get("updated_at"))
    phone = _bounded("phone", row.get("phone"), PHONE_MAX)
    return CustomerPayload(
        name=name,
        email=email,
        phone=phone,
        currency_id=currency,
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        address=_address(row),
    )


def _name(value: Any) -> str:
    """Return the trimmed name, which must be present."""
    name = _bounded("name", value, NAME_MAX)
    if name is None:
        raise _rejected("name", "required", value, "is blank; a name is required")
    return name


def _email(value: Any) -> str | None:
    """Return the library's normalized address (domain lower-cased), or None when blank."""
    email = _text("email", value)
    if email is None:
        return None
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise _rejected(
            "email", "invalid", email, f"is not a valid email address ({error})"
        ) from error


def _currency(value: Any) -> str | None:
    """Return the upper-cased ISO 4217 code, or None when blank."""
    code = _text("currency", value)
    if code is None:
        return None
    # ASCII first: `str.upper` maps some letters (the long s, U+017F) onto A-Z.
    is_alpha3 = len(code) == 3 and code.isascii() and code.isalpha()
    if not is_alpha3 or pycountry.currencies.get(alpha_3=code.upper()) is None:
        raise _rejected("currency", "not_iso4217", code, "is not an ISO 4217 code")
    return code.upper()


def _status(value: Any) -> CustomerStatus:
    """Return ACTIVE, ARCHIVED or UNKNOWN; never rejects."""
    if isinstance(value, _BINARY):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        return "UNKNOWN"
    return STATUSES.get(value.strip().lower(), "UNKNOWN")


def _timestamp(field: str, value: Any) -> str | None:
    """Return the moment as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, or None when NULL."""
    if value is None:
        return None
    try:
        return iso_ms(_moment(field, value))
    except OverflowError:
        raise _rejected(
            field, "not_a_timestamp", value, "is out of range once converted to UTC"
        ) from None


def moment_or_none(value: Any) -> datetime | None:
    """Return a timestamp as the database holds it as an aware UTC datetime (naive means
    UTC); None when it is NULL or no timestamp (`_moment` would refuse it)."""
    if value is None:
        return None
    try:
        moment = _moment("created_at", value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (RowRejected, OverflowError):
        return None


def _moment(field: str, value: Any) -> datetime:
    """Return a datetime, date or ISO 8601 text as a datetime (naive still means UTC)."""
    if isinstance(value, _BINARY):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return _parse_iso(field, value)
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    # Epoch numbers are refused, not guessed at: seconds, milliseconds or days?
    raise _rejected(field, "not_a_timestamp", value, "is not a timestamp")


def _parse_iso(field: str, value: str) -> datetime:
    """Return the ISO 8601 string as a datetime, accepting a trailing Z or a space for T.

    A blank string is refused, not taken for NULL: it is not a timestamp, and a column of
    timestamps holding one was written by something that went wrong.
    """
    text = value.strip()
    # CPython's parser stops at a NUL, so '...09\x00' would otherwise pass as a timestamp.
    if _CONTROL.search(text):
        raise _rejected(field, "not_a_timestamp", value, "contains control characters")
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _rejected(field, "not_a_timestamp", value, "is not an ISO 8601 timestamp") from None


def _address(row: Mapping[str, Any]) -> Address | None:
    """Return the grouped address, or None when every address field is blank."""
    parts = {field: _bounded(field, row.get(field), ADDRESS_MAX) for field in ADDRESS_FIELDS}
    if all(part is None for part in parts.values()):
        return None
    return Address(**parts)


def _bounded(field: str, value: Any, limit: int) -> str | None:
    """Return the trimmed text, at most `limit` characters, or None when blank."""
    text = _text(field, value)
    if text is not None and len(text) > limit:
        problem = f"is {len(text)} characters long, more than {limit}"
        raise _rejected(field, "too_long", text, problem)
    return text


def _text(field: str, value: Any) -> str | None:
    """Return the value as trimmed text free of control characters, or None when blank."""
    if value is None:
        return None
    text = _as_str(field, value).strip()
    if field in ADDRESS_FIELDS:
        text = _LINE_BREAKS.sub(", ", text)
    if _CONTROL.search(text):
        raise _rejected(field, "control_characters", text, "contains control characters")
    if _SURROGATE.search(text):
        raise _rejected(field, "not_text", text, "contains unpaired surrogates")
    return text or None


def _as_str(field: str, value: Any) -> str:
    """Return str, UTF-8 bytes, or a finite number as a string; reject anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, _BINARY):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _rejected(field, "not_text", value, "is not UTF-8 text") from None
    # bool is an int, but True is no one's name or postcode; and str() refuses ints of over
    # 4300 digits, while 1000 bits (~301 digits) is already longer than any field allows.
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() < 1000:
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        # A REAL column turns postcode 560001 into 560001.0; keep the digits only.
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    raise _rejected(field, "not_text", value, f"is not text ({type(value).__name__})")


def _rejected(field: str, check: str, value: Any, problem: str) -> RowRejected:
    """Return the exception for `value` of `field` failing rule `<field>.<check>`."""
    return RowRejected(_rejection(field, check, value, problem))


def _rejection(field: str, check: str, value: Any, problem: str) -> Rejection:
    """Return rule `<field>.<check>` with a message naming the field, the value and the rule."""
    rule = f"{field}.{check}"
    return Rejection(field, rule, f"{field}: {_show(value)} {problem} [{rule}]")


def _show(value: Any) -> str:
    """Return repr(value), cut to about SHOWN_MAX characters."""
    if isinstance(value, str) and len(value) > SHOWN_MAX:
        return repr(value[:SHOWN_MAX]) + "..."
    shown = repr(value)
    return shown if len(shown) <= SHOWN_MAX else shown[:SHOWN_MAX] + "..."
