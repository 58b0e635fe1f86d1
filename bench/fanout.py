"""A fan-out tick over many companies on one key: what it costs in API requests and runs.

    python -m bench.fanout [--n 100 1000 10000] [--new 5 10 50] [--synced 10] [--ledger-apart]
        [--db sqlite postgres] [--workers 2]
    python -m bench.fanout --due-only --n 10000 --new 50 --synced 100 [--ledger-apart]
        [--db sqlite postgres] [--due-against OLD_DUE.py]

For each N (with the K of the same position in --new): a sandbox in a subprocess whose key
reaches companies 1..N (no latency, no rate limit), one `prefect server start` for the whole
invocation, and a SQLite source with a company column holding `--synced` customers per
company that the ledger already has SYNCED (inserted untimed), plus K new customers, one in
each of K companies spread over the N. Then two ticks:

* tick 1: the K new customers are due;
* tick 2: nothing is due.

By default each tick is `sync_all_companies` with `deployment=None` in this process (its
groups are subflows here). With `--workers COUNT` it is what a deployment does: once per
invocation, `rootfi-sync setup`'s work pool and Secret block (the sandbox's key) and `prefect
deploy` of all-companies and manual-sync from a clone of a snapshot of the working tree (the
e2e tests' `snapshot_repository`; every run clones it again in its pull step); per N, COUNT
`prefect worker start --pool rootfi-sync --limit 3` in a folder of their own, with the
source, the sandbox and no key in their environment (new runs looked for every 2 s, logs at
WARNING); each tick is a run of all-companies (max_concurrent 4) whose groups are runs of
manual-sync, all taken by those workers, each in a process of its own.

Reported per tick: API requests by kind (in this process: counted on every request the
project's httpx clients send to the sandbox; with workers: counted by the sandbox, its
`GET /_sandbox/state` before and after, by its own kinds), child runs (distinct flow runs in
the fan-out's rows; with workers, those of its table artifact), wall seconds (with workers:
from asking for the run to the end time the server gives it), the due query's own seconds
(`find_due`, timed apart on the same data), peak RSS (of this process during the tick, VmHWM
reset before it; with workers, the peak of the summed RSS of the workers and every process
under them, sampled every 0.2 s, and in the JSON each one's own peak), requests per new
customer, and the share of the machine's CPU other people's processes took meanwhile; with
workers the JSON also has each child run's seconds from creation to start and from start to
end. Checks: every new customer stored once, every ledger row SYNCED (with workers: and both
fan-out runs Completed). Prints a Markdown table (its "where": in-process or COUNT process
workers) and writes the records to bench/out/<time>-fanout.json. With --due-only: no
sandbox, no Prefect, no tick; the due query alone on the seeded data (best of three), e.g. on
1,000,000 rows, on SQLite and/or a PostgreSQL server started as the test suite starts it
(`tests.postgres`); with --due-against, also the `due_work` of another copy of
`rootfi_sync/ledger/due.py` (e.g. `git show <commit>:rootfi_sync/ledger/due.py >
/tmp/due_old.py`), timed on the same data, the two runs interleaved.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import (
    API_KEY,
    Children,
    OthersCpu,
    clean_env,
    start_prefect,
    start_sandbox,
    wait_until,
    write_record,
)

TENANT = "tenant"


class RequestCount:
    """Counts the requests httpx clients in this process send to one base URL, by kind."""

    def __init__(self) -> None:
        self.base = ""
        self.kinds: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._send = httpx.Client.send

    @contextmanager
    def counting(self, base: str) -> Iterator[Counter[str]]:
        """Count the requests to `base` made in the block; yield the counter."""
        self.base, self.kinds = base, Counter()
        count = self

        def send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            if str(request.url).startswith(count.base):
                with count._lock:
                    count.kinds[kind(request)] += 1
            return count._send(client, request, **kwargs)

        httpx.Client.send = send  # type: ignore[method-assign,assignment]
        try:
            yield self.kinds
        finally:
            httpx.Client.send = self._send  # type: ignore[method-assign]


def kind(request: httpx.Request) -> str:
    """A request's kind: its method and path, ids left out (e.g. GET core/companies)."""
    path = re.sub(r"/[^/]*\d[^/]*", "/{id}", request.url.path.split("/v3/", 1)[-1])
    return f"{request.method} {path}"


def seed(url: str, ledger_url: str | None, companies: int, synced: int, new: int) -> list[int]:
    """Seed the source and the ledger (untimed); return the companies given a new customer."""
    from rootfi_sync.ledger.db import create_sample, init_db, make_engine, sample_for
    from rootfi_sync.ledger.tables import ledger
    from rootfi_sync.settings import load_settings

    settings = load_settings(
        source_database_url=url, source_company_column=TENANT, ledger_database_url=ledger_url
    )
    create_sample(settings)
    init_db(settings)
    table = sample_for(settings)
    step = max(1, companies // max(new, 1))
    lucky = list(range(1, companies + 1, step))[:new]
    now = datetime.now(UTC)
    source = make_engine(url)
    book = make_engine(ledger_url) if ledger_url else source
    with source.begin() as src, book.begin() if ledger_url else nullcontext(src) as led:
        for first in range(1, companies + 1, 1000):  # a thousand companies at a time
            chunk = range(first, min(first + 1000, companies + 1))
            rows = [_row(c * 1_000_000 + i, c) for c in chunk for i in range(synced)]
            if rows:
                src.execute(table.insert(), rows)
                led.execute(ledger.insert(), [_synced(r, now) for r in rows])
        src.execute(table.insert(), [_row(c * 1_000_000 + synced, c) for c in lucky])
    source.dispose()
    book.dispose()
    return lucky


def _synced(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"customer_id": str(row["id"]), "company_id": row["company_id"], "status": "SYNCED"} | {
        "rootfi_id": f"old-{row['id']}",
        "attempts": 1,
        "updated_at": now,
    }


CREATED = datetime(2026, 1, 1)


def _row(key: int, company: int) -> dict[str, Any]:
    created = CREATED + timedelta(seconds=key % 1_000_000, minutes=company)
    return {
        "id": key,
        "company_id": company,
        "name": f"Customer {key}",
        "email": f"c{key}@x.io",
    } | {"created_at": created}


def clear_peak() -> None:
    """Reset this process's VmHWM to its current RSS (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_mib() -> float:
    found = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(found.group(1)) / 1024 if found else 0.0


def tick(count: RequestCount, api: str, children: Children) -> dict[str, Any]:
    """One fan-out tick in this process: its requests, child runs, wall seconds, peak RSS,
    and the share of the machine's CPU other people's processes took meanwhile."""
    from flows.sync_all_companies import sync_all_companies

    clear_peak()
    others = OthersCpu(children)
    started = time.monotonic()
    with count.counting(api) as kinds:
        state = sync_all_companies(deployment=None, return_state=True)
    wall = time.monotonic() - started
    rows = state.result(raise_on_failure=False)
    rows = rows if isinstance(rows, list) else []
    return {
        "state": state.type.value,
        "requests": dict(kinds),
        "total_requests": sum(kinds.values()),
        "companies_run": len(rows),
        "child_runs": len({r["flow_run_id"] for r in rows}),
        "synced": sum(r["synced"] for r in rows),
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(peak_mib(), 1),
        "others_cpu": round(others.share(), 2),
    }


WORKER_LIMIT = 3  # runs at a time on each worker, as tests/e2e's two workers take them
POOL, BRANCH = "rootfi-sync", "bench"  # prefect.yaml's pool; the snapshot's branch
FAN_OUT, FAN_OUT_ARTIFACT = "sync-all-companies/all-companies", "rootfi-sync-all-companies"


def prefect_cli() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def deploy(work: Path) -> None:
    """As docs/running-on-prefect.md has it done: `rootfi-sync setup`'s work pool and Secret
    block (the sandbox's key; no rate limit), then `prefect deploy` of all-companies and
    manual-sync from a fresh clone of a snapshot of this working tree (a local git
    repository, tests.e2e's), which every run's pull step clones again."""
    from pydantic import SecretStr

    from rootfi_sync.orchestration.prefect_setup import setup_prefect
    from tests.e2e.prefect_server import run, snapshot_repository

    setup_prefect(work_pool=POOL, api_key=SecretStr(API_KEY), rate_limit_per_minute=0)
    origin, clone = work / "origin", work / "deployer"
    origin.mkdir()
    snapshot_repository(origin, BRANCH)
    subprocess.run(["git", "clone", "-q", f"file://{origin}", str(clone)], check=True)
    env = clean_env() | {
        "PREFECT_API_URL": os.environ["PREFECT_API_URL"],
        "PREFECT_HOME": os.environ["PREFECT_HOME"],
        "ROOTFI_SYNC_REPOSITORY": f"file://{origin}",
        "ROOTFI_SYNC_BRANCH": BRANCH,
    }
    argv = [prefect_cli(), "--no-prompt", "deploy", "--name", "all-companies"]
    done = run([*argv, "--name", "manual-sync"], env, cwd=clone, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"prefect deploy failed:\n{done.stdout}\n{done.stderr}")


def start_workers(
    children: Children, work: Path, count: int, env: dict[str, str], tag: str
) -> list[subprocess.Popen[bytes]]:
    """`count` `prefect worker start --pool rootfi-sync --limit 3` in a folder of their own
    (neither this repository nor the deployer's clone), once the pool lists them all."""
    from prefect.client.orchestration import get_client

    home = work / "workers"
    home.mkdir(exist_ok=True)
    names = [f"{tag}-w{i}" for i in range(1, count + 1)]
    argv = [prefect_cli(), "worker", "start", "--pool", POOL, "--limit", str(WORKER_LIMIT)]
    procs = [
        children.start([*argv, "--name", name], env=env, log=home / f"{name}.log", cwd=home)
        for name in names
    ]

    def online() -> bool:
        for proc, name in zip(procs, names, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited; see {home / name}.log")
        with get_client(sync_client=True) as client:
            listed = {w.name for w in client.read_workers_for_work_pool(POOL)}
        return set(names) <= listed

    wait_until(online, 180, "workers")
    return procs


def worker_env(api: str, url: str, ledger_url: str | None, work: Path) -> dict[str, str]:
    """A worker's settings: the Prefect API, the source, RootFi, but no key (the Secret block
    has it); new runs looked for every 2 s (10 by default), as tests/e2e's workers do; logs at
    WARNING, as the in-process tick's."""
    env = clean_env() | {
        "PREFECT_API_URL": os.environ["PREFECT_API_URL"],
        "PREFECT_HOME": str(work / "prefect-workers"),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "SOURCE_DATABASE_URL": url,
        "SOURCE_COMPANY_COLUMN": TENANT,
        "ROOTFI_BASE_URL": api,
        "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
    }
    return env | ({"LEDGER_DATABASE_URL": ledger_url} if ledger_url else {})


class TreeRss:
    """The peak of the summed RSS of some processes and all their descendants (the workers
    and their runs' processes), sampled every 0.2 s, and each process's own peak (VmHWM)."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peak_kib = 0
        self.own_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRss:
        for pid in self.roots:  # their peaks from here on (Linux: clear_refs 5)
            with suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        kids: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError, ValueError, IndexError):
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(stat.parent.name))
        tree, todo = set(self.roots), list(self.roots)
        while todo:
            found = kids.get(todo.pop(), [])
            tree.update(found)
            todo.extend(found)
        total = 0
        for pid in tree:
            with suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                rss, hwm = (re.search(rf"{f}:\s+(\d+)", status) for f in ("VmRSS", "VmHWM"))
                total += int(rss.group(1)) if rss else 0
                if hwm:
                    self.own_kib[pid] = max(self.own_kib.get(pid, 0), int(hwm.group(1)))
        self.peak_kib = max(self.peak_kib, total)


def sandbox_kinds(base: str) -> Counter[str]:
    """The sandbox's requests under /v3 so far, by its kind (create, companies...)."""
    state = httpx.get(f"{base}/_sandbox/state", timeout=30).json()
    return Counter(state["requests"]["by_kind"])


def _seconds(since: datetime | None, until: datetime | None) -> float | None:
    return round((until - since).total_seconds(), 2) if since and until else None


def tick_on_workers(
    base: str, workers: list[subprocess.Popen[bytes]], children: Children
) -> dict[str, Any]:
    """One fan-out tick as a run of the all-companies deployment (max_concurrent 4) on the
    workers: its requests (counted at the sandbox), child runs, wall seconds from asking for
    the run to its end state, the peak summed RSS of the workers and their runs' processes,
    and the share of the machine's CPU other people's processes took meanwhile."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    from tests.e2e.prefect_server import start

    before = sandbox_kinds(base)
    others = OthersCpu(children, lambda: {w.pid for w in workers})
    with TreeRss([w.pid for w in workers]) as rss, get_client(sync_client=True) as client:
        asked = datetime.now(UTC)
        parent_id = start(FAN_OUT, max_concurrent=4)
        deadline = time.monotonic() + 900
        while not (parent := client.read_flow_run(parent_id)).state or not parent.state.is_final():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fan-out run {parent_id} not final after 900 s")
            time.sleep(1.0)  # the wall is the server's end time: no need to ask it more often
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])
            )
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[parent_id]))
        )
    kinds = sandbox_kinds(base) - before
    ended = parent.end_time or (parent.state.timestamp if parent.state else None)
    wall = _seconds(asked, ended) or 0.0
    rows = [r | {"synced": r.get("synced", 0)} for r in _artifact_rows(parent_id)]
    starts = sorted(s for r in runs if (s := _seconds(r.created, r.start_time)) is not None)
    lasted = sorted(s for r in runs if (s := _seconds(r.start_time, r.end_time)) is not None)
    roots = {w.pid for w in workers}
    return {
        "state": parent.state.type.value if parent.state else "UNKNOWN",
        "requests": dict(kinds),
        "total_requests": sum(kinds.values()),
        "companies_run": len(rows),
        "child_runs": len({r["flow_run_id"] for r in rows if r.get("flow_run_id")}),
        "child_runs_on_server": len(runs),
        "child_states": dict(Counter(r.state.type.value for r in runs if r.state)),
        "synced": sum(r["synced"] for r in rows),
        "wall_s": round(wall, 2),
        "parent_started_after_s": _seconds(asked, parent.start_time),
        "parent_ran_s": _seconds(parent.start_time, ended),
        "child_started_after_s": starts,  # each child: from its creation to its start
        "child_ran_s": lasted,  # each child: from its start to its end
        # A timeline from asking for the fan-out run: each child's creation, start and end,
        # each of the fan-out's task runs' start and end (where its own seconds went).
        "children_timeline_s": sorted(
            (
                [
                    _seconds(asked, r.created),
                    _seconds(asked, r.start_time),
                    _seconds(asked, r.end_time),
                ]
                for r in runs
            ),
            key=lambda times: times[0] or 0.0,
        ),
        "task_runs_timeline_s": sorted(
            ([_seconds(asked, t.start_time), _seconds(asked, t.end_time), t.name] for t in tasks),
            key=lambda times: times[0] or 0.0,
        ),
        "peak_rss_mib": round(rss.peak_kib / 1024, 1),
        "worker_peak_rss_mib": round(max(rss.own_kib.get(p, 0) for p in roots) / 1024, 1),
        "run_peak_rss_mib": round(
            max((v for p, v in rss.own_kib.items() if p not in roots), default=0) / 1024, 1
        ),
        "others_cpu": round(others.share(), 2),
    }


def _artifact_rows(flow_run_id: Any) -> list[dict[str, Any]]:
    """The rows of the fan-out run's table artifact (each company's end)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[FAN_OUT_ARTIFACT])),
        )
    data = found[0].data if found else []
    rows = json.loads(data) if isinstance(data, str) else data
    return list(rows) if isinstance(rows, list) else []


def due_seconds() -> float:
    """The due query alone, as the fan-out runs it (its task's function)."""
    from rootfi_sync.settings import load_settings
    from tasks.companies import find_due

    started = time.monotonic()
    find_due.fn(load_settings(), None)
    return round(time.monotonic() - started, 3)


def measure(
    children: Children,
    work: Path,
    n: int,
    k: int,
    synced: int,
    url: str,
    ledger_url: str | None,
    workers: int = 0,
) -> dict[str, Any]:
    """Seed, then two ticks: in this process, or with `workers` as runs of the deployments on
    that many process workers (started for this sandbox, stopped after)."""
    from rootfi_sync.ledger.db import make_engine
    from rootfi_sync.ledger.tables import ledger

    _, base = start_sandbox(children, work, companies=range(1, n + 1))
    api = f"{base}/v3"
    lucky = seed(url, ledger_url, n, synced, k)
    os.environ.update(
        SOURCE_DATABASE_URL=url,
        SOURCE_COMPANY_COLUMN=TENANT,
        ROOTFI_BASE_URL=api,
        ROOTFI_API_KEY=API_KEY,
        ROOTFI_RATE_LIMIT_PER_MINUTE="0",
    )
    if ledger_url:
        os.environ["LEDGER_DATABASE_URL"] = ledger_url
    else:
        os.environ.pop("LEDGER_DATABASE_URL", None)
    due_s = due_seconds()
    if workers:
        env = worker_env(api, url, ledger_url, work)
        fleet = start_workers(children, work, workers, env, f"n{n}-{time.monotonic_ns()}")
        try:
            first = tick_on_workers(base, fleet, children)
            second = tick_on_workers(base, fleet, children)
        finally:
            for worker in fleet:
                children.stop(worker)
    else:
        count = RequestCount()
        first, second = tick(count, api, children), tick(count, api, children)
    stored = httpx.get(api.removesuffix("/v3") + "/_sandbox/customers", timeout=30).json()["data"]
    engine = make_engine(ledger_url or url)
    with engine.connect() as conn:
        query = sa.select(ledger.c.status, sa.func.count()).group_by(ledger.c.status)
        states = {status: count for status, count in conn.execute(query)}
    engine.dispose()
    emails = Counter(c["email"] for c in stored)
    ok = (
        len(stored) == k
        and max(emails.values(), default=1) == 1
        and states == {"SYNCED": n * synced + k}
        and (not workers or all(t["state"] == "COMPLETED" for t in (first, second)))
    )
    return {
        "n": n,
        "new": k,
        "where": f"{workers} process workers" if workers else "in-process",
        "db": sa.make_url(url).get_backend_name(),
        "synced_before": n * synced,
        "ledger": "apart" if ledger_url else "beside",
        "due_query_s": due_s,
        "ticks": [first, second],
        "new_companies": lucky[:10],
        "ok": ok,
    }


DueWork = Callable[..., list[Any]]


def measure_due(
    url: str, ledger_url: str | None, n: int, k: int, synced: int, against: DueWork | None
) -> dict[str, Any]:
    """The due query alone (best of three) on N companies with `synced` customers each, K new;
    with `against`, that `due_work` too, each run interleaved with one of this one's."""
    from rootfi_sync.ledger.due import due_work
    from rootfi_sync.settings import load_settings

    seed(url, ledger_url, n, synced, k)
    settings = load_settings(
        source_database_url=url, source_company_column=TENANT, ledger_database_url=ledger_url
    )
    versions = {"now": due_work} | ({"against": against} if against else {})
    seconds: dict[str, list[float]] = {name: [] for name in versions}
    due: list[Any] = []
    for _ in range(3):
        for name, work in versions.items():
            started = time.monotonic()
            due = _due(settings, work)
            seconds[name].append(time.monotonic() - started)
            if name == "now":
                ok = len(due) == k and sum(d.customers for d in due) == k
                ok = ok and all(d.oldest is not None for d in due)
    rows = n * synced + k
    return {
        "n": n,
        "new": k,
        "rows": rows,
        "ledger": "apart" if apart_of(ledger_url) else "beside",
    } | {
        "db": url.split(":", 1)[0].split("+")[0],
        "due_query_s": round(min(seconds["now"]), 3),
        "against_s": round(min(seconds["against"]), 3) if against else None,
        "ok": ok,
    }


def apart_of(ledger_url: str | None) -> bool:
    return ledger_url is not None


def _due(settings: Any, work: DueWork) -> list[Any]:
    """What `tasks.companies.find_due` does, with `work` as its `due_work`."""
    from rootfi_sync.ledger import db_now
    from rootfi_sync.ledger.db import ledger_engine, source_engine, source_for

    engine = ledger_engine(settings)
    reader = source_engine(settings) if settings.ledger_apart else None
    try:
        with engine.connect() as conn:
            now = db_now(conn)
        return work(engine, source_for(settings), now, source_engine=reader)
    finally:
        engine.dispose()
        if reader is not None:
            reader.dispose()


def load_due_work(path: str) -> DueWork:
    """The `due_work` of another copy of rootfi_sync/ledger/due.py."""
    spec = importlib.util.spec_from_file_location("bench_due_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    found: DueWork = module.due_work
    return found


def due_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| db | N companies | source rows (and ledger rows) | K new | ledger | due query s "
        "| --due-against s | checks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['db']} | {r['n']:,} | {r['rows']:,} | {r['new']} | {r['ledger']} "
            f"| {r['due_query_s']} | {r['against_s'] if r['against_s'] is not None else '-'} "
            f"| {'ok' if r['ok'] else 'FAILED'} |"
        )
    return "\n".join(lines)


@contextmanager
def due_databases(
    work: Path, dbs: list[str], n: int, apart: bool
) -> Iterator[list[tuple[str, str | None]]]:
    """(source URL, ledger URL) of each database asked for: SQLite files, or a fresh database
    on one PostgreSQL server started for the invocation (its ledger beside it, or a SQLite
    file when `apart`)."""
    with ExitStack() as stack:
        urls: list[tuple[str, str | None]] = []
        for db in dbs:
            ledger_url = f"sqlite:///{work / f'ledger-{db}-{n}.db'}" if apart else None
            if db == "sqlite":
                urls.append((f"sqlite:///{work / f'source-{n}.db'}", ledger_url))
                continue
            from tests.postgres import PostgresServer, find_pg_ctl, server_url
            from tests.servers import database_name, throwaway_database

            pg_ctl = find_pg_ctl()
            if pg_ctl is None:
                raise SystemExit("--db postgres needs pg_ctl (the PostgreSQL server binaries)")
            server = PostgresServer(pg_ctl)
            stack.callback(server.cleanup)
            server.start()
            name = database_name(f"bench due {n}")
            urls.append(
                (
                    stack.enter_context(throwaway_database(server_url(server.executor), name)),
                    ledger_url,
                )
            )
        yield urls


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| where | db | N companies | rows | K new | ledger | tick | requests (by kind) "
        "| child runs | wall s | due query s | peak RSS MiB | requests / new customer "
        "| others' CPU | checks |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results:
        for i, t in enumerate(r["ticks"], start=1):
            kinds = ", ".join(f"{v} {k}" for k, v in sorted(t["requests"].items())) or "none"
            per = f"{t['total_requests'] / r['new']:.2f}" if i == 1 and r["new"] else "-"
            lines.append(
                f"| {r.get('where', 'in-process')} | {r.get('db', 'sqlite')} | {r['n']:,} "
                f"| {r['synced_before'] + r['new']:,} "
                f"| {r['new'] if i == 1 else 0} "
                f"| {r['ledger']} | {i} | {t['total_requests']} ({kinds}) | {t['child_runs']} "
                f"| {t['wall_s']} | {r['due_query_s']} | {t['peak_rss_mib']} | {per} "
                f"| {t['others_cpu']:.0%} | {'ok' if r['ok'] else 'FAILED'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--new", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--synced", type=int, default=10, help="customers synced per company")
    parser.add_argument("--ledger-apart", action="store_true", help="LEDGER_DATABASE_URL set")
    parser.add_argument("--due-only", action="store_true", help="time the due query alone")
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"])
    parser.add_argument("--due-against", help="another rootfi_sync/ledger/due.py to time too")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="COUNT",
        help="the ticks as runs of the deployments on COUNT process workers (0: in this process)",
    )
    args = parser.parse_args(argv)
    if len(args.new) != len(args.n):
        parser.error("--new needs one K per N")
    if args.due_only:
        against = load_due_work(args.due_against) if args.due_against else None
        due = []
        with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
            for n, k in zip(args.n, args.new, strict=True):
                with due_databases(Path(tmp), args.db, n, args.ledger_apart) as urls:
                    for url, ledger_url in urls:
                        due.append(measure_due(url, ledger_url, n, k, args.synced, against))
                        print(due_table(due[-1:]), flush=True)
        print(due_table(due))
        print(write_record("fanout-due", {"results": due}))
        return 0 if all(r["ok"] for r in due) else 1
    children = Children()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        work = Path(tmp)
        try:
            os.environ.update(clean_env())
            for name in [k for k in os.environ if k.startswith(("PREFECT_", "ROOTFI_"))]:
                del os.environ[name]
            os.environ["PREFECT_API_URL"] = start_prefect(children, work)[1]
            os.environ["PREFECT_HOME"] = str(work / "prefect-client")
            os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
            if args.workers:
                deploy(work)
            for n, k in zip(args.n, args.new, strict=True):
                with due_databases(work, args.db, n, args.ledger_apart) as urls:
                    for url, ledger_url in urls:
                        results.append(
                            measure(
                                children, work, n, k, args.synced, url, ledger_url, args.workers
                            )
                        )
                        print(table(results[-1:]), flush=True)
        finally:
            children.stop_all()
    print(table(results))
    print(write_record("fanout", {"results": results}))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
