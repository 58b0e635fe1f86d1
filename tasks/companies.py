"""The companies a multi-company source holds."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rootfi_sync.db import make_engine, source_for
from rootfi_sync.errors import SettingsError
from rootfi_sync.ledger import source_companies
from rootfi_sync.settings import Settings


@task(name="list-companies", cache_policy=NO_CACHE)
def list_companies(settings: Settings) -> list[int]:
    """Return the distinct company ids in the source's company column."""
    if not settings.source_company_column:
        raise SettingsError(
            "SOURCE_COMPANY_COLUMN is not set: give company_ids, or name the source column "
            "that holds each customer's RootFi company id"
        )
    engine = make_engine(settings.source_database_url)
    try:
        return source_companies(engine, source_for(settings))
    finally:
        engine.dispose()
