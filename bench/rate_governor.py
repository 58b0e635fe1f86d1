"""Two concurrent runs against a sandbox limited to 600 requests a minute, sharing one budget.

    uv run python -m bench.rate_governor [--budget 600] [--window 60] [--out bench/out]

Starts a Prefect server, `rootfi-sync setup` (the `rootfi-api` global rate limit), a sandbox
with the same per-key limit, and two flow runs of the same company (each in its own process,
as two workers would run them). It samples the sandbox's request counter for one window
from the first request on, and prints the share of the budget used and the 429s seen; the
same JSON, with the git commit of this tree and whether it had uncommitted changes, goes to
--out/<timestamp>-rate_governor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rootfi_sandbox.adminclient import SandboxAdmin

from bench.procs import Children, start_prefect_server, start_sandbox, wait_until, write_result
from bench.source import make_rows, seed

BENCH = Path(__file__).resolve().parent

KEY, COMPANY = "bench-rate-key", 1089


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=600)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=BENCH / "out",
                        help="directory for the JSON result")  # fmt: skip
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rootfi-rate-bench-"))
    children = Children()
    try:
        result = measure(args, work, children)
    finally:
        children.stop_all()
    print(json.dumps(result, indent=2))
    print(f"written to {write_result(args.out, 'rate_governor', result, BENCH.parent)}")


def measure(args: argparse.Namespace, work: Path, children: Children) -> dict[str, object]:
    prefect = str(Path(sys.executable).with_name("prefect"))
    _, api = start_prefect_server(children, prefect, home=work / "prefect", env=os.environ,
                                  log=work / "prefect.log")  # fmt: skip
    os.environ["PREFECT_API_URL"] = api
    from rootfi_sync.prefect_setup import setup_prefect

    setup_prefect(work_pool="rootfi-sync", api_key=None, rate_limit_per_minute=args.budget)
    url = f"sqlite:///{work / 'source.db'}"
    seed(url, make_rows(args.budget * 3))  # more than two runs can send in the window
    _, sandbox = start_sandbox(children, sys.executable, latency=0.01, api_key=KEY,
                               company_id=COMPANY, env=os.environ, log=work / "sandbox.log",
                               rate_limit=args.budget)  # fmt: skip
    env = {**os.environ, "SOURCE_DATABASE_URL": url, "ROOTFI_BASE_URL": f"{sandbox}/v3",
           "ROOTFI_API_KEY": KEY, "ROOTFI_COMPANY_ID": str(COMPANY), "ROOTFI_BATCH_SIZE": "50",
           "ROOTFI_RATE_LIMIT_PER_MINUTE": str(args.budget), "ROOTFI_CONCURRENCY": "4",
           "PREFECT_LOGGING_LEVEL": "WARNING"}  # fmt: skip
    runs = [children.start([sys.executable, "-m", "flows.sync_customers"], env=env,
                           log=work / f"run{i}.log") for i in (1, 2)]  # fmt: skip
    state = SandboxAdmin(sandbox, timeout=5).state
    wait_until(lambda: state()["requests"]["total"] > 0, 120, "first request")
    start, first = time.monotonic(), state()["requests"]["total"]
    time.sleep(args.window)
    end = state()
    used = end["requests"]["total"] - first + 1
    alive = [r.poll() is None for r in runs]
    return {
        "budget_per_minute": args.budget, "window_seconds": args.window,
        "measured_seconds": round(time.monotonic() - start, 1),
        "requests_in_window": used,
        "share_of_budget": round(used / (args.budget * args.window / 60), 3),
        "http_429": end["requests"]["by_status"].get("429", 0),
        "both_runs_still_running_at_end": all(alive), "by_status": end["requests"]["by_status"],
    }  # fmt: skip


if __name__ == "__main__":
    main()
