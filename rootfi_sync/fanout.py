"""What a fan-out over companies decides, apart from Prefect: which companies share a run, and
which of them the key reaches.

Grouping (`plan_groups`): a company whose due customers reach `max_customers` runs alone; the
others, in company order, fill runs of at most `max_companies` companies and `max_customers`
customers each, spread over at least `spread` runs (the fan-out's `max_concurrent`) when
there are that many: the companies of one run are synced one after the other, so a few small
companies are faster as parallel runs than as one. A tick of a thousand companies holding one
new customer each is twenty runs, not a thousand, and a company with a large backlog never
holds up a group of small ones.

Reach (`reachable`): one pass over `GET /v3/core/companies`, in pages of COMPANIES_PAGE, that
stops as soon as every company wanted has been seen.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rootfi_sync.client import RootFiClient
from rootfi_sync.ledger.due import Due

COMPANIES_PAGE = 1000
"""Companies per page of the companies list: 10,000 companies are ten requests."""

GROUP_COMPANIES = 50
"""Default most companies in one child run."""

GROUP_CUSTOMERS = 200
"""Default most due customers in one child run; a company with this many runs alone."""


def plan_groups(
    due: Sequence[Due], max_companies: int, max_customers: int, spread: int = 1
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


def reachable(client: RootFiClient, wanted: Collection[int]) -> tuple[set[int], int]:
    """Return which `wanted` companies the key reaches, and how many companies were read.

    Pages stop once every wanted company was seen: a company missing costs the whole list.
    """
    missing = {str(c) for c in wanted}
    found: set[int] = set()
    seen = 0
    if not missing:
        return found, seen
    for company in client.iter_companies(page_size=COMPANIES_PAGE):
        seen += 1
        rootfi_id = str(company.get("rootfi_id"))
        if rootfi_id in missing:
            missing.discard(rootfi_id)
            found.add(int(rootfi_id))
            if not missing:
                break
    return found, seen
