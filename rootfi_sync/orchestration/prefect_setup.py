"""Prepare a Prefect server for rootfi-sync: work pool, API key Secret block, rate limit,
and (given a notification block) the alerts of `rootfi_sync.orchestration.alerts`.

Each step is idempotent and reports what it did as one human-readable line. The API key is
sent to Prefect once, inside the Secret block, and never appears in a line or a log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from rootfi_sync import errors
from rootfi_sync.settings import Settings

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

SECRET_BLOCK = "rootfi-api-key"  # the name runs load the key from (`resolve_api_key`)
RATE_LIMIT = "rootfi-api"
WORK_POOL_TYPE = "process"


def resolve_api_key(settings: Settings) -> SecretStr:
    """Return the key from the `rootfi-api-key` Secret block if saved, else ROOTFI_API_KEY."""
    from prefect.blocks.system import Secret

    try:
        return SecretStr(str(Secret.load(SECRET_BLOCK).get()))  # type: ignore[union-attr]
    except (ValueError, RuntimeError):
        pass
    if settings.rootfi_api_key is None:
        raise errors.SettingsError(
            f"missing setting: ROOTFI_API_KEY (or a Prefect Secret block named {SECRET_BLOCK!r})"
        )
    return settings.rootfi_api_key


def setup_prefect(
    *,
    work_pool: str = "rootfi-sync",
    api_key: SecretStr | None,
    rate_limit_per_minute: int | None,
    rate_limit_name: str = RATE_LIMIT,
    notify: str | None = None,
    freshness_minutes: float = 60.0,
) -> list[str]:
    """Create what is missing on the current Prefect API; return one line per step.

    With `notify` (a notification block's name), also create or update the alerts.
    """
    from prefect.client.orchestration import get_client

    from rootfi_sync.orchestration.alerts import ensure_automations, notification_block_id

    if rate_limit_per_minute is not None and rate_limit_per_minute < 0:
        raise ValueError("rate_limit_per_minute must be 0 (no limit) or more")
    with get_client(sync_client=True) as client:
        # A wrong block name stops setup before it changes anything.
        block_id = notification_block_id(client, notify) if notify is not None else None
        lines = [_ensure_work_pool(client, work_pool)]
        lines.append(_save_secret(client, api_key))
        lines.append(_ensure_rate_limit(client, rate_limit_name, rate_limit_per_minute))
        if notify is not None and block_id is not None:
            lines += ensure_automations(client, block_id, notify, freshness_minutes)
    return lines


def _ensure_work_pool(client: SyncPrefectClient, name: str) -> str:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        template = ProcessWorker.get_default_base_job_template()
        try:
            client.create_work_pool(
                WorkPoolCreate(name=name, type=WORK_POOL_TYPE, base_job_template=template)
            )
        except ObjectAlreadyExists:  # created by someone else in the meantime
            return f"work pool {name} already exists"
        return f"created work pool {name} ({WORK_POOL_TYPE})"
    if pool.type != WORK_POOL_TYPE:
        return f"work pool {name} already exists (type {pool.type}, left as is)"
    return f"work pool {name} already exists"


def _save_secret(client: SyncPrefectClient, api_key: SecretStr | None) -> str:
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    if api_key is None:
        return f"no API key given: Secret block {SECRET_BLOCK} left as is"
    try:
        client.read_block_document_by_name(SECRET_BLOCK, "secret", include_secrets=False)
        existed = True
    except ObjectNotFound:
        existed = False
    Secret(value=api_key).save(SECRET_BLOCK, overwrite=True)
    return f"{'updated' if existed else 'saved'} Secret block {SECRET_BLOCK}"


def _ensure_rate_limit(client: SyncPrefectClient, name: str, per_minute: int | None) -> str:
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    if not per_minute:
        return f"no rate limit given: concurrency limit {name} left as is"
    from rootfi_sync.rootfi.governor import pacing

    # A burst plus a refill that add up to the budget: never more than it in any 60 seconds.
    burst, decay = pacing(per_minute)
    wanted = f"{per_minute} a minute: burst {burst}, slot decay {decay:.2f}/s"
    try:
        limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=burst, slot_decay_per_second=decay)
        )
        return f"created concurrency limit {name} ({wanted})"
    if limit.limit == burst and limit.slot_decay_per_second == decay and limit.active:
        return f"concurrency limit {name} already set ({wanted})"
    client.update_global_concurrency_limit(
        name,
        GlobalConcurrencyLimitUpdate(limit=burst, slot_decay_per_second=decay, active=True),
    )
    return f"updated concurrency limit {name} ({wanted})"
