"""`rootfi-sync doctor`: everything a run depends on, checked at once, read-only.

Each check gives one `Check`: ok, failed (with the command or setting that fixes it), a
warning (runs work, but something a deployment needs is missing: no Prefect server) or
skipped (another check failed first, or has nothing to check). Nothing is sent to RootFi
but `GET /v3/core/companies`, nothing is written to the databases (SQLite and DuckDB files
are opened read-only) or to Prefect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from rootfi_sync.errors import SettingsError
from rootfi_sync.settings import load_settings

Status = Literal["ok", "warn", "fail", "skip"]
DATABASE = ("source table", "source columns", "ledger")
ROOTFI = ("rootfi key", "rootfi company")
PREFECT = ("prefect api", "work pool", "secret block", "rate limit")
ORDER = ("settings", *DATABASE, *ROOTFI, *PREFECT)


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome; `fix` says what to run or set when it failed or warns."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        """The check as one line of text."""
        fix = f" -> fix: {self.fix}" if self.fix else ""
        return f"{self.status.upper():<4} {self.name}: {self.detail}{fix}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def skipped(names: tuple[str, ...], why: str) -> list[Check]:
    """Checks that were not run: an earlier one failed, or there is nothing to check."""
    return [Check(name, "skip", f"not checked: {why}") for name in names]


def run_checks(work_pool: str = "rootfi-sync") -> list[Check]:
    """Run every check, in `ORDER`; the settings first, since the others read them."""
    from rootfi_sync.cli.doctor.database import check_database
    from rootfi_sync.cli.doctor.services import check_prefect, check_rootfi

    try:
        settings = load_settings()
    except SettingsError as exc:
        detail = str(exc).replace("\n  ", " ")
        fix = "correct the variables named (environment or .env)"
        return [Check("settings", "fail", detail, fix), *skipped(ORDER[1:], "settings do not load")]
    checks = [Check("settings", "ok", "loaded (environment and .env)")]
    checks += check_database(settings)
    prefect_checks, key = check_prefect(settings, work_pool)
    checks += check_rootfi(settings, key)
    checks += prefect_checks
    return sorted(checks, key=lambda c: ORDER.index(c.name))
