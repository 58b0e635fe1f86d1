"""The `rootfi-sync` command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

import typer
from rich.table import Table
from rich.text import Text

from rootfi_sync.cli.console import console, err, error, print_counts, run_flow
from rootfi_sync.cli.doctor.command import doctor_command
from rootfi_sync.errors import RootFiSyncError, SeedRefused, SettingsError, SourceTableError
from rootfi_sync.outcomes import CREATED_UNKNOWN, SOURCE_DELETED
from rootfi_sync.settings import Settings, load_settings

app = typer.Typer(
    help="Sync new customers from your SQL database into RootFi, exactly once, with Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
NO_SANDBOX = (
    "the sandbox is not installed here (it is the `sandbox` extra, left out of a worker's "
    "install): pip install 'rootfi-sync[sandbox]', or `make env` in the project"
)


def _no_sandbox() -> None:
    error(NO_SANDBOX)
    raise typer.Exit(2)


def _sandbox_command() -> Callable[..., None]:
    try:
        from rootfi_sandbox.command import sandbox_command
    except ImportError:
        return _no_sandbox
    return sandbox_command


app.command("sandbox", help="Run the local RootFi sandbox (the documented v3 API).")(
    _sandbox_command()
)
app.command("doctor")(doctor_command)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"rootfi-sync {version('rootfi-sync')} (prefect {version('prefect')})")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Sync new customers from your SQL database into RootFi, exactly once, with Prefect."""


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        error(exc)
        raise typer.Exit(2) from None


@app.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the ledger table; check (only read) the source table."""
    from rootfi_sync.ledger.db import init_db, safe_url

    settings = _settings()
    try:
        init_db(settings)
    except SourceTableError as exc:
        error(exc)
        raise typer.Exit(1) from None
    source = safe_url(settings.source_database_url)
    console.print(Text(f"source {settings.source_table!r} found in {source}"), soft_wrap=True)
    schema = settings.ledger_schema_name
    where = f" (schema {schema})" if schema else ""
    ledger = safe_url(settings.ledger_url)
    console.print(Text(f"ledger ready in {ledger}{where}"), soft_wrap=True)


@app.command()
def seed(
    count: Annotated[int, typer.Option(min=1, help="How many customers to add.")] = 100,
    bad_share: Annotated[float, typer.Option(min=0, max=1, help="Share of bad rows.")] = 0.05,
    seed_value: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    yes_into: Annotated[
        str | None,
        typer.Option(
            help="SOURCE_DATABASE_URL again: consent to fill any database but the demo's."
        ),
    ] = None,
) -> None:
    """Add realistic fake customers (a few of them invalid on purpose) to the source table."""
    _need_sandbox()
    from rootfi_sandbox.customers import fake_customers

    from rootfi_sync.cli.seed import seed_into

    settings = _settings()
    rows = fake_customers(count, seed=seed_value, bad_share=bad_share)
    try:
        n = seed_into(settings, rows, yes_into=yes_into)
    except SeedRefused as exc:
        error(exc)
        raise typer.Exit(2) from None
    console.print(f"added {n} customers to {settings.source_table!r}")


@app.command()
def run(
    company_id: Annotated[int | None, typer.Option(help="RootFi company id.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=1000)] = None,
    write_mode: Annotated[
        Literal["single", "batch"] | None, typer.Option(help="How to send [ROOTFI_WRITE_MODE]")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be sent; send nothing.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Pick at most this many.")] = None,
    customer: Annotated[
        list[str] | None, typer.Option(help="Sync only this customer id (any key type).")
    ] = None,
) -> None:
    """Run one sync now; exit 0 when the run completed, 1 when it could not."""
    _settings()
    counts = run_flow(
        company_id=company_id,
        batch_size=batch_size,
        write_mode=write_mode,
        dry_run=dry_run,
        limit=limit,
        customer_ids=customer or None,
    )
    print_counts(counts)


@app.command()
def status(
    company_id: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show how many customers are in each state, and the latest failures."""
    settings = _settings()
    company = settings.company(company_id, required=False)
    counts, failures, look = _read_ledger(settings, company)
    if as_json:
        rows = [{**f._asdict(), "updated_at": f.updated_at.isoformat()} for f in failures]
        need = [r._asdict() for r in look]
        typer.echo(
            json.dumps(
                {"company_id": company, "counts": counts, "latest_failures": rows, "look": need}
            )
        )
        return
    table = Table(title=f"ledger, company {company or 'all'}")
    table.add_column("status")
    table.add_column("customers", justify="right")
    for state, n in sorted(counts.items()):
        table.add_row(state, str(n))
    console.print(table)
    if failures:
        latest = Table(title="latest failures")
        for col in ("customer", "company", "attempts", "last error", "at"):
            latest.add_column(col)
        for f in failures:
            when = f"{f.updated_at:%Y-%m-%d %H:%M}"
            last = (f.last_error or "")[-200:]
            latest.add_row(
                Text(f.customer_id), str(f.company_id), str(f.attempts), Text(last), when
            )
        console.print(latest)
    if look:
        _print_look(look)


def _print_look(rows: list[Any]) -> None:
    """Print the customers to look at in RootFi: created with their id unknown (with the
    async write that created them), duplicates found (the records' ids), and those whose
    source row was deleted while in doubt and that RootFi has no record of."""
    table = Table(title="to look at in RootFi (never sent again)")
    for col in ("customer", "company", "what", "rootfi id", "sync id", "why"):
        table.add_column(col)
    for r in rows:
        what = {"CREATED_UNKNOWN": CREATED_UNKNOWN, "FAILED": SOURCE_DELETED}.get(
            r.status, "duplicate"
        )
        why = (r.last_error or "").splitlines()[-1][-200:] if r.last_error else ""
        table.add_row(
            Text(r.customer_id),
            str(r.company_id),
            what,
            Text(r.rootfi_id or ""),
            Text(r.sync_id or ""),
            Text(why),
        )
    console.print(table)


def _read_ledger(
    settings: Settings, company: int | None
) -> tuple[dict[str, int], list[Any], list[Any]]:
    """Return the ledger's counts per state, its latest failures and the customers to look
    at in RootFi; exit 1 if unreadable."""
    from sqlalchemy.exc import DBAPIError

    from rootfi_sync.ledger import latest_failures, needing_a_look, status_counts
    from rootfi_sync.ledger.db import ledger_engine

    engine = ledger_engine(settings)
    try:
        look = needing_a_look(engine, company)
        return status_counts(engine, company), latest_failures(engine, company), look
    except DBAPIError as exc:
        error(f"cannot read the ledger ({type(exc.orig).__name__}).")
        err.print(
            "Run `rootfi-sync init-db` first, and check LEDGER_DATABASE_URL (default: "
            "SOURCE_DATABASE_URL).",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@app.command()
def retry(
    customer: Annotated[list[str] | None, typer.Option(help="Re-drive this customer id.")] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Re-drive every FAILED.")
    ] = False,
    company_id: Annotated[int | None, typer.Option()] = None,
    now: Annotated[bool, typer.Option(help="Run a sync of them right away.")] = True,
) -> None:
    """Make parked FAILED customers eligible again (after you fixed the cause)."""
    from rootfi_sync.cli.redrive import redrive_failed
    from rootfi_sync.ledger.db import ledger_engine

    if not customer and not all_failed:
        error("give --customer ID (repeatable) or --all-failed")
        raise typer.Exit(2)
    settings = _settings()
    try:
        company = settings.company(company_id)
    except SettingsError as exc:
        error(exc)
        raise typer.Exit(2) from None
    engine = ledger_engine(settings)
    try:
        ids = redrive_failed(engine, company, None if all_failed else customer)
    finally:
        engine.dispose()
    console.print(f"{len(ids)} customer(s) will be sent again")
    if now and ids:  # only those: a re-driven customer is sent again, never from the cache
        print_counts(run_flow(company_id=company, customer_ids=ids))


@app.command()
def setup(
    work_pool: Annotated[str, typer.Option(help="Process work pool to create.")] = "rootfi-sync",
    rate_limit: Annotated[
        int | None,
        typer.Option(min=0, help="Requests a minute for the key [ROOTFI_RATE_LIMIT_PER_MINUTE]"),
    ] = None,
    notify: Annotated[
        str | None,
        typer.Option(help="Notification block (name, or type/name) the alerts send through."),
    ] = None,
    freshness_minutes: Annotated[
        float,
        typer.Option(min=0.5, help="Alert when no scheduled run completed in this long."),
    ] = 60,
) -> None:
    """Prepare the current Prefect server: work pool, Secret block with the key, rate limit,
    and with --notify the alerts (automations). Safe to run again: it updates in place."""
    from rootfi_sync.orchestration.prefect_setup import setup_prefect

    settings = _settings()
    per_minute = rate_limit if rate_limit is not None else settings.rootfi_rate_limit_per_minute
    try:
        lines = setup_prefect(
            work_pool=work_pool,
            api_key=settings.rootfi_api_key,
            rate_limit_per_minute=per_minute,
            rate_limit_name=settings.rootfi_rate_limit_name,
            notify=notify,
            freshness_minutes=freshness_minutes,
        )
    except SettingsError as exc:
        error(exc)
        raise typer.Exit(2) from None
    for line in lines:
        typer.echo(line)  # plain lines: no markup, no wrapping


@app.command()
def demo(
    count: Annotated[int, typer.Option(min=1, max=100_000)] = 60,
    folder: Annotated[
        str, typer.Option(help="Where the demo keeps its files (new, empty, or a demo's).")
    ] = ".rootfi-sync/demo",
) -> None:
    """Seed a SQLite database, start the sandbox, sync, and print what happened."""
    _need_sandbox()
    from rootfi_sync.cli.demo import run_demo

    try:
        run_demo(count=count, folder=folder, console=console)
    except (FileExistsError, NotADirectoryError) as exc:
        error(exc)
        raise typer.Exit(2) from None


def _need_sandbox() -> None:
    """Exit 2 saying how to install the sandbox when it is not (a worker's install)."""
    try:
        import rootfi_sandbox  # noqa: F401
    except ImportError:
        _no_sandbox()


def main() -> None:
    try:
        app()
    except RootFiSyncError as exc:
        error(exc)
        raise SystemExit(1) from None
