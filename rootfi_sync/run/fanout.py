"""What a fan-out over companies decides, apart from Prefect: which companies share a run, and
which of them the key reaches.

Grouping (`plan_groups`): a company whose due customers reach `max_customers` runs alone; the
others, in company order, fill runs of at most `max_companies` companies and `max_customers`
customers each, spread over at least `spread` runs (the fan-out's `max_concurrent`) when
there are that many: the companies of one run are synced one after the other, so a few small
companies are faster as parallel runs than as one. A tick of a thousand companies holding one
new customer each is twenty runs, not a thousand, and a company with a large backlog never
holds up a group of small ones.

Rows (`group_row`): how each company of a group run ended, published as the table artifact
GROUP_ARTIFACT_KEY and gathered by the fan-out; `raise_if_failed` fails a run naming those that
did not complete.

Reach (`reachable`): one pass over `GET /v3/core/companies`, in pages of COMPANIES_PAGE, that
stops as soon as every company wanted has been seen: the fan-out asks it of every company due,
a run (`tasks.load.check_access`) of its one company. `not_reached` is what both say of a
company the key does not reach.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from rootfi_sync import errors
from rootfi_sync.rootfi.client import RootFiClient

COMPANIES_PAGE = 1000
"""Companies per page of the companies list: 10,000 companies are ten requests."""

GROUP_COMPANIES = 50
"""Default most companies in one child run."""

GROUP_CUSTOMERS = 200
"""Default most due customers in one child run; a company with this many runs alone."""

GROUP_ARTIFACT_KEY = "rootfi-sync-companies"
"""The table artifact of a run of several companies (`company_ids`): one row each."""

NAMED_MAX = 20
"""Most failed companies a CompanyRunsFailed names (the table artifact lists them all)."""


class Work(Protocol):
    """A company's work for a run: a `Due`, or the `rootfi_sync.budget.Share` a tick took."""

    @property
    def company_id(self) -> int: ...

    @property
    def customers(self) -> int: ...


def plan_groups(
    due: Sequence[Work], max_companies: int, max_customers: int, spread: int = 1
) -> list[list[int]]:
    """Return the companies of each child run: large ones alone, the rest packed in order,
    into at least `spread` runs where there are that many small companies (so that runs in
    parallel share the work), and never more than `max_companies` companies a run."""
    small = sorted((d for d in due if d.customers < max_customers), key=lambda d: d.company_id)
    per_run = min(max_companies, max(1, -(-len(small) // max(spread, 1))))
    large = sorted(d.company_id for d in due if d.customers >= max_customers)
    groups = [[company] for company in large]
    group: list[int] = []
    size = 0
    for work in small:
        if group and (len(group) == per_run or size + work.customers > max_customers):
            groups.append(group)
            group, size = [], 0
        group.append(work.company_id)
        size += work.customers
    if group:
        groups.append(group)
    return groups


def reachable(client: RootFiClient, wanted: Collection[int]) -> set[int]:
    """Return which `wanted` companies the key reaches; raise SettingsError when RootFi
    refuses the key.

    Pages stop once every wanted company was seen: a company missing costs the whole list.
    """
    missing = {str(c) for c in wanted}
    found: set[int] = set()
    if not missing:
        return found
    try:
        for company in client.iter_companies(page_size=COMPANIES_PAGE):
            rootfi_id = str(company.get("rootfi_id"))
            if rootfi_id in missing:
                missing.discard(rootfi_id)
                found.add(int(rootfi_id))
                if not missing:
                    break
    except errors.AuthError as exc:
        raise errors.SettingsError(f"ROOTFI_API_KEY was refused by RootFi: {exc}") from None
    return found


def not_reached(company_id: int, configured: int | None = None) -> str:
    """Return the message for a company the key does not reach: it names ROOTFI_COMPANY_ID
    only when the company is that setting's (`configured`), not one of a source's companies
    (SOURCE_COMPANY_COLUMN) or a run's `company_id`."""
    who = f"ROOTFI_COMPANY_ID {company_id}" if company_id == configured else f"company {company_id}"
    return (
        f"{who} is not among the companies this key can reach (GET /v3/core/companies lists them)"
    )


def group_row(
    company: int, completed: bool, message: str, counts: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return one company's row of a group run: how it ended, and what it picked and synced."""
    counts = counts or {}
    return {
        "company_id": company,
        "state": "Completed" if completed else "Failed",
        "completed": completed,
        "picked": counts.get("picked", 0),
        "synced": counts.get("synced", 0),
        "failed": counts.get("failed", 0),
        "message": message[:300],
    }


def raise_if_failed(rows: Sequence[dict[str, Any]], artifact_key: str) -> None:
    """Raise CompanyRunsFailed naming the companies whose row (`group_row`) did not complete,
    each with its state and the start of its message, and the table artifact of them all."""
    failed = [row for row in rows if not row["completed"]]
    if not failed:
        return
    named = ", ".join(map(_named, failed[:NAMED_MAX]))
    if len(failed) > NAMED_MAX:
        named += f" and {len(failed) - NAMED_MAX} more"
    raise errors.CompanyRunsFailed(
        f"{len(failed)} of {len(rows)} companies did not complete: {named}; "
        f"see the table artifact {artifact_key}"
    )


def _named(row: dict[str, Any]) -> str:
    why = f"{row['state']}: {row['message'][:120]}" if row["message"] else row["state"]
    return f"{row['company_id']} ({why})"
