"""Realistic sample customers (faker), with a few rows that break a rule on purpose.

They go only into the demo's database (a SQLite file beside `DEMO_MARKER`), or into a
database whose URL is given again as consent (`seed --yes-into URL`): a user's own database
gets no fake customers, and no sample table, by mistake.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
from faker import Faker

from rootfi_sync.db import (
    create_sample,
    init_db,
    safe_url,
    sample_for,
    source_engine,
    sqlite_path,
)
from rootfi_sync.errors import SeedRefused
from rootfi_sync.ledger import utcnow
from rootfi_sync.settings import Settings

DEMO_MARKER = ".rootfi-sync-demo"
"""A file the demo leaves beside its database: the one database `seed` fills unasked."""

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
    start = utcnow() - timedelta(days=365)
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


def insert_customers(engine: sa.Engine, table: sa.Table, rows: Iterator[dict[str, Any]]) -> int:
    """Insert rows in chunks; return how many were inserted."""
    total, chunk = 0, []
    with engine.begin() as conn:
        for row in rows:
            chunk.append(row)
            if len(chunk) == 1000:
                conn.execute(table.insert(), chunk)
                total, chunk = total + len(chunk), []
        if chunk:
            conn.execute(table.insert(), chunk)
            total += len(chunk)
    return total


def is_demo_database(url: str) -> bool:
    """Whether `url` is a SQLite file the demo made (its folder holds `DEMO_MARKER`)."""
    path = sqlite_path(url)
    return path is not None and (path.resolve().parent / DEMO_MARKER).is_file()


def seed_into(settings: Settings, rows: Iterable[dict[str, Any]], *, yes_into: str | None) -> int:
    """Create the sample table if absent, migrate the ledger, insert `rows`; return how many.

    Raises SeedRefused unless the source is the demo's database or `yes_into` is its URL.
    """
    target = settings.source_database_url
    if yes_into != target and not is_demo_database(target):
        raise SeedRefused(
            f"seed adds fake customers (and creates the sample table) in SOURCE_DATABASE_URL, "
            f"{safe_url(target)}, which is not the demo's database; if that is what you want, "
            "give its URL again: --yes-into '<SOURCE_DATABASE_URL>'"
        )
    create_sample(settings)
    init_db(settings)
    engine = source_engine(settings)
    try:
        return insert_customers(engine, sample_for(settings), iter(rows))
    finally:
        engine.dispose()
