"""Test data: valid source rows for the `customers` table, with any column overridden."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from faker import Faker
from rootfi_sandbox import SandboxConfig, SandboxServer

from rootfi_sync.settings import SOURCE_COLUMNS

_fake = Faker("en_US")
_fake.seed_instance(4217)
_ids = itertools.count(1)
_EPOCH = datetime(2024, 1, 15, 9, 30, 0, 123456)


def make_customer(**overrides: Any) -> dict[str, Any]:
    """Return a valid source row (unique id and email, naive UTC timestamps) with overrides."""
    unknown = set(overrides) - set(SOURCE_COLUMNS)
    if unknown:
        raise TypeError(f"make_customer() got unknown columns: {sorted(unknown)}")
    number = next(_ids)
    created_at = _EPOCH + timedelta(minutes=number)
    row: dict[str, Any] = {
        "id": number,
        "name": _fake.name(),
        "email": f"customer{number}@example.com",
        "phone": _fake.numerify("+1-###-###-####"),
        "currency": "USD",
        "status": "active",
        "street": _fake.street_address(),
        "locality": _fake.city(),
        "city": _fake.city(),
        "state": _fake.state_abbr(),
        "pincode": _fake.postcode(),
        "country": "US",
        "created_at": created_at,
        "updated_at": created_at + timedelta(days=1),
    }
    return row | overrides


def sandbox_for(api_key: str, *companies: int, **config: Any) -> SandboxServer:
    """A sandbox (not yet started: use it as a context manager) that knows the key and companies."""
    config.setdefault("async_delay_seconds", 0.05)
    return SandboxServer(
        SandboxConfig(api_keys=frozenset({api_key}), company_ids=frozenset(companies), **config)
    )
