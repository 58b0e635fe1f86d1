"""Pipeline throughput and memory: the real flow against its raw ceiling, per db, mode and N.

    python -m bench.pipeline [--n 10000 100000] [--db sqlite postgres] [--mode single batch]
                             [--latency 0.02] [--concurrency 8] [--batch-size 100]
                             [--async-delay 0.2] [--min-rate 50] [--out bench/out] [--chart]

Once per invocation it makes the synthetic customers (faker, `rootfi_sync.seed`; untimed),
starts one `prefect server start` (temporary PREFECT_HOME, analytics off) and, if asked for,
one PostgreSQL server the way the test suite does (`bench/pg.py`). Then for each (db, mode, N):

1. a fresh source: a SQLite file in a temporary directory, or a fresh PostgreSQL database,
   with the ledger migrated and N customers bulk-inserted (untimed);
2. the ceiling (`bench/ceiling.py`, a subprocess) against a fresh sandbox subprocess;
3. the real flow (`bench/run_flow.py`, a subprocess; ROOTFI_RATE_LIMIT_PER_MINUTE=0 and
   PREFECT_API_URL set) against another fresh sandbox subprocess with the same latency.
   Its rate is N / counts["duration_seconds"] (the flow's own clock); its peak RSS is the
   child's own VmHWM (read by the child at its end, and sampled from /proc every 0.25 s);
4. checks: every customer settled in the ledger, the sandbox stores exactly the SYNCED ones
   (the SYNCED rows' rootfi_ids are the stored customers' ids, one for one, and no email is
   stored twice), the Prefect server's task-run count for the flow run (per batch, not per
   customer), the SQL statements the flow sent, and the CPU other people's processes took
   meanwhile (the machine is shared: a run where they took over 5% of it is flagged
   "disturbed").

The code measured is a copy of flows/, tasks/ and rootfi_sync/ taken at start (from --src,
default this tree): people edit the tree while a benchmark runs, and every run of one
invocation must measure the same code; the commit and a hash of that code are recorded, and
the commit, uncommitted changes and a hash of the harness's own bench/*.py files too.

Each subprocess is bounded by 120 s + N / --min-rate; a run cut short is reported with the
share it settled. A table is printed; raw JSON goes to --out (one file per run plus
results.json); `--chart` draws bench/throughput_memory.png. Every child process is stopped at
the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.procs import (
    Children,
    ForeignCpu,
    git,
    read_status,
    start_prefect_server,
    start_sandbox,
)

if TYPE_CHECKING:  # imported at run time from the snapshot, once it is on sys.path
    from rootfi_sandbox.adminclient import SandboxAdmin

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
API_KEY = "bench-sandbox-key"
COMPANY_ID = 1089
PHASES = ("extract", "transform", "load", "write_back")
RSS_SAMPLE_SECONDS = 0.25
STORED_SAMPLE_SECONDS = 2.0
FOREIGN_SHARE_FLAG = 0.05  # other people's processes took more than this share of the CPUs


@dataclass
class Context:
    args: argparse.Namespace
    children: Children
    tmp: Path
    python: str
    src: Path = ROOT
    code: dict[str, Any] = field(default_factory=dict)
    prefect_api: str = ""
    pg: Any = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def my_processes(ctx: Context) -> tuple[set[int], set[int]]:
    """Sessions of this harness and its children, and the PostgreSQL postmaster as a parent
    (its children each start a session of their own)."""
    sessions = {os.getsid(0)} | {proc.pid for proc in ctx.children.procs}
    parents: set[int] = set()
    if ctx.pg is not None and ctx.pg.executor is not None:
        pid_file = Path(ctx.pg.executor.datadir) / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents.add(int(pid_file.read_text().split()[0]))
    return sessions, parents


def _foreign(ctx: Context) -> ForeignCpu:
    meter = ForeignCpu(lambda: my_processes(ctx))
    meter.sample()
    return meter


def _foreign_record(meter: ForeignCpu, wall: float) -> dict[str, Any]:
    meter.sample()
    used = meter.seconds()
    cpus = os.cpu_count() or 1
    return {"cpu_seconds": round(used, 1), "share_of_machine": round(used / (wall * cpus), 3),
            "top": {k: round(v, 1) for k, v in meter.top.items()}}  # fmt: skip


def _clean_env() -> dict[str, str]:
    drop = ("PREFECT_", "ROOTFI_", "SOURCE_DATABASE_URL", "SOURCE_TABLE", "SOURCE_COLUMNS")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _pythonpath(ctx: Context) -> str:
    """The flow and the ceiling import the project from the snapshot, then bench/ from here."""
    return os.pathsep.join(dict.fromkeys([str(ctx.src), str(ROOT)]))


CODE_DIRS = ("flows", "tasks", "rootfi_sync")


def _digest(root: Path, paths: list[Path]) -> str:
    """sha256 (first 16 hex digits) of each file's path under `root` and bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def snapshot(src: Path, dest: Path) -> dict[str, Any]:
    """Copy the project's code (flows/, tasks/, rootfi_sync/) from `src`; describe what it is.

    Other people edit the tree while a benchmark runs: every run of one invocation imports
    this copy, so they all measure the same code, and the record says which code that was.
    The harness itself (bench/ of this tree, not copied: its subprocesses import it from
    here) is described too, by its own hash and git state.
    """
    for name in CODE_DIRS:
        shutil.copytree(src / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    # code_sha256 covers the same files as in earlier records, so hashes stay comparable.
    code = _digest(dest, [p for name in CODE_DIRS for p in sorted((dest / name).rglob("*.py"))])
    changed = git(src, "status", "--porcelain", "--", *CODE_DIRS)
    bench_changed = git(ROOT, "status", "--porcelain", "--untracked-files=no", "--", "bench")
    return {
        "src": str(src), "commit": git(src, "rev-parse", "--short", "HEAD"),
        "uncommitted": changed.splitlines(), "code_sha256": code,
        "bench": {"commit": git(ROOT, "rev-parse", "--short", "HEAD"),
                  "uncommitted": bench_changed.splitlines(),
                  "sha256": _digest(ROOT, sorted(BENCH.glob("*.py")))},
    }  # fmt: skip


def _timeout(args: argparse.Namespace, n: int) -> float:
    return 120.0 + n / args.min_rate


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- one run


def make_source(ctx: Context, db: str, n: int, run_dir: Path) -> tuple[str, Any]:
    from bench.source import seed

    if db == "sqlite":
        url, janitor = f"sqlite:///{run_dir / 'source.db'}", None
    else:
        url, janitor = ctx.pg.create_database(f"n{n}")
    started = time.perf_counter()
    seed(url, ctx.rows[:n])
    _log(f"  seeded {n} rows into {db} in {time.perf_counter() - started:.1f}s (untimed)")
    return url, janitor


def _start_sandbox(ctx: Context, run_dir: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    """A fresh sandbox subprocess with the run's latency and async delay; it and its URL."""
    args = ctx.args
    return start_sandbox(
        ctx.children, ctx.python, latency=args.latency, api_key=API_KEY, company_id=COMPANY_ID,
        async_delay=args.async_delay, env=_clean_env(), log=run_dir / f"sandbox-{name}.log",
    )  # fmt: skip


def _wait(
    proc: subprocess.Popen[bytes], deadline: float, interval: float, tick: Callable[[float], None]
) -> bool:
    """Call `tick(now)` every `interval` s while `proc` runs; True if `deadline` came first."""
    while proc.poll() is None:
        now = time.perf_counter()
        if now > deadline:
            return True
        tick(now)
        time.sleep(interval)
    return False


def run_ceiling(ctx: Context, mode: str, n: int, url: str, run_dir: Path) -> dict[str, Any]:
    from rootfi_sandbox.adminclient import SandboxAdmin

    args = ctx.args
    sandbox, base = _start_sandbox(ctx, run_dir, "ceiling")
    out = run_dir / "ceiling.json"
    argv = [
        ctx.python, "-m", "bench.ceiling", "--db-url", url, "--base-url", f"{base}/v3",
        "--mode", mode, "--concurrency", str(args.concurrency), "--batch-size",
        str(args.batch_size), "--api-key", API_KEY, "--company-id", str(COMPANY_ID),
        "--out", str(out),
    ]  # fmt: skip
    env = _clean_env() | {"PYTHONPATH": _pythonpath(ctx)}
    try:
        proc = ctx.children.start(argv, env=env, log=run_dir / "ceiling.log", cwd=run_dir)
        meter, started = _foreign(ctx), time.perf_counter()
        timed_out = _wait(proc, started + _timeout(args, n), 1.0, lambda _: meter.sample())
        foreign = _foreign_record(meter, time.perf_counter() - started)
        ctx.children.stop(proc)  # ends it if it timed out, else reaps it
        if timed_out:
            return {"error": "timeout", "customers_per_second": None, "foreign_cpu": foreign}
        if proc.returncode != 0 or not out.exists():
            tail = (run_dir / "ceiling.log").read_text(errors="replace")[-2000:]
            return {"error": f"exit {proc.returncode}: {tail}", "customers_per_second": None}
        result: dict[str, Any] = json.loads(out.read_text())
        with SandboxAdmin(base) as admin:
            result["sandbox_customers"] = admin.state()["customers"]
        result["foreign_cpu"] = foreign
        return result
    finally:
        ctx.children.stop(sandbox)


def _stored(admin: SandboxAdmin) -> int | None:
    try:
        return int(admin.state()["customers"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def _task_runs(api: str, flow_run_id: str) -> dict[str, int]:
    """Task runs the Prefect server recorded for the flow run, by task name (settles first)."""
    names: dict[str, int] = {}
    last, stable = -1, 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and stable < 2:
        total = httpx.post(
            f"{api}/task_runs/count", json={"flow_runs": {"id": {"any_": [flow_run_id]}}},
            timeout=30,
        ).json()  # fmt: skip
        stable = stable + 1 if total == last else 0
        last = total
        time.sleep(1.0)
    for name in ("claim-batch", "build-payloads", "record-intent", "send-batch",
                 "record-outcomes", "publish-report"):  # fmt: skip
        names[name] = httpx.post(
            f"{api}/task_runs/count",
            json={"flow_runs": {"id": {"any_": [flow_run_id]}},
                  "task_runs": {"name": {"like_": f"{name}%"}}},
            timeout=30,
        ).json()  # fmt: skip
    names["total"] = last
    return names


def run_pipeline(ctx: Context, mode: str, n: int, url: str, run_dir: Path) -> dict[str, Any]:
    from rootfi_sandbox.adminclient import SandboxAdmin

    from bench.source import ledger_state

    args = ctx.args
    sandbox, base = _start_sandbox(ctx, run_dir, "flow")
    home = run_dir / "prefect-home"
    home.mkdir()
    env = _clean_env() | {
        "PYTHONPATH": _pythonpath(ctx), "PREFECT_API_URL": ctx.prefect_api,
        "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "SOURCE_DATABASE_URL": url, "ROOTFI_BASE_URL": f"{base}/v3", "ROOTFI_API_KEY": API_KEY,
        "ROOTFI_COMPANY_ID": str(COMPANY_ID), "ROOTFI_BATCH_SIZE": str(args.batch_size),
        "ROOTFI_WRITE_MODE": mode, "ROOTFI_CONCURRENCY": str(args.concurrency),
        "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
    }  # fmt: skip
    out = run_dir / "flow.json"
    result: dict[str, Any] = {}
    samples: list[tuple[float, int]] = []
    stored: list[tuple[float, int | None]] = []
    hwm = 0
    # The final listing of every stored customer can take seconds at N=100,000.
    sampler, checker = SandboxAdmin(base, timeout=2.0), SandboxAdmin(base, timeout=300.0)
    try:
        meter, started = _foreign(ctx), time.perf_counter()
        proc = ctx.children.start(
            [ctx.python, "-m", "bench.run_flow", str(out)], env=env, log=run_dir / "flow.log",
            cwd=run_dir,
        )  # fmt: skip
        next_count = started

        def sample(now: float) -> None:
            nonlocal hwm, next_count
            status = read_status(proc.pid)
            if status:
                hwm = max(hwm, status.get("VmHWM", 0))
                samples.append((round(now - started, 2), status.get("VmRSS", 0)))
            if now >= next_count:  # customers created so far, for the throughput over time
                stored.append((round(now - started, 1), _stored(sampler)))
                next_count = now + STORED_SAMPLE_SECONDS
                meter.sample()

        timed_out = _wait(proc, started + _timeout(args, n), RSS_SAMPLE_SECONDS, sample)
        wall = time.perf_counter() - started
        result["foreign_cpu"] = _foreign_record(meter, wall)
        ctx.children.stop(proc)  # ends it if it timed out, else reaps it
        result["wall_seconds"] = wall
        result["vmhwm_sampled_kib"] = hwm
        result["rss_samples"] = samples[:: max(1, len(samples) // 400)]
        result["stored_samples"] = stored
        result["exit_code"] = proc.returncode
        result["timed_out"] = timed_out
        if out.exists():
            result |= json.loads(out.read_text())
        elif not timed_out:
            tail = (run_dir / "flow.log").read_text(errors="replace")[-3000:]
            result["error"] = f"exit {proc.returncode}: {tail}"
        ledger, synced_ids = ledger_state(url, COMPANY_ID)
        result["ledger"] = ledger
        state = checker.state()
        customers = checker.customers(COMPANY_ID)
        result["sandbox_customers"] = state["customers"]
        result["sandbox_requests"] = state["requests"]  # what the run spent of a key's budget
    finally:
        sampler.close()
        checker.close()
        ctx.children.stop(sandbox)
    counts = result.get("counts") or {}
    settled = ledger.get("SYNCED", 0) + ledger.get("FAILED", 0)
    if counts.get("duration_seconds"):
        result["customers_per_second"] = n / counts["duration_seconds"]
    else:  # cut short: what it settled over the time it had
        result["customers_per_second"] = settled / wall if wall else None
    result["settled"] = settled
    # Exactly once: the SYNCED rows' rootfi_ids are the stored customers' ids, one for one,
    # and no email is stored twice.
    stored_ids = sorted(str(c["rootfi_id"]) for c in customers)
    emails = Counter(c.get("email") for c in customers)
    result["rootfi_ids_match"] = sorted(synced_ids) == stored_ids
    result["duplicate_emails"] = sum(k - 1 for k in emails.values() if k > 1)
    result["exactly_once"] = (
        settled == n and result["rootfi_ids_match"] and result["duplicate_emails"] == 0
    )
    if result.get("flow_run_id"):
        result["task_runs"] = _task_runs(ctx.prefect_api, result["flow_run_id"])
    return result


def run_one(ctx: Context, db: str, mode: str, n: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{db}-{mode}-{n}-", dir=ctx.tmp))
    url, janitor = make_source(ctx, db, n, run_dir)
    try:
        ceiling: dict[str, Any] = {"customers_per_second": None, "skipped": True}
        if not ctx.args.no_ceiling:
            _log(f"  ceiling {db}/{mode}/{n} ...")
            ceiling = run_ceiling(ctx, mode, n, url, run_dir)
        _log(f"  ceiling: {_fmt(ceiling.get('customers_per_second'))}/s "
             f"{ceiling.get('error') or ''}")  # fmt: skip
        _log(f"  pipeline {db}/{mode}/{n} ...")
        pipeline = run_pipeline(ctx, mode, n, url, run_dir)
    finally:
        if janitor is not None:
            janitor.drop()
    record = {
        "db": db, "mode": mode, "n": n, "latency": ctx.args.latency,
        "concurrency": ctx.args.concurrency, "batch_size": ctx.args.batch_size,
        "async_delay": ctx.args.async_delay, "ceiling": ceiling, "pipeline": pipeline,
    }  # fmt: skip
    p, c = pipeline.get("customers_per_second"), ceiling.get("customers_per_second")
    record["ratio"] = p / c if p and c else None
    return record


# --------------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def peak_mib(record: dict[str, Any]) -> float | None:
    # Not ru_maxrss: after fork+exec it also carries the forking harness's RSS (see run_flow).
    kib = record["pipeline"].get("vmhwm_kib") or record["pipeline"].get("vmhwm_sampled_kib")
    return kib / 1024 if kib else None


def rss_ratios(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Peak RSS at the largest N over that at the smallest, per (db, mode)."""
    ratios = {}
    for key in {(r["db"], r["mode"]) for r in records}:
        runs = sorted((r for r in records if (r["db"], r["mode"]) == key), key=lambda r: r["n"])
        low, high = peak_mib(runs[0]), peak_mib(runs[-1])
        if len(runs) > 1 and low and high:
            ratios[key] = high / low
    return ratios


def table(records: list[dict[str, Any]]) -> str:
    head = ("| db | mode | N | pipeline c/s | ceiling c/s | ratio | flow s | wall s | "
            "peak RSS MiB | RSS ratio | extract s | transform s | load s | write_back s | "
            "task runs | API requests | checks |")  # fmt: skip
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    ratios = rss_ratios(records)
    for r in records:
        p, c = r["pipeline"], r["ceiling"]
        phases = (p.get("counts") or {}).get("phase_seconds", {})
        largest = max(x["n"] for x in records if (x["db"], x["mode"]) == (r["db"], r["mode"]))
        rss_ratio = ratios.get((r["db"], r["mode"])) if r["n"] == largest else None
        checks = "ok" if p.get("exactly_once") else f"settled {p.get('settled')}/{r['n']}"
        if p.get("timed_out"):
            checks += " TIMEOUT"
        for who, part in (("pipeline", p), ("ceiling", c)):
            share = (part.get("foreign_cpu") or {}).get("share_of_machine") or 0
            if share > FOREIGN_SHARE_FLAG:
                checks += f" ({who} disturbed: {share:.0%} CPU by others)"
        duration = (p.get("counts") or {}).get("duration_seconds")
        lines.append(
            f"| {r['db']} | {r['mode']} | {r['n']:,} | {_fmt(p.get('customers_per_second'))} | "
            f"{_fmt(c.get('customers_per_second'))} | "
            f"{_fmt(r['ratio'] * 100 if r['ratio'] else None)}% | {_fmt(duration, 1)} | "
            f"{_fmt(p.get('wall_seconds'), 1)} | {_fmt(peak_mib(r))} | "
            f"{_fmt(rss_ratio, 2)} | "
            + " | ".join(_fmt(phases.get(ph), 1) for ph in PHASES)
            + f" | {(p.get('task_runs') or {}).get('total', '-')}"
            + f" | {_fmt((p.get('sandbox_requests') or {}).get('total'))} | {checks} |"
        )
    return "\n".join(lines)


def _rate_over_time(samples: list[list[Any]]) -> tuple[list[float], list[float]]:
    """Customers created per second between consecutive sandbox counts, at the midpoints."""
    points = [(t, c) for t, c in samples if c is not None]
    pairs = itertools.pairwise(points)
    out = [((t0 + t1) / 2, (c1 - c0) / (t1 - t0)) for (t0, c0), (t1, c1) in pairs if t1 > t0]
    return [t for t, _ in out], [r for _, r in out]


def chart(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right, late) = plt.subplots(1, 3, figsize=(17, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = sorted({(r["db"], r["mode"]) for r in records})
    for i, key in enumerate(keys):
        runs = sorted((r for r in records if (r["db"], r["mode"]) == key), key=lambda r: r["n"])
        ns = [r["n"] for r in runs]
        color, label = colors[i % len(colors)], f"{key[0]} / {key[1]}"
        left.plot(ns, [r["pipeline"].get("customers_per_second") or 0 for r in runs], "o-",
                  color=color, label=f"{label}: pipeline")  # fmt: skip
        left.plot(ns, [r["ceiling"].get("customers_per_second") or 0 for r in runs], "s--",
                  color=color, alpha=0.6, label=f"{label}: ceiling")  # fmt: skip
        right.plot(ns, [peak_mib(r) or 0 for r in runs], "o-", color=color, label=label)
        t, rate = _rate_over_time(runs[-1]["pipeline"].get("stored_samples") or [])
        late.plot(t, rate, "-", color=color, label=f"{label}, N={runs[-1]['n']:,}")
    a = records[0]
    left.set(xscale="log", yscale="log", xlabel="customers (N)", ylabel="customers / second",
             title=f"Throughput (latency {a['latency']}s, concurrency {a['concurrency']}, "
                   f"batch {a['batch_size']})")  # fmt: skip
    right.set(xscale="log", xlabel="customers (N)", ylabel="MiB",
              title="Peak RSS of the flow process")  # fmt: skip
    right.set_ylim(bottom=0)
    late.set(xlabel="seconds since the flow process started",
             ylabel="customers created / second (sandbox)",
             title="Pipeline rate during the largest run")  # fmt: skip
    late.set_ylim(bottom=0)
    for ax in (left, right, late):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> dict[str, Any]:
    import prefect

    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal")), "0",
    )  # fmt: skip
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    return {
        "nproc": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1), "cpu": cpu,
        "python": platform.python_version(), "prefect": prefect.__version__,
        "platform": platform.platform(),
    }  # fmt: skip


# --------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"],
                        default=["sqlite", "postgres"])  # fmt: skip
    parser.add_argument("--mode", nargs="+", choices=["single", "batch"],
                        default=["single", "batch"])  # fmt: skip
    parser.add_argument("--latency", type=float, default=0.02,
                        help="sandbox latency added to every request, seconds")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--async-delay", type=float, default=0.2,
                        help="sandbox delay before an async write runs (its default)")  # fmt: skip
    parser.add_argument("--min-rate", type=float, default=50.0,
                        help="a subprocess gets 120 s + N / this many seconds")  # fmt: skip
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--src", type=Path, default=ROOT,
                        help="benchmark flows/, tasks/, rootfi_sync/ of this tree (a copy is "
                             "taken at start; another tree A/Bs a proposed change)")  # fmt: skip
    parser.add_argument("--no-ceiling", action="store_true", help="run the pipeline alone")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        metavar="RESULTS_JSON",
        help="run nothing: print the table (and --chart) of earlier results",
    )
    parser.add_argument("--chart", action="store_true",
                        help=f"draw {BENCH / 'throughput_memory.png'}")  # fmt: skip
    parser.add_argument("--chart-path", type=Path, default=BENCH / "throughput_memory.png")
    return parser.parse_args(argv)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def report(args: argparse.Namespace) -> int:
    records = [r for path in args.report for r in json.loads(path.read_text())["records"]]
    print(table(records))
    if args.chart:
        chart(records, args.chart_path)
        print(f"\nchart: {args.chart_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report:
        return report(args)
    signal.signal(signal.SIGTERM, _on_sigterm)
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        args=args, children=Children(), tmp=Path(tempfile.mkdtemp(prefix="rootfi-bench-")),
        python=sys.executable,
    )  # fmt: skip
    records: list[dict[str, Any]] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        ctx.src = ctx.tmp / "src"
        ctx.code = snapshot(args.src.resolve(), ctx.src)
        _log(
            f"benchmarking a copy of {ctx.code['src']} at {ctx.code['commit']} "
            f"(+{len(ctx.code['uncommitted'])} uncommitted, code {ctx.code['code_sha256']})"
        )
        sys.path.insert(0, str(ctx.src))  # seeding and ledger checks use the same code
        started = time.perf_counter()
        from bench.source import make_rows  # after the path change: the snapshot's code

        ctx.rows = make_rows(max(args.n))
        _log(f"made {len(ctx.rows)} synthetic customers in {time.perf_counter() - started:.1f}s")
        prefect_bin = str(Path(sys.executable).parent / "prefect")
        _, ctx.prefect_api = start_prefect_server(
            ctx.children, prefect_bin, home=ctx.tmp / "prefect-server-home", env=_clean_env(),
            log=ctx.tmp / "prefect-server.log",
        )  # fmt: skip
        _log(f"prefect server up at {ctx.prefect_api}")
        if "postgres" in args.db:
            from bench.pg import PostgresServer

            ctx.pg = PostgresServer().__enter__()
            _log(f"postgres up on port {ctx.pg.executor.port}")
        for db in args.db:
            for mode in args.mode:
                for n in sorted(args.n):
                    _log(f"run {db} / {mode} / N={n:,}")
                    record = run_one(ctx, db, mode, n)
                    records.append(record)
                    (args.out / f"{stamp}-{db}-{mode}-{n}.json").write_text(
                        json.dumps(record, indent=1, default=str)
                    )
                    p = record["pipeline"]
                    _log(f"  pipeline {_fmt(p.get('customers_per_second'))}/s, ceiling "
                         f"{_fmt(record['ceiling'].get('customers_per_second'))}/s, ratio "
                         f"{_fmt((record['ratio'] or 0) * 100)}%, peak RSS "
                         f"{_fmt(peak_mib(record))} MiB")  # fmt: skip
    except KeyboardInterrupt:
        _log("interrupted: stopping every child process")
        return 130
    finally:
        ctx.children.stop_all()
        if ctx.pg is not None:
            ctx.pg.close()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        if records:
            summary = {"machine": machine(), "argv": sys.argv, "code": ctx.code,
                       "records": records}  # fmt: skip
            (args.out / f"{stamp}-results.json").write_text(
                json.dumps(summary, indent=1, default=str)
            )
            (args.out / "results.json").write_text(json.dumps(summary, indent=1, default=str))
            print()
            print(table(records))
            if args.chart:
                chart(records, args.chart_path)
                print(f"\nchart: {args.chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
