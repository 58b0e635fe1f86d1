"""Two concurrent runs against a sandbox limited to `--budget` requests a minute, one budget.

    python -m bench.rate_governor [--budget 600] [--window 60]

Starts a Prefect server, `setup_prefect` (the `rootfi-api` global rate limit), a sandbox with
the same per-key limit, and two flow runs of the same company (each in its own process, as
two workers would run them). Counts the sandbox's requests over one window from the first
request on; prints the share of the budget used and the 429s as a Markdown table row and
writes them to bench/out/<time>-rate_governor.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rootfi_sandbox.adminclient import SandboxAdmin

from bench.common import (
    API_KEY,
    COMPANY_ID,
    Children,
    OthersCpu,
    clean_env,
    seed_source,
    start_prefect,
    start_sandbox,
    wait_until,
    write_record,
)


def measure(args: argparse.Namespace, work: Path, children: Children) -> dict[str, Any]:
    _, api = start_prefect(children, work)
    os.environ["PREFECT_API_URL"] = api
    from rootfi_sync.orchestration.prefect_setup import setup_prefect

    setup_prefect(work_pool="rootfi-sync", api_key=None, rate_limit_per_minute=args.budget)
    url = f"sqlite:///{work / 'source.db'}"
    seed_source(url, args.budget * 3, bad_share=0.0)  # more than two runs send in the window
    _, sandbox = start_sandbox(children, work, latency=0.01, rate_limit=args.budget)
    env = clean_env() | {
        "PREFECT_API_URL": api,
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "SOURCE_DATABASE_URL": url,
        "ROOTFI_BASE_URL": f"{sandbox}/v3",
        "ROOTFI_API_KEY": API_KEY,
        "ROOTFI_COMPANY_ID": str(COMPANY_ID),
        "ROOTFI_BATCH_SIZE": "50",
        "ROOTFI_RATE_LIMIT_PER_MINUTE": str(args.budget),
        "ROOTFI_CONCURRENCY": "4",
    }
    runs = [
        children.start(
            [sys.executable, "-m", "flows.sync_customers"], env=env, log=work / f"run{i}.log"
        )
        for i in (1, 2)
    ]
    state = SandboxAdmin(sandbox, timeout=5).state
    wait_until(lambda: state()["requests"]["total"] > 0, 120, "first request")
    start, first, others = time.monotonic(), state()["requests"]["total"], OthersCpu(children)
    time.sleep(args.window)
    end = state()
    used = end["requests"]["total"] - first + 1
    return {
        "budget_per_minute": args.budget,
        "window_seconds": args.window,
        "measured_seconds": round(time.monotonic() - start, 1),
        "requests_in_window": used,
        "share_of_budget": round(used / (args.budget * args.window / 60), 3),
        "http_429": end["requests"]["by_status"].get("429", 0),
        "both_runs_still_running_at_end": all(r.poll() is None for r in runs),
        "others_cpu": round(others.share(), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_governor", description=__doc__)
    parser.add_argument("--budget", type=int, default=600)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    children = Children()
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as work:
        try:
            r = measure(args, Path(work), children)
        finally:
            children.stop_all()
    print(
        "| budget a minute | requests in the window | share | 429s | both runs still "
        "running | others' CPU |\n|---|---|---|---|---|---|"
    )
    cells = (
        r["budget_per_minute"],
        r["requests_in_window"],
        f"{r['share_of_budget']:.0%}",
        r["http_429"],
        r["both_runs_still_running_at_end"],
        f"{r['others_cpu']:.0%}",
    )
    print("| " + " | ".join(str(c) for c in cells) + " |")
    print(f"\n(written to {write_record('rate_governor', r)})")


if __name__ == "__main__":
    main()
