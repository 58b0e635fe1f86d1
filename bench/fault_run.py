"""A larger exactly-once run under injected faults: runs to converge, duplicates, lost.

    uv run python -m bench.fault_run --n 20000 --mode single [--out bench/out]

Seeds N customers (SQLite), starts the sandbox with 15% 500s, 10% 429s, 10% lost answers
and 5% slow answers (longer than the client timeout), and runs the real flow until a run
leaves nothing in doubt or to retry (at most --max-runs). Prints one JSON line of figures and
writes them, with the git commit of this tree and whether it had uncommitted changes, to
--out/<timestamp>-fault_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.procs import write_result

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--mode", choices=["single", "batch"], default="single")
    parser.add_argument("--max-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=BENCH / "out",
                        help="directory for the JSON result")  # fmt: skip
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rootfi-fault-run-"))
    os.environ.update(PREFECT_HOME=str(home / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_LOGGING_LEVEL="WARNING")  # fmt: skip
    result = run(args, home)
    print(json.dumps(result))
    print(f"written to {write_result(args.out, 'fault_run', result, BENCH.parent)}")


def run(args: argparse.Namespace, home: Path) -> dict[str, object]:
    from prefect.testing.utilities import prefect_test_harness

    from flows.sync_customers import sync_customers
    from rootfi_sync.db import init_db, make_engine
    from rootfi_sync.ledger import status_counts
    from rootfi_sync.sandbox import Faults, SandboxConfig, SandboxServer
    from rootfi_sync.seed import fake_customers, insert_customers
    from rootfi_sync.settings import load_settings
    from rootfi_sync.tables import source_table

    url = f"sqlite:///{home / 'source.db'}"
    faults = Faults(error_500_rate=0.15, error_429_rate=0.10, lost_answer_rate=0.10,
                    slow_answer_rate=0.05, slow_answer_seconds=2.5, seed=args.seed)  # fmt: skip
    config = SandboxConfig(api_keys=frozenset({"k"}), company_ids=frozenset({1089}), faults=faults)
    init_db(load_settings(source_database_url=url))
    engine = make_engine(url)
    insert_customers(engine, source_table(), fake_customers(args.n, bad_share=0.0))
    with SandboxServer(config) as sandbox, prefect_test_harness(server_startup_timeout=120):
        os.environ.update(
            SOURCE_DATABASE_URL=url, ROOTFI_BASE_URL=sandbox.api_url, ROOTFI_API_KEY="k",
            ROOTFI_COMPANY_ID="1089", ROOTFI_RATE_LIMIT_PER_MINUTE="0", ROOTFI_CONCURRENCY="8",
            ROOTFI_TIMEOUT_SECONDS="2", ROOTFI_RETRY_DELAY_SECONDS="0.2",
            ROOTFI_REQUEUE_DELAY_SECONDS="0", ROOTFI_RECONCILE_SKEW_SECONDS="10",
            ROOTFI_WRITE_MODE=args.mode,
        )  # fmt: skip
        started, runs = time.monotonic(), []
        for _ in range(args.max_runs):
            counts = sync_customers()
            runs.append(
                {k: counts[k] for k in ("picked", "synced", "adopted", "in_doubt", "retry_later")}
            )
            if counts["in_doubt"] == 0 and counts["retry_later"] == 0:
                break
        stored = Counter(c["email"] for c in sandbox.admin.customers(1089))
        requests = sandbox.admin.state()["requests"]
    ledger = status_counts(engine, 1089)
    engine.dispose()
    return {
        "customers": args.n, "mode": args.mode, "faults": faults.model_dump(),
        "runs_to_converge": len(runs), "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
        "ledger": ledger, "in_rootfi": sum(stored.values()),
        "duplicates": sum(n - 1 for n in stored.values() if n > 1),
        "lost": args.n - len(stored), "requests": requests,
    }  # fmt: skip


if __name__ == "__main__":
    main()
