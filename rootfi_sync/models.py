"""RootFi's customer payload, as pydantic models, and its stable fingerprint."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

CustomerStatus = Literal["ACTIVE", "ARCHIVED", "UNKNOWN"]


class Address(BaseModel):
    """A customer's postal address, as RootFi nests it under `address`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    street: str | None = None
    locality: str | None = None
    city: str | None = None
    state: str | None = None
    pincode: str | None = None
    country: str | None = None


ADDRESS_FIELDS: tuple[str, ...] = tuple(Address.model_fields)
"""The address fields, in order: RootFi's, and the source table's columns of the same names."""


class CustomerPayload(BaseModel):
    """One record of `POST /v3/ecommerce/customers`'s `data` list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    email: str | None = None
    phone: str | None = None
    currency_id: str | None = None
    status: CustomerStatus = "UNKNOWN"
    created_at: str | None = None
    updated_at: str | None = None
    address: Address | None = None

    def to_api(self) -> dict[str, Any]:
        """Return the JSON object sent to RootFi (absent fields left out)."""
        return self.model_dump(exclude_none=True)

    def content_hash(self) -> str:
        """Return a sha256 hex digest of the canonical JSON of the payload."""
        canonical = json.dumps(self.to_api(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


MATCHABLE_FIELDS: tuple[str, ...] = ("name", "email", "phone", "currency_id", *ADDRESS_FIELDS)
"""The fields a RootFi record may be matched on (ROOTFI_MATCH_FIELDS; `rootfi.matching`)."""

DEFAULT_MATCH_FIELDS: tuple[str, ...] = ("name", "email")


def parse_match_fields(value: str) -> tuple[str, ...]:
    """Return the fields of a ROOTFI_MATCH_FIELDS value (comma-separated), or raise ValueError
    saying what is wrong with it."""
    fields = tuple(f.strip().lower() for f in value.split(",") if f.strip())
    unknown = [f for f in fields if f not in MATCHABLE_FIELDS]
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; known: {', '.join(MATCHABLE_FIELDS)}")
    if len(set(fields)) != len(fields):
        raise ValueError("names a field twice")
    if not [f for f in fields if f not in ADDRESS_FIELDS]:
        raise ValueError(
            "needs at least one of name, email, phone, currency_id (address fields are "
            "optional in a match: platforms drop them)"
        )
    return fields
