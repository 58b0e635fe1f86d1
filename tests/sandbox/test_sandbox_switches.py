"""The sandbox's switches for what the RootFi docs leave open (jobs' order, a sync not yet
readable, a cursor that repeats), over real HTTP on 127.0.0.1, and their CLI options."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import typer
from rootfi_sandbox import Faults, SandboxConfig, SandboxServer
from rootfi_sandbox import command as sandbox_command_module
from typer.testing import CliRunner

from tests.sandbox.helpers import (
    CUSTOMERS,
    assert_error,
    create,
    customer,
    wait_for_sync,
)

REFUSED = "x@refused.example"


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    config = SandboxConfig(company_ids=frozenset({1089, 2002, 3003}), async_delay_seconds=0.02)
    with SandboxServer(config) as started:
        yield started


def job_names(client: httpx.Client, sync_id: str, limit: int = 2) -> list[str]:
    """The names of the sync's records in the order its jobs are listed, page by page."""
    jobs, params = [], {"limit": limit}
    for _ in range(20):
        page = client.get(f"/core/syncs/{sync_id}/jobs", params=params).json()
        jobs += page["data"]
        if page["next"] is None:
            break
        params = {"limit": limit, "next": page["next"]}
    # Jobs do not name their record: tell them apart by status and job id.
    return [f"{job['status']}#{job['rootfi_id']}" for job in jobs]


def written(client: httpx.Client, count: int) -> str:
    """An async write of `count` records, the second one refused; waits for it to end."""
    records = [customer(n) for n in range(count)]
    records[1] = customer(1, email=REFUSED)
    sync_id: str = create(client, *records, run_async=True).json()["sync_id"]
    wait_for_sync(client, sync_id)
    return sync_id


def test_jobs_are_listed_in_the_order_sent_by_default(client: httpx.Client) -> None:
    listed = job_names(client, written(client, 5))
    ids = [int(name.split("#")[1]) for name in listed]
    assert ids == sorted(ids) and listed[1].startswith("FAILED")


def test_jobs_order_reversed_lists_the_last_record_first(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    sync_id = written(client, 5)
    sent = job_names(client, sync_id)
    sandbox_server.admin.set_faults(jobs_order="reversed")
    assert job_names(client, sync_id) == sent[::-1]


def test_jobs_order_failures_first_lists_failed_jobs_before_the_rest(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    sync_id = written(client, 5)
    sent = job_names(client, sync_id)
    sandbox_server.admin.set_faults(jobs_order="failures_first")
    assert job_names(client, sync_id) == [sent[1], sent[0], *sent[2:]]


def test_jobs_order_shuffled_is_seeded_and_the_same_on_every_page(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    sync_id = written(client, 12)
    sent = job_names(client, sync_id)
    sandbox_server.admin.set_faults(jobs_order="shuffled", seed=3)
    shuffled = job_names(client, sync_id, limit=5)
    assert sorted(shuffled) == sorted(sent) and shuffled != sent
    assert job_names(client, sync_id, limit=12) == shuffled
    sandbox_server.admin.set_faults(seed=4)
    assert job_names(client, sync_id) != shuffled


def test_a_sync_answers_404_for_sync_unreadable_seconds_while_the_write_goes_on(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    sandbox_server.admin.set_faults(sync_unreadable_seconds=1.5)
    started = time.monotonic()
    sync_id = create(client, customer(1), customer(2), run_async=True).json()["sync_id"]
    single = create(client, customer(3)).json()["sync_id"]
    for path in (f"/core/syncs/{sync_id}", f"/core/syncs/{sync_id}/jobs", f"/core/syncs/{single}"):
        assert_error(client.get(path), 404, "SYNC_NOT_FOUND", "sync_id")
    while sandbox_server.admin.state()["customers"] < 3:
        time.sleep(0.02)
    assert time.monotonic() - started < 1.5, "the write waited for the sync to be readable"
    while client.get(f"/core/syncs/{sync_id}").status_code == 404:
        assert time.monotonic() - started < 5
        time.sleep(0.05)
    assert time.monotonic() - started >= 1.5
    assert wait_for_sync(client, sync_id)["success_count"] == 2
    assert len(client.get(f"/core/syncs/{sync_id}/jobs").json()["data"]) == 2


@pytest.mark.parametrize(
    "path", [CUSTOMERS, "/core/companies", "jobs"], ids=["customers", "companies", "jobs"]
)
def test_repeat_cursor_hands_back_the_same_next_cursor_forever(
    sandbox_server: SandboxServer, client: httpx.Client, path: str
) -> None:
    sync_id = create(client, *[customer(n) for n in range(3)], run_async=True).json()["sync_id"]
    wait_for_sync(client, sync_id)
    path = f"/core/syncs/{sync_id}/jobs" if path == "jobs" else path
    sandbox_server.admin.set_faults(repeat_cursor=True)
    first = client.get(path, params={"limit": 2}).json()["next"]
    cursors = [first]
    for _ in range(5):
        cursors.append(client.get(path, params={"limit": 2, "next": cursors[-1]}).json()["next"])
    assert first is not None and set(cursors) == {first}
    single_page = client.get(path, params={"limit": 100}).json()
    assert single_page["next"] is not None  # even a list of one page never ends


def test_the_command_reads_the_platform_and_the_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SandboxConfig] = []
    monkeypatch.setattr(
        sandbox_command_module, "serve", lambda config, *args, **kwargs: seen.append(config)
    )
    app = typer.Typer()
    app.command("sandbox")(sandbox_command_module.sandbox_command)
    app.command("other")(lambda: None)
    args = ["sandbox", "--platform", "shopify", "--jobs-order", "shuffled", "--repeat-cursor"]
    args.append("--strict-schema")
    env = {"ROOTFI_SANDBOX_SYNC_UNREADABLE_SECONDS": "2.5"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert seen[0].faults == Faults(
        platform="shopify",
        jobs_order="shuffled",
        sync_unreadable_seconds=2.5,
        repeat_cursor=True,
        strict_schema=True,
    )
    refused = CliRunner().invoke(app, ["sandbox", "--platform", "sap"])
    assert refused.exit_code != 0 and "--platform" in refused.output


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "N" * 256}, "name"),
        ({"currency_id": "usd"}, "currency_id"),
        ({"email": "a@b@example.com"}, "email"),
        ({"phone": "call me maybe"}, "phone"),
    ],
)
def test_strict_schema_refuses_the_whole_request_for_rules_rootfi_does_not_state(
    sandbox_server: SandboxServer, client: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    assert create(client, customer(1, **fields)).status_code == 200
    sandbox_server.admin.set_faults(strict_schema=True)
    response = create(client, customer(2), customer(3, **fields), run_async=True)
    assert_error(response, 400, "VALIDATION_ERROR", f"data[1].{field}")
    assert_error(create(client, customer(4, **fields)), 400, "VALIDATION_ERROR", f"data[0].{field}")
    assert sandbox_server.admin.state()["syncs"] == 1
