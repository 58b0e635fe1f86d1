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
