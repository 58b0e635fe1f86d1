"""What a fan-out tick takes when the key's budget cannot cover all the work due: pure.

The budget (`tick_budget`): the key's requests a minute (ROOTFI_RATE_LIMIT_PER_MINUTE) times
the minutes until the next tick (the fan-out's time limit, else its 15-minute schedule), less
BUDGET_MARGIN for what the estimate leaves out (a customer in doubt looked up over more than
one page, an async write's jobs listed when records are missing, a retried 429 or 5xx), less
what the tick itself spent (the companies list). No limit (0) means no budget: all is taken.

The cost of a company's customers (`Costs`), as the code sends them today:
- `single`: one create each (POST, one record);
- `batch`: per async write of up to ROOTFI_BATCH_SIZE customers, the POST, the GETs of its
  sync until it ends (`async_polls`: the delivery's poll schedule over ASYNC_WRITE_SECONDS,
  how long a write is assumed to take), and one page of the customers list to find the
  records it made: 11 requests at the defaults. An upper bound: the delivery's first GET
  waits until the sync may have ended, and writes that end together share one listing
  (`rootfi_sync.rootfi.following`), so a write costs 2.4-3.5 requests against the sandbox;
- a company with ledger rows due again (a retry, a lookup) is counted one page of the
  customers list more (LOOKUP), for the lookup of those in doubt.

The write mode (`choose_mode`): `batch` when the async writes cost fewer requests than one
create each, i.e. at the defaults (11 requests a write, batches of 100) from 12 customers on;
else `single`. A mode the user set (ROOTFI_WRITE_MODE, or the fan-out's `write_mode`) is
kept: `plan_tick` is then given it.

The order and the shares (`plan_tick`): companies by how long their oldest work has waited
(`Due.oldest`; unknown first, then oldest, then by id). First pass: each in turn gets at most
its fair share of the budget (the budget over the companies due, at least one request), as
many customers as that pays for, in its mode. Second pass, with what is left, in the same
order: those not yet taken whole get more, up to all their customers. A company's share is
its run's `limit`, so a large backlog cannot eat the tick. What no share covers waits for the
next tick, where it is older than the work that arrived since: it goes first then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from rootfi_sync.ledger.due import Due
from rootfi_sync.rootfi.delivery import POLL_FIRST, POLL_GROWTH, POLL_MAX

WriteMode = Literal["single", "batch"]

BUDGET_MARGIN = 0.1
"""Share of the budget kept back for what the estimate leaves out."""

TICK_SECONDS = 15 * 60
"""Seconds between two ticks of the all-companies schedule."""

ASYNC_WRITE_SECONDS = 10.0
"""How long an async write is assumed to take to end (RootFi writing to the platform)."""

LOOKUP = 1
"""Requests a company with ledger rows due again costs besides its writes: one page of the
customers list to look up those in doubt."""

_EARLIEST = datetime.min.replace(tzinfo=UTC)


def async_polls(seconds: float = ASYNC_WRITE_SECONDS) -> int:
    """Return how many GETs of its sync an async write that ends after `seconds` costs, on
    the delivery's poll schedule (one at once, then after POLL_FIRST, growing by POLL_GROWTH
    up to POLL_MAX): 9 for 10 s."""
    polls, waited, delay = 1, 0.0, POLL_FIRST
    while waited < seconds:
        waited += delay
        polls += 1
        delay = min(delay * POLL_GROWTH, POLL_MAX)
    return polls


def tick_budget(per_minute: int, seconds: float, spent: int = 0) -> int | None:
    """Return the requests a tick may plan for over `seconds` at `per_minute`, less
    BUDGET_MARGIN and what it `spent` already; None when there is no limit (0)."""
    if per_minute <= 0:
        return None
    return max(0, math.floor(per_minute * seconds / 60 * (1 - BUDGET_MARGIN)) - spent)


@dataclass(frozen=True, slots=True)
class Costs:
    """What customers cost in requests, per write mode, at a batch size."""

    batch_size: int
    write: int = field(default_factory=lambda: 1 + async_polls() + 1)
    """Requests of one async write: its POST, its polls, one page of the customers list."""

    def of(self, customers: int, mode: WriteMode) -> int:
        """Return the requests `customers` cost in `mode`."""
        if mode == "single":
            return customers
        return math.ceil(customers / self.batch_size) * self.write

    def most(self, requests: int, mode: WriteMode) -> int:
        """Return how many customers `requests` pay for in `mode`."""
        if mode == "single":
            return max(0, requests)
        return max(0, requests // self.write) * self.batch_size


def choose_mode(customers: int, costs: Costs) -> WriteMode:
    """Return `batch` when `customers` cost fewer requests in async writes than one create
    each, else `single`."""
    return "batch" if costs.of(customers, "batch") < customers else "single"


@dataclass(frozen=True, slots=True)
class Share:
    """One company's part of a tick: how many of its due customers its run takes (its
    `limit`), in which write mode, at what estimated cost in requests."""

    company_id: int
    customers: int
    mode: WriteMode
    cost: int
    due: int
    oldest: datetime | None = None

    @property
    def left(self) -> int:
        """Return the due customers this tick leaves for the next."""
        return self.due - self.customers


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What a tick takes (`taken`, oldest first) and leaves, against its `budget` (None: no
    limit)."""

    budget: int | None
    taken: list[Share]
    waiting: list[Share]
    """Companies given nothing this tick (customers 0), oldest first."""

    @property
    def cost(self) -> int:
        """Return the estimated requests of what is taken."""
        return sum(s.cost for s in self.taken)

    @property
    def customers(self) -> int:
        """Return the customers taken."""
        return sum(s.customers for s in self.taken)

    @property
    def left(self) -> tuple[int, int]:
        """Return the companies with customers left for the next tick, and those customers."""
        shares = [s for s in [*self.taken, *self.waiting] if s.left]
        return len(shares), sum(s.left for s in shares)


def oldest_first(due: Sequence[Due]) -> list[Due]:
    """Return the companies by how long their oldest work has waited: unknown, then oldest,
    then by id."""
    return sorted(due, key=lambda d: (d.oldest is not None, d.oldest or _EARLIEST, d.company_id))


def plan_tick(
    due: Sequence[Due], budget: int | None, costs: Costs, mode: WriteMode | None = None
) -> TickPlan:
    """Return what a tick takes of `due` within `budget` requests (None: all of it), oldest
    first, each company in `mode` or, when None, in the mode that costs least (`choose_mode`)."""
    order = oldest_first(due)
    if budget is None:
        return TickPlan(None, [_afford(d, None, costs, mode) for d in order], [])
    left, shares = budget, []
    fair = max(1, budget // max(1, len(order)))
    for d in order:  # first pass: at most a fair share each
        shares.append(_afford(d, min(fair, left), costs, mode))
        left -= shares[-1].cost
    for i, d in enumerate(order):  # second pass: what is left, oldest first
        if shares[i].left and left > 0:
            more = _afford(d, shares[i].cost + left, costs, mode)
            left -= more.cost - shares[i].cost
            shares[i] = more
    taken = [s for s in shares if s.customers]
    return TickPlan(budget, taken, [s for s in shares if not s.customers])


def plan_unmeasured(due: Sequence[Due], mode: WriteMode) -> TickPlan:
    """Return a tick that takes every company whole, in `mode`, at no estimated cost: what a
    tick does when it cannot count the work due (no SOURCE_COMPANY_COLUMN: its `Due` rows
    say 0 customers)."""
    return TickPlan(None, [Share(d.company_id, 0, mode, 0, 0, d.oldest) for d in due], [])


def _afford(due: Due, requests: int | None, costs: Costs, mode: WriteMode | None) -> Share:
    """Return the company's share that `requests` pay for (None: all its customers): the
    most customers, and of those the cheapest mode (of `mode` alone, when given)."""
    extra = LOOKUP if due.waiting else 0
    best = Share(due.company_id, 0, mode or "single", 0, due.customers, due.oldest)
    modes: list[WriteMode] = [mode] if mode else ["single", "batch"]
    for each in modes:
        wanted = due.customers
        if requests is not None:
            wanted = min(wanted, costs.most(requests - extra, each))
        if wanted <= 0:
            continue
        share = replace(best, customers=wanted, mode=each, cost=costs.of(wanted, each) + extra)
        if (share.customers, -share.cost) > (best.customers, -best.cost):
            best = share
    return best
