"""What the benchmarks share: child processes (each in a session of its own, stopped by its
process group, never by name), a sandbox and a Prefect server in subprocesses, a seeded
source, the ledger's rows, the CPU other people's processes took, the JSON record; and
`python -m bench.common OUT.json`: the real flow once, configured by the environment (the
harness starts it with `clean_env()` plus the settings of the run it measures)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
API_KEY, COMPANY_ID = "bench-key", 1089
LEDGER = "rootfi_customer_sync"


class Children:
    """The processes a benchmark started; `stop` ends one (its group), `stop_all` every one."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGINT the child's group, SIGKILL it 10 s later if the child is still there."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            if proc.poll() is None:  # once reaped, its group id may be someone else's
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def session_cpu_seconds(session: int) -> float:
    """CPU seconds (user and system) used so far by the live processes of a session (a child
    started by `Children` leads one: its pid)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def clean_env() -> dict[str, str]:
    """This environment without a developer's Prefect, RootFi, source or ledger settings."""
    drop = ("PREFECT_", "ROOTFI_", "SOURCE_", "LEDGER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def start_sandbox(
    children: Children,
    work: Path,
    *,
    latency: float = 0.0,
    rate_limit: int | None = None,
    companies: Sequence[int] = (COMPANY_ID,),
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m rootfi_sandbox` in memory (async writes after 0.2 s), its key reaching
    `companies`; it and its URL."""
    log = work / f"sandbox-{time.monotonic_ns()}.log"
    argv = [
        sys.executable,
        "-m",
        "rootfi_sandbox",
        "--port",
        "0",
        "--latency",
        str(latency),
        "--api-key",
        API_KEY,
    ]
    for company in companies:
        argv += ["--company-id", str(company)]
    if rate_limit is not None:
        argv += ["--rate-limit", str(rate_limit)]
    proc = children.start(argv, env=clean_env() | {"COLUMNS": "200"}, log=log)
    found: list[str] = []

    def announced() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox exited ({proc.returncode}); see {log}")
        found.extend(re.findall(r"http://127\.0\.0\.1:\d+", log.read_text(errors="replace")))
        return bool(found) and _answers(f"{found[0]}/_sandbox/state")

    wait_until(announced, 60, "sandbox")
    return proc, found[0]


RECORDS_NOTHING = {
    f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "false"
    for service in ("TASK_RUN_RECORDER", "EVENT_PERSISTER", "TRIGGERS")
}
"""A Prefect server that records no task run, stores no event and evaluates no trigger: a
probe of what recording costs, never a setup to run flows on (`bench.pipeline --probe`)."""


def start_prefect(
    children: Children, work: Path, settings: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`prefect server start` on a free port with a PREFECT_HOME of its own (and `settings`):
    its process and its API URL."""
    from tests.servers import free_port

    port = free_port()
    env = (
        clean_env()
        | {
            "PREFECT_HOME": str(work / "prefect-server"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
        | dict(settings or {})
    )
    argv = [str(Path(sys.executable).with_name("prefect")), "server", "start", "--port", str(port)]
    proc = children.start(argv, env=env, log=work / "prefect-server.log")
    api = f"http://127.0.0.1:{port}/api"
    wait_until(lambda: _answers(f"{api}/health"), 120, "prefect server")
    return proc, api


def seed_source(url: str, n: int, *, bad_share: float = 0.05) -> None:
    """Create the customers table and the ledger; insert N synthetic customers (ids 1..N)."""
    from rootfi_sandbox.customers import fake_customers

    from rootfi_sync.cli.seed import seed_into
    from rootfi_sync.ledger.tables import source_table
    from rootfi_sync.settings import load_settings

    # A bad row's 300-character name would not fit PostgreSQL's VARCHAR(255): cut to fit.
    lengths = ((c.key, getattr(c.type, "length", None)) for c in source_table().columns)
    cut: dict[str, int] = {key: length for key, length in lengths if length}
    rows = (
        {k: v[: cut[k]] if k in cut and isinstance(v, str) else v for k, v in row.items()}
        for row in fake_customers(n, bad_share=bad_share)
    )
    seed_into(load_settings(source_database_url=url), rows, yes_into=url)


def ledger_rows(url: str) -> list[tuple[str, str | None]]:
    """(status, rootfi_id) of every ledger row of the company."""
    engine = sa.create_engine(url)
    query = sa.text(f"SELECT status, rootfi_id FROM {LEDGER} WHERE company_id = :c")
    try:
        with engine.connect() as conn:
            return [(str(s), r) for s, r in conn.execute(query, {"c": COMPANY_ID})]
    finally:
        engine.dispose()


class OthersCpu:
    """The share of the machine's CPU that processes not of this benchmark took meanwhile.

    Ours: this session, the sessions of the children, and the children of `parents()` (the
    PostgreSQL postmaster daemonizes). The machine is shared: a figure taken while others
    used a large share is marked so, not trusted.
    """

    def __init__(self, children: Children, parents: Callable[[], set[int]] = set) -> None:
        self._children, self._parents = children, parents
        self._first: dict[tuple[int, str], int] = {}
        self._last: dict[tuple[int, str], int] = {}
        self._started, self._primed = time.monotonic(), False
        self.sample()
        self._primed = True

    def sample(self) -> None:
        ours = {os.getsid(0), *(p.pid for p in self._children.procs)}
        parents = self._parents()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                pid, ppid, session = int(stat.parent.name), int(fields[1]), int(fields[3])
                if session in ours or ppid in parents or pid in parents:
                    continue
                key, ticks = (pid, fields[19]), int(fields[11]) + int(fields[12])
                self._first.setdefault(key, ticks if not self._primed else 0)
                self._last[key] = ticks

    def share(self) -> float:
        """Their CPU seconds since the start over the machine's (wall seconds times CPUs)."""
        self.sample()
        used = sum(v - self._first[k] for k, v in self._last.items()) / os.sysconf("SC_CLK_TCK")
        return used / ((time.monotonic() - self._started) * (os.cpu_count() or 1))


def write_record(name: str, result: Mapping[str, Any], out: Path = OUT) -> Path:
    """bench/out/<time>-<name>.json: the result, the command, the commit, the machine."""

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.json"
    record = {
        "argv": sys.argv,
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **result,
    }
    path.write_text(json.dumps(record, indent=1, default=str))
    return path


def run_flow(out: Path) -> int:
    """Run `sync_customers` once; write its state, counts, peak RSS and CPU seconds (over the
    flow's call: not the imports before it) to `out`."""
    from flows.sync_customers import sync_customers

    if "no-vouch" in os.environ.get("BENCH_PROBES", "").split(","):
        _vouch_without_the_ledger()
    started = time.process_time()
    state = sync_customers(return_state=True)
    cpu = time.process_time() - started
    result = state.result(raise_on_failure=False)
    counts = result if isinstance(result, dict) else None
    # Peak RSS since exec; not ru_maxrss, which keeps the forking parent's.
    hwm = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    record = {
        "state": state.type.value,
        "counts": counts,
        "vmhwm_kib": int(hwm.group(1)) if hwm else 0,
        "cpu_seconds": cpu,
        "error": None if counts else repr(result)[:2000],
    }
    out.write_text(json.dumps(record, default=str))
    return 0 if state.is_completed() else 1


def _vouch_without_the_ledger() -> None:
    """A probe, never the product: each lease is vouched for with no ledger read, by this
    process's clock (what the read before each POST costs; `bench.pipeline --probe no-vouch`)."""
    from datetime import datetime

    from rootfi_sync.ledger.statements import utcnow
    from rootfi_sync.run.parts import RunBook

    def vouch(self: RunBook, customer_ids: Sequence[str]) -> tuple[set[str], datetime]:
        return set(customer_ids), utcnow()

    RunBook.vouch = vouch  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.common",
        description="Run the real sync_customers flow once and write its state, counts and "
        "peak RSS to OUT as JSON. Every setting (source, ledger, RootFi, Prefect) is read from "
        "the environment, so this is meant to be started by bench.pipeline or bench.fault_run, "
        "which give it clean_env() plus the settings of the run they measure; started by hand "
        "it syncs with whatever settings your shell has.",
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="where to write the JSON record")
    args = parser.parse_args(argv)
    return run_flow(args.out)


if __name__ == "__main__":
    sys.exit(main())
