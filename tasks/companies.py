"""The fan-out's questions: which companies have work due, and which of them the key reaches."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from rootfi_sync import errors
from rootfi_sync.ledger import db_now
from rootfi_sync.ledger.db import ledger_engine, source_engine, source_for
from rootfi_sync.ledger.due import Due, due_work
from rootfi_sync.run import fanout, rootfi_client
from rootfi_sync.settings import Settings
from tasks.load import is_transient


@task(name="find-due-companies", cache_policy=NO_CACHE)
def find_due(settings: Settings, company_ids: list[int] | None) -> list[Due]:
    """Return the companies (of `company_ids`, if given) with work due now, with how much.

    Without a company column every company given is due: nothing tells their rows apart.
    """
    if not settings.source_company_column:
        if not company_ids:
            raise errors.SettingsError(
                "SOURCE_COMPANY_COLUMN is not set: give company_ids, or name the source column "
                "that holds each customer's RootFi company id"
            )
        return [Due(c) for c in sorted(set(company_ids))]
    engine = ledger_engine(settings)
    reader = source_engine(settings) if settings.ledger_apart else None
    try:
        with engine.connect() as conn:
            now = db_now(conn)
        return due_work(
            engine, source_for(settings), now, source_engine=reader, companies=company_ids
        )
    finally:
        engine.dispose()
        if reader is not None:
            reader.dispose()


@task(
    name="list-reachable-companies",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=is_transient,
)
def list_reachable(settings: Settings, api_key: SecretStr, wanted: list[int]) -> set[int]:
    """Return which `wanted` companies this key reaches (one pass over the companies list).

    Raises SettingsError when RootFi refuses the key.
    """
    with rootfi_client(settings, api_key) as client:
        return fanout.reachable(client, wanted)
