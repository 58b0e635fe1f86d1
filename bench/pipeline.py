"""The real flow against its raw ceiling: customers a second, peak memory, seconds per phase.

    python -m bench.pipeline [--n 2000 20000] [--db sqlite postgres] [--mode single batch]
                             [--latency 0.01] [--concurrency 8] [--batch-size 100]
                             [--bad-share 0.05] [--no-ceiling]
                             [--probe no-vouch prefect-records-nothing]

One `prefect server start` per invocation, and one PostgreSQL server if asked for (the test
suite's `tests.postgres.PostgresServer`: fsync, synchronous commit and full-page writes off,
data on /dev/shm). For each (db, mode, N), a fresh source of N synthetic customers (~5% bad
rows, `--bad-share`: one in five of them, one row in a hundred, refused by the platform; a
SQLite file or a fresh PostgreSQL database; untimed), then:

* the ceiling: the same rows' payloads (built beforehand with the flow's own
  `build_payloads`) posted from this process to a fresh sandbox with one `httpx.Client` and
  `--concurrency` threads: single, one POST per customer; batch, one async POST per
  `--batch-size` rows, its sync polled every 50 ms. Nothing is read back or written;
* the pipeline: `sync_customers` in a subprocess (`python -m bench.common`) against another
  fresh sandbox, ROOTFI_RATE_LIMIT_PER_MINUTE=0 and the same concurrency, batch size, mode.

Both rates are N / seconds (the flow's own `duration_seconds`). Peak RSS is the flow
process's VmHWM. CPU: milliseconds per customer that the flow process (over its flow call), the
Prefect server and the pipeline's sandbox used while the flow ran: on a small machine the three
share its cores, and the rate follows their sum more closely than any one of them. API
requests: every request the sandbox answered, by kind (create, sync, sync_jobs,
list_customers, companies) and per 100 customers of the source.
Checks: every customer settled in the ledger, the SYNCED rows' rootfi_ids
are the sandbox's customers one for one, no email stored twice. "others" is the share of
the machine's CPU other people's processes took during the run. Prints a Markdown table and
writes the records to bench/out/<time>-pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from rootfi_sandbox.adminclient import SandboxAdmin

from bench.common import (
    API_KEY,
    COMPANY_ID,
    RECORDS_NOTHING,
    Children,
    OthersCpu,
    clean_env,
    ledger_rows,
    seed_source,
    session_cpu_seconds,
    start_prefect,
    start_sandbox,
    write_record,
)

PHASES = ("extract", "transform", "load", "write_back")


def payload_batches(url: str, batch_size: int) -> list[list[dict[str, Any]]]:
    """The accepted payloads of the source's rows, by `batch_size` rows in id order."""
    from rootfi_sync.ledger.db import make_engine
    from rootfi_sync.ledger.tables import source_table
    from rootfi_sync.source.transform import build_payloads

    table, engine = source_table(), make_engine(url)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]
    engine.dispose()
    chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    return [[p.to_api() for _, p in build_payloads(chunk).accepted] for chunk in chunks]


def ceiling(base: str, mode: str, batches: list[list[dict[str, Any]]], threads: int) -> float:
    """Seconds to create every payload with plain httpx and a thread pool."""

    def post(records: list[dict[str, Any]], run_async: bool) -> httpx.Response:
        body = {"company_id": COMPANY_ID, "data": records, "run_async": run_async}
        return client.post("ecommerce/customers", json=body)

    def one(record: dict[str, Any]) -> None:
        post([record], False).json()  # a refusal (the sandbox refuses ~1%) counts as done

    def batch(records: list[dict[str, Any]]) -> None:
        sync_id = post(records, True).raise_for_status().json()["sync_id"]
        while client.get(f"core/syncs/{sync_id}").json()["data"]["status"] not in (
            "SUCCESS",
            "FAILED",
        ):
            time.sleep(0.05)

    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with (
        httpx.Client(
            base_url=f"{base}/v3/", headers={"api_key": API_KEY}, limits=limits, timeout=60
        ) as client,
        ThreadPoolExecutor(threads) as pool,
    ):
        started = time.perf_counter()
        if mode == "single":
            list(pool.map(one, [r for b in batches for r in b]))
        else:
            list(pool.map(batch, [b for b in batches if b]))
        return time.perf_counter() - started


class Bench:
    """One invocation: its children, Prefect server, PostgreSQL server and records."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        self.args, self.children = args, Children()
        self.work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        stack.callback(self.children.stop_all)  # before the directory goes
        quiet = "prefect-records-nothing" in args.probe
        self.prefect_proc, self.prefect = start_prefect(
            self.children, self.work, RECORDS_NOTHING if quiet else None
        )
        self.pg: Any = None
        if "postgres" in args.db:
            from tests.postgres import PostgresServer, find_pg_ctl

            pg_ctl = find_pg_ctl()
            if pg_ctl is None:
                raise SystemExit("--db postgres needs pg_ctl (the PostgreSQL server binaries)")
            self.pg = PostgresServer(pg_ctl)
            stack.callback(self.pg.cleanup)
            self.pg.start()

    def _servers(self, sandbox: Any) -> dict[str, Any]:
        """The servers a flow keeps busy besides itself, by name (their CPU is reported)."""
        return {"prefect": self.prefect_proc, "sandbox": sandbox}

    def _postmaster(self) -> set[int]:
        pid_file = Path(self.pg.executor.datadir) / "postmaster.pid" if self.pg else None
        if pid_file and pid_file.exists():
            return {int(pid_file.read_text().split()[0])}
        return set()

    def source(self, stack: ExitStack, db: str, n: int) -> str:
        if db == "sqlite":
            return f"sqlite:///{self.work / f'source-{time.monotonic_ns()}.db'}"
        from tests.postgres import server_url
        from tests.servers import database_name, throwaway_database

        name = database_name(f"bench {n}")
        return stack.enter_context(throwaway_database(server_url(self.pg.executor), name))

    def run(self, db: str, mode: str, n: int) -> dict[str, Any]:
        args = self.args
        row: dict[str, Any] = {"db": db, "mode": mode, "batch_size": args.batch_size, "n": n}
        row["probes"] = list(args.probe)
        with ExitStack() as stack:
            url = self.source(stack, db, n)
            seed_source(url, n, bad_share=args.bad_share)
            if not args.no_ceiling:
                batches = payload_batches(url, args.batch_size)
                sandbox, base = start_sandbox(self.children, self.work, latency=args.latency)
                others = OthersCpu(self.children, self._postmaster)
                row["ceiling"] = n / ceiling(base, mode, batches, args.concurrency)
                row["ceiling_others"] = others.share()
                self.children.stop(sandbox)
            row |= self.pipeline(url, mode, n)
        return row

    def pipeline(self, url: str, mode: str, n: int) -> dict[str, Any]:
        args, work = self.args, Path(tempfile.mkdtemp(dir=self.work))
        sandbox, base = start_sandbox(self.children, self.work, latency=args.latency)
        env = clean_env() | {
            "PREFECT_API_URL": self.prefect,
            "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "SOURCE_DATABASE_URL": url,
            "ROOTFI_BASE_URL": f"{base}/v3",
            "ROOTFI_API_KEY": API_KEY,
            "ROOTFI_COMPANY_ID": str(COMPANY_ID),
            "ROOTFI_WRITE_MODE": mode,
            "ROOTFI_BATCH_SIZE": str(args.batch_size),
            "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
            "ROOTFI_CONCURRENCY": str(args.concurrency),
            "BENCH_PROBES": ",".join(args.probe),
        }
        argv = [sys.executable, "-m", "bench.common", str(work / "flow.json")]
        cpu = {name: session_cpu_seconds(p.pid) for name, p in self._servers(sandbox).items()}
        proc = self.children.start(argv, env=env, log=work / "flow.log")
        others = OthersCpu(self.children, self._postmaster)
        deadline = time.monotonic() + 120 + n / 50  # 50 customers a second at the least
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1.0)
            others.sample()
        result: dict[str, Any] = {"others": others.share()}
        for name, p in self._servers(sandbox).items():
            cpu[name] = session_cpu_seconds(p.pid) - cpu[name]
        self.children.stop(proc)
        with SandboxAdmin(base, timeout=300) as admin:
            stored, asked = admin.customers(COMPANY_ID), admin.state()["requests"]
        self.children.stop(sandbox)
        flow = json.loads((work / "flow.json").read_text()) if proc.returncode == 0 else {}
        counts = flow.get("counts") or {}
        ledger = ledger_rows(url)
        statuses = Counter(status for status, _ in ledger)
        synced = sorted(str(rootfi_id) for status, rootfi_id in ledger if status == "SYNCED")
        emails = Counter(c.get("email") for c in stored)
        ok = (
            statuses["SYNCED"] + statuses["FAILED"] == n
            and synced == sorted(str(c["rootfi_id"]) for c in stored)
            and max(emails.values(), default=1) == 1
        )
        return result | {
            "pipeline": n / counts["duration_seconds"] if counts else None,
            "flow_seconds": counts.get("duration_seconds"),
            "phases": counts.get("phase_seconds", {}),
            "requests": asked["total"],
            "requests_by_kind": asked.get("by_kind", {}),
            "peak_rss_mib": flow.get("vmhwm_kib", 0) / 1024,
            "cpu_seconds": cpu | {"flow": flow.get("cpu_seconds")},
            "ledger": dict(statuses),
            "checks": "ok" if ok else f"FAILED (ledger {dict(statuses)}, {len(stored)} stored)",
            "log_tail": None if ok else (work / "flow.log").read_text()[-3000:],
        }


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


KINDS = ("create", "sync", "sync_jobs", "list_customers", "companies", "other")


def per_100(row: dict[str, Any]) -> float:
    """API requests per 100 customers of the source (N, invalid rows included)."""
    return 100.0 * row["requests"] / row["n"]


def cpu_per_customer(row: dict[str, Any]) -> str:
    """CPU milliseconds per customer of the source while the flow ran: the flow process's
    (its flow call), the Prefect server's and the sandbox's, e.g. `3.1, 4.2, 1.0`."""
    cpu = row.get("cpu_seconds") or {}
    parts = (cpu.get(k) for k in ("flow", "prefect", "sandbox"))
    return ", ".join("-" if v is None else f"{1000 * v / row['n']:.1f}" for v in parts)


def by_kind(row: dict[str, Any]) -> str:
    """The requests by kind, e.g. `create 20, sync 22, list_customers 20`: those asked only."""
    kinds = row.get("requests_by_kind") or {}
    return ", ".join(
        f"{k} {kinds[k]:,}" for k in (*KINDS, *sorted(set(kinds) - set(KINDS))) if kinds.get(k)
    )


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the runs; RSS ratio: peak RSS at this N over the smallest N's."""
    head = (
        "| db | mode | batch | N | pipeline c/s | ceiling c/s | ratio | flow s | "
        "peak RSS MiB | RSS / smallest N's | extract s | transform s | load (wait) s | "
        "write_back s | CPU ms per customer: flow, Prefect server, sandbox | API requests | "
        "per 100 customers | by kind | others' CPU | checks |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        first = min(
            (x for x in rows if (x["db"], x["mode"]) == (r["db"], r["mode"])), key=lambda x: x["n"]
        )
        ratio = r["pipeline"] / r["ceiling"] if r["pipeline"] and r.get("ceiling") else None
        others = max(r["others"], r.get("ceiling_others", 0))
        cells = [
            r["db"],
            r["mode"] + "".join(f" (probe: {p})" for p in r.get("probes", ())),
            r["batch_size"],
            f"{r['n']:,}",
            _f(r["pipeline"]),
            _f(r.get("ceiling")),
            f"{ratio:.0%}" if ratio else "-",
            _f(r["flow_seconds"], 1),
            _f(r["peak_rss_mib"]),
            _f(r["peak_rss_mib"] / first["peak_rss_mib"], 2) if first is not r else "-",
            *(_f(r["phases"].get(p), 1) for p in PHASES),
            cpu_per_customer(r),
            _f(r["requests"]),
            _f(per_100(r), 2),
            by_kind(r),
            f"{others:.0%}",
            r["checks"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"])
    parser.add_argument(
        "--mode", nargs="+", choices=["single", "batch"], default=["single", "batch"]
    )
    parser.add_argument("--latency", type=float, default=0.01, help="sandbox answer delay, s")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--no-ceiling", action="store_true", help="run the pipeline alone")
    parser.add_argument(
        "--bad-share",
        type=float,
        default=0.05,
        help="share of bad rows (one in five of them refused by the platform, not by us)",
    )
    parser.add_argument(
        "--probe",
        nargs="*",
        default=[],
        choices=["no-vouch", "prefect-records-nothing"],
        help="measure what a part costs by taking it out (never a setup to run): no ledger "
        "read before each POST; a Prefect server that records no task run, stores no event "
        "and evaluates no trigger. Named in the table's mode column",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children on the way out
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        bench = Bench(args, stack)
        for db in args.db:
            for mode in args.mode:
                for n in sorted(args.n):
                    rows.append(row := bench.run(db, mode, n))
                    print(
                        f"[{time.strftime('%H:%M:%S')}] {db} {mode} {n}: "
                        f"{_f(row['pipeline'])}/s, {_f(per_100(row), 2)} requests per 100 "
                        f"customers ({by_kind(row)}) {row['checks']}",
                        flush=True,
                    )
    settings = {k: getattr(args, k) for k in ("latency", "concurrency", "batch_size", "bad_share")}
    print(f"\n{table(rows)}\n\n(written to {write_record('pipeline', settings | {'rows': rows})})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
