"""Realistic sample customers (faker), with a few rows that break a rule on purpose.

Rows in the shape of rootfi-sync's sample source table (DESIGN.md), for the demo, `seed`,
the tests and the benchmarks. Plain dicts: this package imports nothing of rootfi-sync.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from faker import Faker

CURRENCIES = ("USD", "usd", "EUR", "GBP", "INR", "CAD", "AUD", "", None)
STATUSES = ("active", "Active", "enabled", "archived", "inactive", "disabled", "", None, "vip")

# Each bad row breaks one documented rule; the last is valid for us but refused by the
# sandbox's platform (reserved email domain), so it shows a refusal from RootFi's side.
BAD_ROWS: tuple[dict[str, Any], ...] = (
    {"name": "   "},
    {"email": "not-an-email"},
    {"currency": "DOLLARS"},
    {"name": "X" * 300},
    {"email": "jane.doe@refused.example"},
)


def fake_customers(
    count: int, *, seed: int = 7, bad_share: float = 0.05
) -> Iterator[dict[str, Any]]:
    """Yield `count` source rows (without ids); about `bad_share` of them are bad."""
    fake, rng = Faker(["en_US", "en_GB", "en_IN"]), random.Random(seed)
    Faker.seed(seed)
    start = datetime.now(UTC) - timedelta(days=365)
    every = max(1, round(1 / bad_share)) if bad_share else 0
    for n in range(count):
        created = start + timedelta(minutes=rng.randint(0, 525_000))
        row = {
            "name": fake.name(),
            "email": fake.unique.email(),
            "phone": "+" + fake.msisdn()[:12],
            "currency": rng.choice(CURRENCIES),
            "status": rng.choice(STATUSES),
            "street": fake.street_address().replace("\n", ", "),
            "locality": None,
            "city": fake.city(),
            "state": getattr(fake, "state", fake.city)(),
            "pincode": fake.postcode(),
            "country": fake.current_country_code(),
            "created_at": created.astimezone(UTC).replace(tzinfo=None),
            "updated_at": (created + timedelta(days=rng.randint(0, 30))).replace(tzinfo=None),
        }
        if every and n % every == every // 2:  # spread out, each kind of bad row in turn
            row.update(BAD_ROWS[(n // every) % len(BAD_ROWS)])
        yield row
