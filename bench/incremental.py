"""An incremental run over a large SQLite source: the ledger in the source's file (the
anti-join) against the ledger in a SQLite file of its own (source keys paged, each page
looked up in the ledger with one query), the source then opened read-only.

    python -m bench.incremental [--rows 1000000] [--new 100] [--repeat 1] [--ephemeral]
                                [--out bench/out]

Builds, untimed, a source of `--rows` customers with ids 1..N (plain synthetic rows, all
valid: faker would take minutes for a million) and a ledger in which all but `--new` of
them (spread evenly over the ids) are SYNCED. Starts one `prefect server start` (unless
`--ephemeral`: then each run starts Prefect's temporary server itself, as `rootfi-sync run`
does with no PREFECT_API_URL) and, per run, a fresh sandbox; each run gets fresh copies of
the files and runs the real flow in a subprocess (`bench/run_flow.py`, everything at its
defaults but ROOTFI_RATE_LIMIT_PER_MINUTE=0).
Records the flow's own `duration_seconds` and `phase_seconds`, the flow call's seconds, the
wall time of the whole subprocess (interpreter, imports, Prefect client, flow), and checks
that exactly the new customers were created and that the read-only source is unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.procs import Children, ForeignCpu, start_prefect_server, start_sandbox, write_result

ROOT = Path(__file__).resolve().parents[1]
API_KEY, COMPANY_ID = "bench-sandbox-key", 1089
CHUNK = 20_000
STAMP = "2024-01-01 10:00:00.000000"
LEDGER_INSERT = (
    "INSERT INTO rootfi_customer_sync (customer_id, company_id, status, rootfi_id, attempts, "
    "synced_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def synthetic_rows(count: int) -> Iterator[tuple[Any, ...]]:
    """Valid customers 1..count, as tuples in the order of `SOURCE_COLUMNS`."""
    address = ("Springfield", "IL", "62701", "US")
    for n in range(1, count + 1):
        contact = (f"Customer {n}", f"customer{n}@example.com", f"+1555{n:07d}", "USD", "active")
        yield (n, *contact, f"{n} Main Street", None, *address, STAMP, STAMP)


def new_ids(rows: int, new: int) -> set[int]:
    """`new` ids spread evenly over 1..rows: the customers the ledger has not seen."""
    step = rows // new
    return {step * k for k in range(1, new + 1)}


def _insert(path: Path, sql: str, rows: Iterator[tuple[Any, ...]]) -> None:
    with sqlite3.connect(path) as conn:
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == CHUNK:
                conn.executemany(sql, chunk)
                chunk.clear()
        conn.executemany(sql, chunk)
    conn.close()


def build(tmp: Path, rows: int, new: int) -> dict[str, Path]:
    """source.db (customers only), ledger.db (the ledger only), same.db (both)."""
    from rootfi_sync.db import create_sample, make_engine, upgrade_ledger
    from rootfi_sync.settings import SOURCE_COLUMNS, load_settings

    files = {name: tmp / f"{name}.db" for name in ("source", "ledger", "same")}
    create_sample(load_settings(source_database_url=f"sqlite:///{files['source']}"))
    marks = ", ".join("?" * len(SOURCE_COLUMNS))
    columns = ", ".join(SOURCE_COLUMNS)
    insert = f"INSERT INTO customers ({columns}) VALUES ({marks})"
    _insert(files["source"], insert, synthetic_rows(rows))
    for name in ("ledger", "same"):
        if name == "same":
            shutil.copyfile(files["source"], files["same"])
        engine = make_engine(f"sqlite:///{files[name]}")
        upgrade_ledger(engine)
        engine.dispose()
    skip = new_ids(rows, new)
    synced = (
        (str(n), COMPANY_ID, "SYNCED", f"bench-{n}", 1, STAMP, STAMP)
        for n in range(1, rows + 1)
        if n not in skip
    )
    _insert(files["ledger"], LEDGER_INSERT, synced)
    with sqlite3.connect(files["same"]) as conn:
        conn.execute("ATTACH DATABASE ? AS l", (str(files["ledger"]),))
        conn.execute("INSERT INTO rootfi_customer_sync SELECT * FROM l.rootfi_customer_sync")
    conn.close()
    return files


def layout(name: str, files: dict[str, Path], run_dir: Path) -> dict[str, str]:
    """Fresh copies of the files a layout needs; its SOURCE_ and LEDGER_DATABASE_URL."""
    if name == "same":
        shutil.copyfile(files["same"], run_dir / "same.db")
        return {"SOURCE_DATABASE_URL": f"sqlite:///{run_dir / 'same.db'}"}
    shutil.copyfile(files["source"], run_dir / "source.db")
    shutil.copyfile(files["ledger"], run_dir / "ledger.db")
    return {
        "SOURCE_DATABASE_URL": f"sqlite:///file:{run_dir / 'source.db'}?mode=ro&uri=true",
        "LEDGER_DATABASE_URL": f"sqlite:///{run_dir / 'ledger.db'}",
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_once(
    children: Children, api: str | None, files: dict[str, Path], name: str, run_dir: Path
) -> dict[str, Any]:
    """One incremental run of layout `name` against a fresh sandbox; its figures."""
    from rootfi_sandbox.adminclient import SandboxAdmin

    from bench.source import ledger_state

    run_dir.mkdir(parents=True)
    urls = layout(name, files, run_dir)
    before = digest(run_dir / "source.db") if name == "apart" else None
    sandbox, base = start_sandbox(
        children,
        sys.executable,
        latency=0.0,
        api_key=API_KEY,
        company_id=COMPANY_ID,
        env=clean_env(),
        log=run_dir / "sandbox.log",
    )
    env = clean_env() | urls | flow_env(api, base, run_dir / "home")
    argv = [sys.executable, "-m", "bench.run_flow", str(run_dir / "flow.json")]
    try:
        meter = ForeignCpu(lambda: ({os.getsid(0)} | {p.pid for p in children.procs}, set()))
        meter.sample()
        started = time.perf_counter()
        proc = children.start(argv, env=env, log=run_dir / "flow.log", cwd=run_dir)
        cpu = reap(proc, meter, deadline=started + 900)
        wall = time.perf_counter() - started
        meter.sample()
        foreign = meter.seconds() / (wall * (os.cpu_count() or 1))
        with SandboxAdmin(base) as admin:
            created = admin.state()["customers"]
    finally:
        children.stop(sandbox)
    record = json.loads((run_dir / "flow.json").read_text())
    counts = record["counts"] or {}
    unchanged = None if before is None else digest(run_dir / "source.db") == before
    ledger_url = urls.get("LEDGER_DATABASE_URL", urls["SOURCE_DATABASE_URL"])
    states, synced_ids = ledger_state(ledger_url, COMPANY_ID)
    return {
        "layout": name,
        "urls": urls,
        "exit_code": proc.returncode,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "sandbox_customers": created,
        "ledger_states": states,
        "distinct_rootfi_ids": len(set(synced_ids)),
        "source_unchanged": unchanged,
        "foreign_cpu_share": round(foreign, 3),
        **{k: record[k] for k in ("flow_call_seconds", "import_seconds", "error")},
        **{k: counts.get(k) for k in ("duration_seconds", "phase_seconds", "synced", "picked")},
        "sql_statements": record["sql_statements"],
    }


def reap(proc: subprocess.Popen[bytes], meter: ForeignCpu, deadline: float) -> float | None:
    """Wait for `proc` (sampling other people's CPU meanwhile); return the CPU seconds it
    used (user + system, all its threads: a figure other processes barely change)."""
    while time.perf_counter() < deadline:
        meter.sample()  # other people's processes, on this shared machine
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        time.sleep(0.25)
    return None


def flow_env(api: str | None, sandbox: str, home: Path) -> dict[str, str]:
    """The flow's settings: this checkout, the Prefect server (None: a temporary one), the
    sandbox, no rate limit."""
    return ({"PREFECT_API_URL": api} if api else {}) | {
        "PYTHONPATH": str(ROOT),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "ROOTFI_BASE_URL": f"{sandbox}/v3",
        "ROOTFI_API_KEY": API_KEY,
        "ROOTFI_COMPANY_ID": str(COMPANY_ID),
        "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
    }


def clean_env() -> dict[str, str]:
    drop = ("PREFECT_", "ROOTFI_", "SOURCE_", "LEDGER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--ephemeral", action="store_true", help="no server: each run's own")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    children, tmp = Children(), Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    try:
        started = time.perf_counter()
        files = build(tmp, args.rows, args.new)
        print(f"built {args.rows} rows, {args.new} new, in {time.perf_counter() - started:.0f}s")
        api = None if args.ephemeral else start_server(children, tmp)
        runs = []
        for n in range(args.repeat):
            for name in ("same", "apart"):
                runs.append(run_once(children, api, files, name, tmp / f"{name}-{n}"))
                print(summary(runs[-1]), flush=True)
        path = write_result(args.out, "incremental", {"args": vars(args), "runs": runs}, ROOT)
        print(f"wrote {path}")
        return 0 if all(ok(r, args.rows, args.new) for r in runs) else 1
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def start_server(children: Children, tmp: Path) -> str:
    """Start `prefect server start` with a home of its own; return its API URL."""
    prefect = str(Path(sys.executable).parent / "prefect")
    home, log = tmp / "server", tmp / "server.log"
    return start_prefect_server(children, prefect, home=home, env=clean_env(), log=log)[1]


def ok(run: dict[str, Any], rows: int, new: int) -> bool:
    """The run created exactly the new customers, and every customer is SYNCED once."""
    return (
        run["exit_code"] == 0
        and run["synced"] == run["sandbox_customers"] == new
        and run["ledger_states"] == {"SYNCED": rows}
        and run["distinct_rootfi_ids"] == rows
        and run["source_unchanged"] is not False
    )


def summary(run: dict[str, Any]) -> str:
    phases = run["phase_seconds"] or {}
    return (
        f"{run['layout']:>5}: flow {run['duration_seconds'] or 0:.2f}s "
        f"(extract {phases.get('extract', 0):.2f}s), flow call {run['flow_call_seconds']:.2f}s, "
        f"wall {run['wall_seconds']:.1f}s, CPU {run['cpu_seconds'] or 0:.1f}s, "
        f"synced {run['synced']}, sandbox holds "
        f"{run['sandbox_customers']}, ledger {run['ledger_states']}, "
        f"source unchanged: {run['source_unchanged']}, "
        f"others took {run['foreign_cpu_share']:.0%} of the CPU"
    )


if __name__ == "__main__":
    sys.exit(main())
