"""What a fan-out tick takes when the key's budget is short: the costs, the write mode, the
order and the shares (rootfi_sync.run.budget, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rootfi_sync.ledger.due import Due
from rootfi_sync.run.budget import (
    Costs,
    TickPlan,
    async_polls,
    choose_mode,
    plan_tick,
    tick_budget,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def due(company: int, new: int, minutes_ago: int | None, waiting: int = 0) -> Due:
    oldest = None if minutes_ago is None else T0 - timedelta(minutes=minutes_ago)
    return Due(company, new=new, waiting=waiting, oldest=oldest)


def taken(plan: TickPlan) -> list[tuple[int, int, str]]:
    return [(s.company_id, s.customers, s.mode) for s in plan.taken]


@pytest.mark.parametrize(
    ("seconds", "polls"),
    [(0.0, 1), (0.2, 2), (0.25, 2), (1.0, 4), (10.0, 9), (60.0, 19)],
)
def test_an_async_write_costs_the_polls_of_the_delivery_s_schedule(
    seconds: float, polls: int
) -> None:
    assert async_polls(seconds) == polls


def test_an_async_write_costs_its_post_its_polls_and_one_page_of_the_customers_list() -> None:
    costs = Costs(batch_size=100)
    assert costs.write == 11
    assert costs.of(100, "batch") == 11 and costs.of(101, "batch") == 22
    assert costs.of(7, "single") == 7
    assert costs.most(21, "batch") == 100 and costs.most(22, "batch") == 200
    assert costs.most(10, "batch") == 0 and costs.most(10, "single") == 10


@pytest.mark.parametrize(
    ("customers", "batch_size", "mode"),
    [
        (1, 100, "single"),
        (11, 100, "single"),  # 11 creates = one async write: no saving
        (12, 100, "batch"),  # the threshold at the defaults
        (100, 100, "batch"),
        (5000, 1000, "batch"),
        (12, 5, "single"),  # three writes of 5: 33 requests
        (60, 5, "single"),  # twelve writes: 132
        (12, 11, "single"),  # two writes: 22
        (23, 11, "single"),  # three writes of 11: 33 requests for 23 creates
        (1000, 50, "batch"),  # twenty writes: 220
    ],
)
def test_batch_mode_is_chosen_when_its_async_writes_cost_fewer_requests_than_one_create_each(
    customers: int, batch_size: int, mode: str
) -> None:
    costs = Costs(batch_size=batch_size)
    expected = "batch" if costs.of(customers, "batch") < customers else "single"
    assert choose_mode(customers, costs) == expected == mode


@pytest.mark.parametrize(
    ("per_minute", "seconds", "spent", "budget"),
    [
        (100, 840, 1, 1259),  # the all-companies deployment: 14 minutes, less 10 %, less 1
        (100, 900, 0, 1350),
        (60, 6, 1, 4),
        (1, 60, 5, 0),  # never below nothing
        (0, 900, 1, None),  # no limit
    ],
)
def test_the_budget_is_the_rate_over_the_seconds_less_a_margin_and_what_the_tick_spent(
    per_minute: int, seconds: float, spent: int, budget: int | None
) -> None:
    assert tick_budget(per_minute, seconds, spent) == budget


def test_the_oldest_work_goes_first_and_unknown_age_counts_as_oldest() -> None:
    work = [due(1, 1, 5), due(2, 1, 50), due(3, 1, None), due(4, 1, 500), due(5, 1, 1)]

    plan = plan_tick(work, 3, Costs(100))

    assert taken(plan) == [(3, 1, "single"), (4, 1, "single"), (2, 1, "single")]
    assert [s.company_id for s in plan.waiting] == [1, 5]
    assert plan.cost == 3 and plan.customers == 3 and plan.left == (2, 2)


def test_a_large_old_backlog_gets_its_fair_share_first_and_the_rest_of_the_budget_last() -> None:
    work = [due(1, 1000, 600), due(2, 5, 60), due(3, 5, 30), due(4, 30, 10)]

    plan = plan_tick(work, 40, Costs(100), "single")

    # fair share 10 each: 1 gets 10, 2 and 3 their 5, 4 gets 10; the 10 left go to 1 (oldest)
    assert taken(plan) == [(1, 20, "single"), (2, 5, "single"), (3, 5, "single"), (4, 10, "single")]
    assert plan.cost == 40 and plan.left == (2, 1000 - 20 + 30 - 10)


def test_a_share_too_small_for_an_async_write_is_sent_one_by_one_and_a_large_one_in_batches() -> (
    None
):
    work = [due(1, 500, 60), due(2, 500, 30)]

    plan = plan_tick(work, 30, Costs(100))

    # a fair share of 15 requests buys one async write of 100 (11 requests) or 15 creates;
    # the 8 left over buy no second write, and a share has one mode: they stay unspent
    assert taken(plan) == [(1, 100, "batch"), (2, 100, "batch")]
    assert plan.cost == 22


def test_without_a_limit_everything_is_taken_each_company_in_its_cheaper_mode() -> None:
    work = [due(1, 3, 5), due(2, 250, 6)]

    plan = plan_tick(work, None, Costs(100))

    assert taken(plan) == [(2, 250, "batch"), (1, 3, "single")]
    assert plan.cost == 33 + 3 and plan.waiting == [] and plan.left == (0, 0)


def test_a_mode_the_user_forced_is_kept_even_when_it_costs_more() -> None:
    work = [due(1, 3, 5), due(2, 250, 6)]

    assert taken(plan_tick(work, None, Costs(100), "batch")) == [(2, 250, "batch"), (1, 3, "batch")]
    assert taken(plan_tick(work, 20, Costs(100), "single")) == [(2, 17, "single"), (1, 3, "single")]


def test_customers_due_again_cost_a_lookup_page_more() -> None:
    plan = plan_tick([due(1, 0, 5, waiting=3)], 10, Costs(100))

    assert taken(plan) == [(1, 3, "single")] and plan.cost == 4


def test_no_budget_left_leaves_every_company_for_the_next_tick() -> None:
    plan = plan_tick([due(1, 3, 5), due(2, 1, 6)], 0, Costs(100))

    assert plan.taken == [] and plan.left == (2, 4) and plan.cost == 0


def test_over_ticks_no_company_starves_behind_a_company_whose_backlog_keeps_growing() -> None:
    """A simulation: company 1 has an old backlog and 40 new customers every tick, twenty small
    companies one customer each, a budget of 12 requests a tick. Each tick syncs the oldest
    customers of each company's share (a run takes its customers in key order, here their
    age), and the next tick plans again."""
    pending: dict[int, list[datetime]] = {1: [T0 - timedelta(hours=h) for h in range(300)]}
    pending |= {c: [T0 - timedelta(minutes=c)] for c in range(2, 22)}
    served: dict[int, int] = {}
    for tick in range(1, 11):
        now = T0 + timedelta(minutes=15 * tick)
        pending[1] += [now - timedelta(seconds=s) for s in range(40)]
        work = [Due(c, new=len(p), oldest=min(p)) for c, p in pending.items() if p]
        plan = plan_tick(work, 12, Costs(100), "single")
        assert sum(s.cost for s in plan.taken) <= 12
        for share in plan.taken:
            pending[share.company_id] = sorted(pending[share.company_id])[share.customers :]
            served.setdefault(share.company_id, tick)
    assert all(not pending[c] for c in range(2, 22))  # every small company was synced
    assert max(served.values()) <= 4  # within four ticks, though company 1 is always older
