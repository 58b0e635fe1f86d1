"""Test data: valid source rows for the `customers` table, with any column overridden."""

from __future__ import annotations

import itertools
import os
from datetime import datetime, timedelta
from typing import Any, get_args

from faker import Faker
from rootfi_sandbox import Faults, SandboxConfig, SandboxServer
from rootfi_sandbox.platforms import PlatformName

from rootfi_sync.settings import SOURCE_COLUMNS

_fake = Faker("en_US")
_fake.seed_instance(4217)
_ids = itertools.count(1)
_EPOCH = datetime(2024, 1, 15, 9, 30, 0, 123456)
# The platform profile project tests run their sandboxes under unless a test sets its own:
# `ROOTFI_TEST_PLATFORM=normalizing` runs them against records kept in platforms' forms.
PLATFORM_VARIABLE = "ROOTFI_TEST_PLATFORM"


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


def platform_under_test() -> str:
    """Return the platform profile named by ROOTFI_TEST_PLATFORM (default `lenient`)."""
    name = os.environ.get(PLATFORM_VARIABLE, "").strip() or "lenient"
    if name not in get_args(PlatformName):
        known = ", ".join(get_args(PlatformName))
        raise ValueError(f"{PLATFORM_VARIABLE}={name!r} is not a platform profile; known: {known}")
    return name


def sandbox_for(api_key: str, *companies: int, **config: Any) -> SandboxServer:
    """A sandbox (not yet started: use it as a context manager) that knows the key and companies,
    behind the platform profile ROOTFI_TEST_PLATFORM names unless `faults` say otherwise."""
    config.setdefault("async_delay_seconds", 0.05)
    config.setdefault("faults", Faults(platform=platform_under_test()))
    return SandboxServer(
        SandboxConfig(api_keys=frozenset({api_key}), company_ids=frozenset(companies), **config)
    )
