"""Issue 16's headline cases, counted against the sandbox: duplicates, lost, the ledger.

    python -m bench.platform_cases batch-shopify | single-shopify-lost | refused-failures-first

`batch-shopify`: 60 customers, batch mode, the sandbox's `shopify` profile (E.164 phones,
ISO-2 countries, lower-case emails), no fault, 4 runs. `single-shopify-lost`: the same in
single mode with 15% of answers lost. `refused-failures-first`: one async write of 63
records, 3 refused by the platform, jobs listed failures first, 1 run ("created but failed"
names customers created in RootFi and recorded FAILED). Settle times are 0 and what is
pending is made due before each run, so every run may resend what it cannot prove created.
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import clean_env

CASES = ("batch-shopify", "single-shopify-lost", "refused-failures-first")
DUE_NOW = "UPDATE rootfi_customer_sync SET next_attempt_at = :p WHERE next_attempt_at IS NOT NULL"


def measure(case: str, home: Path) -> dict[str, Any]:
    from prefect.testing.utilities import prefect_test_harness
    from rootfi_sandbox import Faults, SandboxConfig, SandboxServer

    from tests.factories import make_customer
    from tests.integration.helpers import seed_source

    url = f"sqlite:///{home / 'source.db'}"
    rows = [make_customer() for _ in range(60)]
    if case == "refused-failures-first":
        rows += [make_customer(email=f"no{n}@refused.example") for n in range(3)]
    seed_source(url, rows)
    faults = {
        "batch-shopify": Faults(platform="shopify"),
        "single-shopify-lost": Faults(platform="shopify", lost_answer_rate=0.15, seed=7),
        "refused-failures-first": Faults(jobs_order="failures_first"),
    }[case]
    config = SandboxConfig(api_keys=frozenset({"k"}), company_ids=frozenset({1089}), faults=faults)
    runs = 1 if case == "refused-failures-first" else 4
    with SandboxServer(config) as sandbox, prefect_test_harness(server_startup_timeout=300):
        os.environ.update(settings(case, url, sandbox.api_url))
        from flows.sync_customers import sync_customers

        engine = sa.create_engine(url)
        for _ in range(runs):
            with engine.begin() as conn:
                past = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
                conn.execute(sa.text(DUE_NOW), {"p": past})
            sync_customers()
        stored = Counter(c["email"] for c in sandbox.admin.customers(1089))
    with engine.connect() as conn:
        ledger = conn.execute(sa.text("SELECT customer_id, status FROM rootfi_customer_sync"))
        states = dict(ledger.all())
    engine.dispose()
    created = {str(r["id"]) for r in rows if not r["email"].endswith("refused.example")}
    return {
        "case": case,
        "customers": len(rows),
        "runs": runs,
        "duplicates": sum(n - 1 for n in stored.values() if n > 1),
        "lost": sum(1 for r in rows if str(r["id"]) in created and r["email"] not in stored),
        "ledger": dict(Counter(states.values())),
        "created_but_failed": sorted(int(c) for c in created if states.get(c) == "FAILED"),
    }


def settings(case: str, url: str, api_url: str) -> dict[str, str]:
    return {
        "SOURCE_DATABASE_URL": url,
        "ROOTFI_BASE_URL": api_url,
        "ROOTFI_API_KEY": "k",
        "ROOTFI_COMPANY_ID": "1089",
        "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
        "ROOTFI_WRITE_MODE": "single" if case.startswith("single") else "batch",
        "ROOTFI_BATCH_SIZE": "63" if case == "refused-failures-first" else "20",
        "ROOTFI_SYNC_SETTLE_SECONDS": "0",
        "ROOTFI_ASYNC_SETTLE_SECONDS": "0",
        "ROOTFI_SYNC_POLL_SECONDS": "0",
        "ROOTFI_REQUEUE_DELAY_SECONDS": "0",
        "ROOTFI_RETRY_DELAY_SECONDS": "0.05",
        "ROOTFI_TIMEOUT_SECONDS": "5",
        "ROOTFI_RETRIES": "1",
    }


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        raise SystemExit(__doc__)
    home = Path(tempfile.mkdtemp(prefix="bench-platform-cases-"))
    env = clean_env()  # no developer's Prefect, RootFi, source or ledger settings
    os.environ.clear()
    os.environ.update(env, PREFECT_HOME=str(home / "prefect"), PREFECT_LOGGING_LEVEL="ERROR")
    print(json.dumps(measure(sys.argv[1], home)))


if __name__ == "__main__":
    main()
