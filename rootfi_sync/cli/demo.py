"""`rootfi-sync demo`: a whole sync against the local sandbox, with nothing to configure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console

from rootfi_sync.cli.console import print_counts, run_flow
from rootfi_sync.cli.seed import DEMO_MARKER, seed_into
from rootfi_sync.settings import Settings, settings_given, settings_of

DEMO_KEY = "sandbox-demo-key"
DEMO_COMPANY = 1089
DEMO_FILES = frozenset({"demo.db", "demo.db-wal", "demo.db-shm", "demo.db-journal", DEMO_MARKER})
"""Everything the demo writes in its folder: the only files it ever deletes."""


def _settings(db_url: str, api_url: str) -> Settings:
    """The demo's settings, as values: its own database, sandbox, key and company, and the
    defaults for everything else (nothing from the environment or `.env`)."""
    return settings_of(
        source_database_url=db_url,
        rootfi_base_url=api_url,
        rootfi_api_key=SecretStr(DEMO_KEY),
        rootfi_company_id=DEMO_COMPANY,
        rootfi_rate_limit_per_minute=0,
    )


@contextmanager
def _prefect_for_the_demo() -> Iterator[None]:
    """Prefect's temporary server for the demo, and a console that shows only
    Prefect's warnings from here to the end of this process (the server logs its stop at
    exit); every run's logs, INFO and up, still reach the Prefect UI."""
    import logging

    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    ensure_logging_setup()
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.WARNING)
    # The temporary server can take longer than its 20 s default on a busy machine.
    updates: dict[Any, Any] = {
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 90,
    }
    # Always Prefect's temporary server, never the user's (PREFECT_API_URL): their server's
    # Secret block would hand the demo their real RootFi key.
    with temporary_settings(updates=updates, restore_defaults={PREFECT_API_URL}):
        yield


def prepare_folder(folder: Path) -> Path:
    """Return the folder, emptied of an earlier demo's files; create it if it is missing.

    Raises FileExistsError for a folder holding anything the demo did not write (it is
    never touched), NotADirectoryError for a file.
    """
    home = folder.resolve()
    if home.exists() and not home.is_dir():
        raise NotADirectoryError(f"--folder {folder}: is a file, not a folder")
    if home.is_dir():
        foreign = sorted(p.name for p in home.iterdir() if p.name not in DEMO_FILES)
        if foreign:
            raise FileExistsError(
                f"--folder {folder}: already holds files the demo did not write "
                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "the demo deletes only its own files, so give a new or empty folder"
            )
        for name in DEMO_FILES:
            (home / name).unlink(missing_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    return home


def run_demo(*, count: int, folder: str, console: Console) -> None:
    """Seed `count` customers in a fresh SQLite file, sync them twice, print the outcome."""
    from rootfi_sandbox import SandboxConfig, SandboxServer
    from rootfi_sandbox.customers import fake_customers

    home = prepare_folder(Path(folder))
    (home / DEMO_MARKER).write_text("rootfi-sync demo: `rootfi-sync seed` may add customers here\n")
    db_url = f"sqlite:///{home / 'demo.db'}"
    config = SandboxConfig(api_keys=frozenset({DEMO_KEY}), company_ids=frozenset({DEMO_COMPANY}))
    with SandboxServer(config) as sandbox, _prefect_for_the_demo():
        settings = _settings(db_url, sandbox.api_url)
        seed_into(settings, fake_customers(count, bad_share=0.1), yes_into=db_url)
        console.print(f"[bold]1.[/] seeded {count} customers into {home / 'demo.db'}")
        console.print(f"[bold]2.[/] RootFi sandbox listening on {sandbox.url}")
        console.print("[bold]3.[/] running the sync-customers flow under Prefect…")
        with settings_given(settings):
            first = _run(console)
            console.print("[bold]4.[/] running it again: nothing new, so nothing is sent")
            second = _run(console, quiet=True)
        stored = sandbox.admin.state()["customers"]
    console.print(
        f"\nRootFi sandbox now holds [bold]{stored}[/] customers; the first run synced "
        f"{first['synced']}, the second sent {second['sent']}."
    )
    console.print(
        "Ledger: `SOURCE_DATABASE_URL=" + db_url + " rootfi-sync status --company-id 1089`\n"
        "Watch runs in the Prefect UI: `prefect server start`, open http://127.0.0.1:4200, "
        "and the demo's runs are under Flows → sync-customers."
    )


def _run(console: Console, *, quiet: bool = False) -> dict[str, Any]:
    with console.status("syncing…"):
        counts = run_flow()
    if not quiet:
        print_counts(counts)
    return counts
