"""`sandbox_command`: run the sandbox from the command line (`rootfi-sync sandbox`).

Every option can also come from `ROOTFI_SANDBOX_<NAME>` (e.g. ROOTFI_SANDBOX_PORT,
ROOTFI_SANDBOX_FAIL_500); repeatable options take whitespace-separated values there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from rootfi_sandbox.config import Faults, JobsOrder, SandboxConfig
from rootfi_sandbox.platforms import PlatformName
from rootfi_sandbox.server import serve

ENV = "ROOTFI_SANDBOX_"


def _opt(name: str, help_text: str, **kwargs: Any) -> Any:
    env = ENV + name.removeprefix("--").replace("-", "_").upper()
    return typer.Option(name, envvar=env, help=help_text, show_envvar=True, **kwargs)


Rate = dict(min=0.0, max=1.0)


def _announce(console: Console, config: SandboxConfig) -> Callable[[str], None]:
    def on_ready(url: str) -> None:
        faults = config.faults.model_dump(exclude_defaults=True)
        console.print(f"[bold green]RootFi sandbox[/] listening on [bold]{url}[/]")
        console.print(f"  ROOTFI_BASE_URL={url}/v3   admin: {url}/_sandbox/state")
        companies = ", ".join(str(c) for c in sorted(config.company_ids))
        limit = config.rate_limit_per_minute or "none"
        console.print(
            f"  companies: {companies}   api keys: {len(config.api_keys)}   rate limit/min: {limit}"
        )
        if faults:
            console.print(f"  faults: {faults}")
        if config.db_path:
            console.print(f"  persisting to {config.db_path}")

    return on_ready


def sandbox_command(
    host: Annotated[str, _opt("--host", "Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, _opt("--port", "Port to listen on (0 = any free port).")] = 8787,
    api_key: Annotated[
        list[str] | None, _opt("--api-key", "Accepted api_key (repeatable). [default: sandbox-key]")
    ] = None,
    company_id: Annotated[
        list[int] | None, _opt("--company-id", "Connected company id (repeatable). [default: 1089]")
    ] = None,
    rate_limit: Annotated[
        int | None, _opt("--rate-limit", "Requests per minute per key (default: unlimited).", min=1)
    ] = None,
    async_delay: Annotated[
        float, _opt("--async-delay", "Seconds until an async write runs.", min=0.0)
    ] = 0.2,
    db_path: Annotated[
        str | None, _opt("--db-path", "SQLite file to persist to (default: memory).")
    ] = None,
    fail_500: Annotated[float, _opt("--fail-500", "Share of creates answered 500.", **Rate)] = 0.0,
    fail_429: Annotated[float, _opt("--fail-429", "Share of creates answered 429.", **Rate)] = 0.0,
    lose_answers: Annotated[
        float, _opt("--lose-answers", "Share of creates stored but never answered.", **Rate)
    ] = 0.0,
    slow_answers: Annotated[
        float, _opt("--slow-answers", "Share of creates answered late.", **Rate)
    ] = 0.0,
    slow_seconds: Annotated[
        float, _opt("--slow-seconds", "Delay of a slow answer.", min=0.0)
    ] = 5.0,
    lost_landing_seconds: Annotated[
        float,
        _opt(
            "--lost-landing-seconds",
            "Seconds after its dropped answer a lost sync create is stored (0: before).",
            min=0.0,
        ),
    ] = 0.0,
    get_fail_500: Annotated[
        float, _opt("--get-fail-500", "Share of GETs answered 500.", **Rate)
    ] = 0.0,
    get_fail_429: Annotated[
        float, _opt("--get-fail-429", "Share of GETs answered 429.", **Rate)
    ] = 0.0,
    get_lose_answers: Annotated[
        float, _opt("--get-lose-answers", "Share of GETs never answered.", **Rate)
    ] = 0.0,
    async_write_seconds: Annotated[
        float,
        _opt("--async-write-seconds", "Seconds an async write stays RUNNING.", min=0.0),
    ] = 0.0,
    latency: Annotated[
        float, _opt("--latency", "Seconds added to every /v3 request.", min=0.0)
    ] = 0.0,
    platform: Annotated[
        PlatformName,
        _opt("--platform", "Platform profile behind every company: what it refuses and keeps."),
    ] = "lenient",
    jobs_order: Annotated[
        JobsOrder, _opt("--jobs-order", "Order a sync's jobs are listed in.")
    ] = "sent",
    sync_unreadable_seconds: Annotated[
        float,
        _opt("--sync-unreadable-seconds", "Seconds a new sync and its jobs answer 404.", min=0.0),
    ] = 0.0,
    repeat_cursor: Annotated[
        bool, _opt("--repeat-cursor", "Lists hand back the same next cursor forever.")
    ] = False,
    strict_schema: Annotated[
        bool, _opt("--strict-schema", "Refuse whole requests for rules RootFi does not state.")
    ] = False,
    seed: Annotated[int | None, _opt("--seed", "Seed of the fault dice.")] = None,
) -> None:
    """Run the local RootFi sandbox until interrupted."""
    faults = Faults(
        error_500_rate=fail_500,
        error_429_rate=fail_429,
        lost_answer_rate=lose_answers,
        slow_answer_rate=slow_answers,
        slow_answer_seconds=slow_seconds,
        lost_answer_landing_seconds=lost_landing_seconds,
        get_error_500_rate=get_fail_500,
        get_error_429_rate=get_fail_429,
        get_lost_answer_rate=get_lose_answers,
        async_write_seconds=async_write_seconds,
        latency_seconds=latency,
        platform=platform,
        jobs_order=jobs_order,
        sync_unreadable_seconds=sync_unreadable_seconds,
        repeat_cursor=repeat_cursor,
        strict_schema=strict_schema,
        seed=seed,
    )
    config = SandboxConfig(
        api_keys=frozenset(api_key or ["sandbox-key"]),
        company_ids=frozenset(company_id or [1089]),
        rate_limit_per_minute=rate_limit,
        async_delay_seconds=async_delay,
        db_path=db_path,
        faults=faults,
    )
    serve(config, host, port, on_ready=_announce(Console(soft_wrap=True), config))
