"""Exactly once under faults on every call: runs to converge, duplicates, lost.

    python -m bench.fault_run [--n 10000] [--mode single|batch] [--platform shopify]
                              [--jobs-order failures_first]

N valid customers (SQLite), the sandbox in this process with faults on every call: creates
get 10% 500s, 5% 429s, 10% lost answers whose records land `--landing` s later and 5% slow
answers (2.5 s, past the 2 s client timeout); GETs get 10% 500s, 5% 429s and 5% dropped
connections; async writes stay RUNNING `--async-write` s. `--platform` is the sandbox's
platform profile (`shopify` stores records in its own form: E.164 phones, ISO-2 countries,
lower-case emails) and `--jobs-order` the order a sync lists its jobs in. First two
overlapping runs (this process and a flow process) on `--lease`-second leases, then a run
whenever the ledger's next customer is due (real settle times), until nothing is pending (at
most `--max-runs`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    API_KEY,
    COMPANY_ID,
    LEDGER,
    ROOT,
    clean_env,
    ledger_rows,
    seed_source,
    write_record,
)

KEPT = ("picked", "synced", "adopted", "in_doubt", "retry_later", "lease_lost")


def faults(args: argparse.Namespace) -> Any:
    from rootfi_sandbox import Faults

    return Faults(
        error_500_rate=0.10,
        error_429_rate=0.05,
        lost_answer_rate=0.10,
        lost_answer_landing_seconds=args.landing,
        slow_answer_rate=0.05,
        slow_answer_seconds=2.5,
        get_error_500_rate=0.10,
        get_error_429_rate=0.05,
        get_lost_answer_rate=0.05,
        async_write_seconds=args.async_write,
        platform=args.platform,
        jobs_order=args.jobs_order,
        seed=args.seed,
    )


def settings_env(args: argparse.Namespace, url: str, api_url: str) -> dict[str, str]:
    return {
        "SOURCE_DATABASE_URL": url,
        "ROOTFI_BASE_URL": api_url,
        "ROOTFI_API_KEY": API_KEY,
        "ROOTFI_COMPANY_ID": str(COMPANY_ID),
        "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
        "ROOTFI_CONCURRENCY": "8",
        "ROOTFI_TIMEOUT_SECONDS": "2",
        "ROOTFI_RETRY_DELAY_SECONDS": "0.2",
        "ROOTFI_REQUEUE_DELAY_SECONDS": "0",
        "ROOTFI_RECONCILE_SKEW_SECONDS": "10",
        "ROOTFI_WRITE_MODE": args.mode,
        "ROOTFI_SYNC_SETTLE_SECONDS": str(args.settle),
        "ROOTFI_ASYNC_SETTLE_SECONDS": str(args.settle),
        "ROOTFI_SYNC_POLL_SECONDS": "1",
        "ROOTFI_POLL_TIMEOUT_SECONDS": "5",
        "ROOTFI_LEASE_SECONDS": str(args.lease),
        "ROOTFI_MAX_ATTEMPTS": "20",
    }


def wait_until_due(url: str) -> bool:
    """Sleep until the ledger's next unsettled customer is due; False when none is left."""
    query = sa.text(
        f"SELECT min(coalesce(next_attempt_at, lease_expires_at)) FROM {LEDGER} "
        "WHERE status NOT IN ('SYNCED', 'FAILED')"
    )
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        due = conn.execute(query).scalar()
    engine.dispose()
    if due is None:
        return False
    due = datetime.fromisoformat(str(due)).replace(tzinfo=UTC)  # naive UTC in SQLite
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.2)
    return True


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness
    from rootfi_sandbox import SandboxConfig, SandboxServer

    from flows.sync_customers import sync_customers

    url = f"sqlite:///{home / 'source.db'}"
    seed_source(url, args.n, bad_share=0.0)
    config = SandboxConfig(
        api_keys=frozenset({API_KEY}), company_ids=frozenset({COMPANY_ID}), faults=faults(args)
    )
    with SandboxServer(config) as sandbox, prefect_test_harness(server_startup_timeout=120):
        os.environ.update(settings_env(args, url, sandbox.api_url))
        rival = subprocess.Popen(
            [sys.executable, "-m", "bench.common", str(home / "rival.json")],
            cwd=ROOT,
            env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        )
        started, runs, converged = time.monotonic(), [], False
        for _ in range(args.max_runs):
            counts = sync_customers()
            runs.append({k: counts[k] for k in KEPT})
            if len(runs) == 1:
                rival.wait()
            if not wait_until_due(url):
                converged = True  # nothing left pending
                break
        stored = Counter(c["email"] for c in sandbox.admin.customers(COMPANY_ID))
        creates = sandbox.admin.state()["requests"]
    rival_counts = json.loads((home / "rival.json").read_text())["counts"] or {}
    return {
        "customers": args.n,
        "mode": args.mode,
        "platform": args.platform,
        "jobs_order": args.jobs_order,
        "settle_seconds": args.settle,
        "lease_seconds": args.lease,
        "converged": converged,
        "runs_made": len(runs),
        # None when --max-runs ran out with customers still pending
        "runs_to_converge": len(runs) if converged else None,
        "runs": runs,
        "rival_run": {k: rival_counts.get(k) for k in KEPT},
        "seconds": round(time.monotonic() - started, 1),
        "ledger": dict(Counter(status for status, _ in ledger_rows(url))),
        "in_rootfi": sum(stored.values()),
        "duplicates": sum(n - 1 for n in stored.values() if n > 1),
        "refused": len(refused := refused_ids(url)),
        # neither in RootFi nor refused by it (a refusal is the platform's word, not a loss)
        "lost": len(unaccounted(url, stored, refused)),
        "requests": creates,
    }


def refused_ids(url: str) -> set[str]:
    """The customers RootFi or its platform refused (FAILED, neither parked nor given up on in
    doubt): the platform profile's rules, not a loss."""
    query = sa.text(
        f"SELECT customer_id FROM {LEDGER} WHERE company_id = :c AND status = 'FAILED' "
        "AND last_error LIKE '%refused%' AND last_error NOT LIKE '%gave up after%' "
        "AND last_error NOT LIKE '%in doubt%'"
    )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {str(cid) for cid in conn.execute(query, {"c": COMPANY_ID}).scalars()}
    finally:
        engine.dispose()


def unaccounted(url: str, stored: Counter[str], refused: set[str]) -> list[str]:
    """The source's customers neither in RootFi (by email, case-folded: platforms lower-case
    it) nor refused: each counted once, whatever else holds."""
    in_rootfi = {email.casefold() for email in stored}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, email FROM customers")).all()
    finally:
        engine.dispose()
    return [
        str(cid)
        for cid, email in rows
        if str(email or "").casefold() not in in_rootfi and str(cid) not in refused
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fault_run", description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--mode", choices=["single", "batch"], default="single")
    parser.add_argument("--max-runs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--settle", type=float, default=6.0, help="settle seconds (both modes)")
    parser.add_argument("--landing", type=float, default=3.0, help="late landing seconds")
    parser.add_argument("--async-write", type=float, default=1.0, help="async write seconds")
    parser.add_argument("--lease", type=float, default=5.0, help="lease seconds")
    parser.add_argument("--platform", default="lenient", help="the sandbox's platform profile")
    parser.add_argument("--jobs-order", default="sent", help="sent, failures_first, shuffled…")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-fault-run-"))
    env = clean_env()  # no developer's Prefect, RootFi, source or ledger settings
    os.environ.clear()
    os.environ.update(env)
    os.environ.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    r = run(args, home)
    by = r["requests"].get("by_status", {})
    print(
        "| mode | platform, jobs | N | runs to converge (+ the rival) | seconds | 500 / 429 | "
        "in RootFi | refused | duplicates | lost | ledger |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    runs = (
        f"{r['runs_made']} + 1"
        if r["converged"]
        else f"NOT converged: {r['runs_made']} + 1 runs, --max-runs {args.max_runs} ran out"
    )
    print(
        f"| {r['mode']} | {r['platform']}, {r['jobs_order']} | {r['customers']:,} | {runs} | "
        f"{r['seconds']} | "
        f"{by.get('500', 0):,} / {by.get('429', 0):,} | {r['in_rootfi']:,} | {r['refused']} | "
        f"{r['duplicates']} | {r['lost']} | {r['ledger']} |"
    )
    if not r["converged"]:
        print(f"\nNot converged: customers still pending after --max-runs {args.max_runs}.")
    print(f"\n(written to {write_record('fault_run', r)})")


if __name__ == "__main__":
    main()
