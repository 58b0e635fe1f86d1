"""`rootfi-sync demo`: a whole sync against the local sandbox, with nothing to configure."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rootfi_sandbox import SandboxConfig, SandboxServer

from rootfi_sync.seed import DEMO_MARKER

DEMO_KEY = "sandbox-demo-key"
DEMO_COMPANY = 1089
DEMO_FILES = frozenset({"demo.db", "demo.db-wal", "demo.db-shm", "demo.db-journal", DEMO_MARKER})
"""Everything the demo writes in its folder: the only files it ever deletes."""


def _configure(db_url: str, api_url: str) -> None:
    """Point this process's settings and Prefect at the demo's own parts."""
    os.environ.update(
        SOURCE_DATABASE_URL=db_url, ROOTFI_BASE_URL=api_url, ROOTFI_API_KEY=DEMO_KEY,
        ROOTFI_COMPANY_ID=str(DEMO_COMPANY), ROOTFI_RATE_LIMIT_PER_MINUTE="0",
    )  # fmt: skip
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A quiet console, yet every run's logs (INFO and up) in the Prefect UI.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    # The temporary Prefect server can take longer than its 20 s default on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


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
    from rootfi_sandbox.customers import fake_customers

    from rootfi_sync.seed import seed_into
    from rootfi_sync.settings import load_settings

    home = prepare_folder(Path(folder))
    (home / DEMO_MARKER).write_text("rootfi-sync demo: `rootfi-sync seed` may add customers here\n")
    db_url = f"sqlite:///{home / 'demo.db'}"
    config = SandboxConfig(api_keys=frozenset({DEMO_KEY}), company_ids=frozenset({DEMO_COMPANY}))
    with SandboxServer(config) as sandbox:
        _configure(db_url, sandbox.api_url)
        seed_into(load_settings(), fake_customers(count, bad_share=0.1), yes_into=db_url)
        console.print(f"[bold]1.[/] seeded {count} customers into {home / 'demo.db'}")
        console.print(f"[bold]2.[/] RootFi sandbox listening on {sandbox.url}")
        console.print("[bold]3.[/] running the sync-customers flow under Prefect…")
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


def _run(console: Console, *, quiet: bool = False) -> dict[str, object]:
    from rootfi_sync.cli import print_counts, run_flow

    with console.status("syncing…"):
        counts = run_flow()
    if not quiet:
        print_counts(counts)
    return counts
