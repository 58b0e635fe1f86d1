"""The raw ceiling: the same customers posted to the sandbox with nothing else around them.

    python -m bench.ceiling --db-url URL --base-url http://127.0.0.1:P/v3 --mode single|batch
                            [--concurrency 8] [--batch-size 100] [--api-key K] [--company-id C]
                            [--poll-interval 0.05] [--out ceiling.json]

Before the clock starts it reads every source row (ordered by id) from the database the
pipeline will read, and builds the payloads with `rootfi_sync.transform.build_payloads`, the
pipeline's own transform; rows it rejects are not sent (the pipeline does not send them either).
Then, timed, with one `httpx.Client` and a thread pool of `--concurrency` workers:

* single: one synchronous `POST /ecommerce/customers` per customer (`run_async: false`);
* batch: one async POST per `--batch-size` source rows (their accepted payloads), then
  `GET /core/syncs/{id}` every `--poll-interval` seconds until the sync is SUCCESS or FAILED.

It writes nothing back and does not list customers or jobs. Its rate is source rows per second
(N / elapsed), the same measure as the pipeline's. It prints (or writes) one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import sqlalchemy as sa

from rootfi_sync.db import make_engine
from rootfi_sync.tables import source_table
from rootfi_sync.transform import build_payloads

PATH = "ecommerce/customers"


def load_batches(db_url: str, batch_size: int) -> tuple[int, list[list[dict[str, Any]]]]:
    """Return (source rows, accepted payloads grouped by `batch_size` source rows)."""
    table = source_table()
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]
    finally:
        engine.dispose()
    batches = []
    for start in range(0, len(rows), batch_size):
        built = build_payloads(rows[start : start + batch_size])
        batches.append([payload.to_api() for _, payload in built.accepted])
    return len(rows), batches


class Ceiling:
    def __init__(self, client: httpx.Client, company_id: int, poll_interval: float) -> None:
        self.client, self.company_id, self.poll_interval = client, company_id, poll_interval
        self.statuses: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()

    def _count(self, key: str, requests: int = 1) -> None:
        with self._lock:
            self.statuses[key] += 1
            self.requests += requests

    def post_one(self, record: dict[str, Any]) -> None:
        body = {"company_id": self.company_id, "data": [record], "run_async": False}
        response = self.client.post(PATH, params={"run_async": "false"}, json=body)
        if response.status_code == 200:
            _ = response.json()["data"][0]["rootfi_id"]  # what a real caller needs
        self._count(str(response.status_code))

    def post_batch(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        body = {"company_id": self.company_id, "data": records, "run_async": True}
        response = self.client.post(PATH, params={"run_async": "true"}, json=body)
        if response.status_code != 200:
            self._count(f"post-{response.status_code}")
            return
        sync_id = response.json()["sync_id"]
        polls = 0
        while True:
            time.sleep(self.poll_interval)
            polls += 1
            sync = self.client.get(f"core/syncs/{sync_id}").json()["data"]
            if sync["status"] in ("SUCCESS", "FAILED"):
                break
        self._count(f"sync-{sync['status']}", requests=1 + polls)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows, batches = load_batches(args.db_url, args.batch_size)
    headers = {"api_key": args.api_key, "user-agent": "rootfi-sync-bench-ceiling"}
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    base_url = args.base_url.rstrip("/") + "/"
    with (
        httpx.Client(base_url=base_url, headers=headers, limits=limits, timeout=60) as client,
        ThreadPoolExecutor(args.concurrency) as pool,
    ):
        ceiling = Ceiling(client, args.company_id, args.poll_interval)
        started = time.perf_counter()
        if args.mode == "single":
            records = [r for batch in batches for r in batch]
            list(pool.map(ceiling.post_one, records))
        else:
            list(pool.map(ceiling.post_batch, batches))
        elapsed = time.perf_counter() - started
    posted = sum(len(b) for b in batches)
    return {
        "mode": args.mode, "rows": rows, "posted": posted, "requests": ceiling.requests,
        "seconds": elapsed, "customers_per_second": rows / elapsed,
        "statuses": dict(ceiling.statuses), "concurrency": args.concurrency,
        "batch_size": args.batch_size, "poll_interval": args.poll_interval,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--base-url", required=True, help="the sandbox's /v3 URL")
    parser.add_argument("--mode", choices=["single", "batch"], required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--company-id", type=int, default=1089)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    text = json.dumps(run(args))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
