"""Doctor checks of the services: RootFi (the key, the company) and the Prefect API (the
work pool, the Secret block holding the key, the global rate limit). Reads only."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import sqlalchemy as sa
from pydantic import SecretStr

from rootfi_sync import errors
from rootfi_sync.cli.doctor import PREFECT, Check, skipped
from rootfi_sync.orchestration.prefect_setup import SECRET_BLOCK
from rootfi_sync.settings import Settings

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

SETUP = "ROOTFI_API_KEY=… rootfi-sync setup"
PREFECT_NAMES = PREFECT[1:]  # the checks that need the Prefect API to answer


def check_rootfi(settings: Settings, block_key: SecretStr | None) -> list[Check]:
    """The key runs will use (the Secret block's, else ROOTFI_API_KEY) lists the company."""
    key, source = settings.rootfi_api_key, "ROOTFI_API_KEY"
    if block_key is not None:
        key, source = block_key, f"Secret block {SECRET_BLOCK}"
    if key is None:
        detail = f"no API key: neither a Secret block {SECRET_BLOCK} nor ROOTFI_API_KEY"
        return [
            Check("rootfi key", "fail", detail, SETUP),
            *skipped(("rootfi company",), "no usable key"),
        ]
    try:
        ids = _company_ids(settings, key)
    except errors.AuthError as exc:
        detail = f"RootFi refused the key from {source}: {exc.reason}"
        fix = f"save the right key: {SETUP}" if block_key else "export the right ROOTFI_API_KEY"
        return [
            Check("rootfi key", "fail", detail, fix),
            *skipped(("rootfi company",), "no usable key"),
        ]
    except errors.RootFiError as exc:
        detail = f"cannot list companies at {settings.rootfi_base_url}: {exc}"
        fix = "check ROOTFI_BASE_URL and the network"
        return [
            Check("rootfi key", "fail", detail, fix),
            *skipped(("rootfi company",), "no usable key"),
        ]
    reach = f"{len(ids)} compan{'y' if len(ids) == 1 else 'ies'}"
    detail = f"accepted by {settings.rootfi_base_url} (from {source}); it reaches {reach}"
    if settings.rootfi_company_id is None and settings.source_company_column:
        return [Check("rootfi key", "ok", detail), _check_due_companies(settings, ids)]
    return [Check("rootfi key", "ok", detail), _check_company(settings.rootfi_company_id, ids)]


def _company_ids(settings: Settings, key: SecretStr) -> list[str]:
    from rootfi_sync.rootfi.client import RootFiClient

    timeout = min(settings.rootfi_timeout_seconds, 15.0)
    with RootFiClient(settings.rootfi_base_url, key, timeout=timeout, max_rate_limit_wait=10) as c:
        return [str(company.get("rootfi_id")) for company in c.iter_companies()]


def _check_company(company: int | None, ids: list[str]) -> Check:
    some = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
    if company is None:
        fix = f"export ROOTFI_COMPANY_ID=<one of {some}>"
        return Check("rootfi company", "fail", "ROOTFI_COMPANY_ID is not set", fix)
    if str(company) not in ids:
        detail = f"company {company} is not among the {len(ids)} this key reaches ({some})"
        fix = "set ROOTFI_COMPANY_ID to one of them, or use that company's key"
        return Check("rootfi company", "fail", detail, fix)
    return Check("rootfi company", "ok", f"company {company} is reachable with this key")


def _check_due_companies(settings: Settings, ids: list[str]) -> Check:
    """A source of many companies (SOURCE_COMPANY_COLUMN, no ROOTFI_COMPANY_ID): the key
    reaches every company with work due, the ones the fan-out's next tick would run.

    Asked of the companies list the key check has read (the fan-out asks the same question
    with `fanout.reachable`, which stops early; here the whole list is read anyway).
    """
    from rootfi_sync.cli.doctor.database import due_companies

    column = f"SOURCE_COMPANY_COLUMN {settings.source_company_column}"
    try:
        due = due_companies(settings)
    except (FileNotFoundError, sa.exc.DBAPIError) as exc:
        why = f"the companies with work due could not be read ({type(exc).__name__})"
        return Check("rootfi company", "skip", f"not checked: {why}")
    if not due:
        why = f"no company has work due now ({column}); the fan-out's next tick starts no run"
        return Check("rootfi company", "skip", f"not checked: {why}")
    missed = [company for company in due if str(company) not in set(ids)]
    if missed:
        named = ", ".join(map(str, missed[:10])) + (", …" if len(missed) > 10 else "")
        detail = (
            f"{len(missed)} of the {len(due)} companies with work due ({column}) are not "
            f"among the {len(ids)} this key reaches: {named}"
        )
        fix = "use the key that reaches them, or move their customers out of the source"
        return Check("rootfi company", "fail", detail, fix)
    many = f"the {len(due)} compan{'y' if len(due) == 1 else 'ies'} with work due"
    return Check("rootfi company", "ok", f"{many} ({column}): reachable with this key")


def check_prefect(settings: Settings, work_pool: str) -> tuple[list[Check], SecretStr | None]:
    """The Prefect API answers and holds the pool, the key's block and the rate limit.

    Also returns the key saved in the block (None without one), which runs use first.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return _no_server(), None
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
        if error is not None:
            detail = f"{url} does not answer ({type(error).__name__}: {error})"
            fix = "start the server (`prefect server start`) or correct PREFECT_API_URL"
            return [
                Check("prefect api", "fail", detail, fix),
                *skipped(PREFECT_NAMES, "no Prefect API"),
            ], None
        block, key = _check_block(client)
        checks = [Check("prefect api", "ok", f"{url} answers"), _check_pool(client, work_pool)]
        return [*checks, block, _check_limit(client, settings)], key


def _no_server() -> list[Check]:
    """No PREFECT_API_URL: a warning, not a failure. `rootfi-sync run` works on Prefect's
    temporary server (the demo's way); deployments, schedules and the rate limit do not."""
    detail = (
        "PREFECT_API_URL is not set: each run starts a temporary server of its own (enough "
        "for `rootfi-sync run`); deployments, schedules and the shared rate limit need a server"
    )
    fix = "export PREFECT_API_URL=http://<server>:4200/api (or `prefect cloud login`)"
    why = "a temporary server has no work pool, Secret block or rate limit"
    return [Check("prefect api", "warn", detail, fix), *skipped(PREFECT_NAMES, why)]


def _check_pool(client: SyncPrefectClient, name: str) -> Check:
    from prefect.exceptions import ObjectNotFound

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        return Check(
            "work pool", "fail", f"no work pool {name}", f"rootfi-sync setup --work-pool {name}"
        )
    if pool.is_paused:
        return Check(
            "work pool", "fail", f"work pool {name} is paused", f"prefect work-pool resume {name}"
        )
    online = sum(1 for w in client.read_workers_for_work_pool(name) if w.status == "ONLINE")
    workers = (
        f"{online} worker(s) online"
        if online
        else (f"no worker online yet: start one with `prefect worker start --pool {name}`")
    )
    return Check("work pool", "ok", f"{name} ({pool.type}), not paused; {workers}")


def _check_block(client: SyncPrefectClient) -> tuple[Check, SecretStr | None]:
    from prefect.exceptions import ObjectNotFound

    try:
        block = client.read_block_document_by_name(SECRET_BLOCK, "secret", include_secrets=True)
    except ObjectNotFound:
        detail = f"no Secret block {SECRET_BLOCK}: workers would need ROOTFI_API_KEY themselves"
        return Check("secret block", "fail", detail, SETUP), None
    value = block.data.get("value")
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value:
        return Check("secret block", "fail", f"Secret block {SECRET_BLOCK} is empty", SETUP), None
    return Check("secret block", "ok", f"{SECRET_BLOCK} holds a key"), SecretStr(str(value))


def _check_limit(client: SyncPrefectClient, settings: Settings) -> Check:
    """The global concurrency limit is active and holds the budget of the settings, as
    `rootfi-sync setup` sets it (`governor.pacing`: a burst and a slot decay)."""
    from prefect.exceptions import ObjectNotFound

    from rootfi_sync.rootfi.governor import pacing

    name, budget = settings.rootfi_rate_limit_name, settings.rootfi_rate_limit_per_minute
    if budget == 0:
        return Check("rate limit", "ok", "not used: ROOTFI_RATE_LIMIT_PER_MINUTE=0 (no pacing)")
    fix = f"rootfi-sync setup --rate-limit {budget}"
    try:
        limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        detail = f"no global concurrency limit {name}: each run would pace itself alone"
        return Check("rate limit", "fail", detail, fix)
    if not limit.active:
        return Check(
            "rate limit",
            "fail",
            f"{name} is inactive: runs pace themselves alone",
            f"{fix} (or `prefect gcl enable {name}`)",
        )
    if limit.slot_decay_per_second <= 0:
        return Check("rate limit", "fail", f"{name} has no slot decay: it is not a rate limit", fix)
    burst, decay = pacing(budget)
    held = f"burst {limit.limit}, slot decay {limit.slot_decay_per_second:.2f}/s"
    if limit.limit != burst or not math.isclose(limit.slot_decay_per_second, decay):
        per_minute = limit.limit + limit.slot_decay_per_second * 60
        detail = (
            f"{name} holds {held} (about {per_minute:.0f} requests a minute); "
            f"ROOTFI_RATE_LIMIT_PER_MINUTE={budget} needs burst {burst}, slot decay {decay:.2f}/s"
        )
        return Check("rate limit", "fail", detail, fix)
    return Check("rate limit", "ok", f"{name} active: {budget} requests a minute ({held})")
