"""Child processes for the benchmarks: started in their own session, always stopped.

Every process is started with `start_new_session=True`, so it leads a process group whose id
is its own pid; stopping it signals that group only (the child and whatever it forked), never
anything by name. `Children.stop_all()` runs on normal exit, on failure and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Children:
    """The processes this harness started; `stop` ends one (its group), `stop_all` ends all."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it after `grace` seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGINT if grace > 0 else signal.SIGKILL)
            try:
                proc.wait(grace / 2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(grace / 2)
        # Whatever the child forked into its group (and the child itself if still there).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_sandbox(
    children: Children, python: str, *, latency: float, api_key: str, company_id: int,
    env: Mapping[str, str], log: Path, async_delay: float = 0.2, rate_limit: int | None = None,
    timeout: float = 30.0,
) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    """Start `python -m rootfi_sandbox` (in memory; a per-key limit of `rate_limit`
    requests a minute if given, else none); return it and its URL."""
    argv = [
        python, "-m", "rootfi_sandbox", "--host", HOST, "--port", "0",
        "--latency", str(latency), "--async-delay", str(async_delay), "--api-key", api_key,
        "--company-id", str(company_id),
    ]  # fmt: skip
    if rate_limit is not None:
        argv += ["--rate-limit", str(rate_limit)]
    env = {k: v for k, v in env.items() if not k.startswith("ROOTFI_SANDBOX_")}
    proc = children.start(argv, env=env | {"COLUMNS": "200"}, log=log)
    found: list[str] = []

    def announced() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited ({proc.returncode}); see {log}")
        match = re.search(r"http://127\.0\.0\.1:\d+", log.read_text(errors="replace"))
        if match:
            found.append(match.group(0))
        return bool(found)

    wait_until(announced, timeout, "sandbox")
    url = found[0]
    wait_until(lambda: _http_ok(f"{url}/_sandbox/state"), timeout, "sandbox API")
    return proc, url


def start_prefect_server(
    children: Children, prefect: str, *, home: Path, env: Mapping[str, str], log: Path,
    timeout: float = 120.0,
) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    """Start `prefect server start` on a free port with its own PREFECT_HOME; return its API URL."""
    port = free_port()
    server_env = {k: v for k, v in env.items() if not k.startswith("PREFECT_")}
    server_env |= {
        "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false",
    }  # fmt: skip
    argv = [prefect, "server", "start", "--host", HOST, "--port", str(port)]
    proc = children.start(argv, env=server_env, log=log)
    api = f"http://{HOST}:{port}/api"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited ({proc.returncode}); see {log}")
        return _http_ok(f"{api}/health")

    wait_until(healthy, timeout, "prefect server", interval=0.25)
    return proc, api


def git(tree: Path, *argv: str) -> str:
    """`git -C tree argv...`'s output, stripped ("" if git fails or is missing)."""
    try:
        done = subprocess.run(["git", "-C", str(tree), *argv], capture_output=True, text=True,
                              timeout=20, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.rstrip()  # not strip(): a porcelain line may start with a space


def git_state(tree: Path) -> dict[str, Any]:
    """The tree's commit (`git rev-parse HEAD`) and whether it has uncommitted changes."""
    return {"commit": git(tree, "rev-parse", "HEAD"),
            "dirty": bool(git(tree, "status", "--porcelain", "--untracked-files=no"))}  # fmt: skip


def write_result(out: Path, name: str, result: Mapping[str, Any], tree: Path) -> Path:
    """Write `result` with the tree's git state to out/<timestamp>-<name>.json; return it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.json"
    record = {"git": git_state(tree), "argv": sys.argv, **result}
    path.write_text(json.dumps(record, indent=1, default=str))
    return path


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a live process, in KiB ({} once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class ForeignCpu:
    """CPU time used by processes outside this harness's sessions while a run goes on.

    Other people may run their own benchmarks or tests on the same two cores; this says how
    much CPU they took, so a disturbed run can be seen (and re-run) rather than trusted.
    `sample()` reads /proc/*/stat; a process first seen after the first sample counts from 0.
    """

    def __init__(self, mine: Callable[[], tuple[set[int], set[int]]]) -> None:
        """`mine()` returns (session ids, parent pids) whose processes are this harness's."""
        self._mine = mine
        self._first: dict[tuple[int, int], int] = {}
        self._last: dict[tuple[int, int], int] = {}
        self._samples = 0
        self._tick = os.sysconf("SC_CLK_TCK")
        self.top: dict[str, float] = {}
        self._names: dict[tuple[int, int], str] = {}

    def sample(self) -> None:
        sessions, parents = self._mine()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            name = raw[raw.find("(") + 1 : raw.rfind(")")]
            fields = raw[raw.rfind(")") + 2 :].split()
            pid, ppid, session = int(entry.name), int(fields[1]), int(fields[3])
            ticks, start = int(fields[11]) + int(fields[12]), int(fields[19])
            if session in sessions or ppid in parents or pid in parents:
                continue
            key = (pid, start)
            if key not in self._first:
                self._first[key] = ticks if self._samples == 0 else 0
                self._names[key] = name
            self._last[key] = ticks
        self._samples += 1

    def seconds(self) -> float:
        by_name: dict[str, float] = {}
        for key, last in self._last.items():
            used = (last - self._first[key]) / self._tick
            by_name[self._names[key]] = by_name.get(self._names[key], 0.0) + used
        self.top = dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:5])
        return sum(by_name.values())
