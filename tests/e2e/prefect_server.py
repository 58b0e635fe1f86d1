"""Real processes for the e2e tests: a Prefect server, CLI commands, a webhook receiver."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from prefect.client.schemas.objects import StateType

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(REPO / ".venv" / "bin" / "prefect")
HEALTH_TIMEOUT_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Prefect, RootFi or source settings, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ROOTFI_", "SOURCE_"))
    }
    env.update(COLUMNS="200", PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _stop(proc: subprocess.Popen[str], grace: float = 15.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left after `grace`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run(
    args: list[str], env: Mapping[str, str], *, timeout: float = 60.0, cwd: Path = REPO
) -> Finished:
    """Run a command (from the repository root unless told) in its own process group, killed
    on timeout."""
    started = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=dict(env),
        text=True,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc, grace=5.0)
        out, err = proc.communicate()
        raise AssertionError(f"{args} ran over {timeout}s\n{out}\n{err}") from None
    finally:
        if proc.poll() is None:
            _stop(proc)
    return Finished(proc.returncode, out, err, time.monotonic() - started)


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    home: Path
    started_in: float

    def env(self, **extra: str) -> dict[str, str]:
        """A client environment for this server (no other Prefect settings)."""
        return clean_env(PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url, **extra)


@contextmanager
def prefect_server(home: Path) -> Iterator[PrefectServer]:
    """`prefect server start` on a free 127.0.0.1 port; stopped (its whole group) on exit."""
    port = free_port()
    log = (home.parent / "prefect-server.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=home.parent,
        env=clean_env(PREFECT_HOME=str(home)),
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        api_url = f"http://127.0.0.1:{port}/api"
        _wait_for_health(proc, api_url, home.parent / "prefect-server.log")
        yield PrefectServer(api_url, home, time.monotonic() - started)
    finally:
        _stop(proc)
        log.close()


def _wait_for_health(proc: subprocess.Popen[str], api_url: str, log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"no /api/health within {HEALTH_TIMEOUT_SECONDS}s:\n{log.read_text()}")


CLONE_MARKER = "rootfi-sync e2e: code imported from"


def snapshot_repository(dest: Path, branch: str = "e2e") -> Path:
    """A git repository at `dest` holding the working tree as it is now, new files included.

    Its `rootfi_sync/__init__.py` prints where it was imported from (`CLONE_MARKER`), so a
    test can tell the code a worker ran came from a clone of this repository.
    """
    ls_files = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(ls_files, cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    marker = f"print({CLONE_MARKER!r}, __file__, flush=True)\n"
    (dest / "rootfi_sync" / "__init__.py").write_text(marker)
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    for args in (["init", "-q", "-b", branch], ["add", "-A"], ["commit", "-q", "-m", "e2e"]):
        subprocess.run([*git, *args], cwd=dest, check=True)
    return dest


class WebhookReceiver:
    """Collects the bodies POSTed to http://127.0.0.1:<port>/ (a notification channel)."""

    def __init__(self) -> None:
        bodies: list[str] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers["content-length"])).decode())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float) -> list[str]:
        """Return the bodies once `count` arrived (or whatever came within `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return list(self.bodies)


def trigger(server: PrefectServer, deployment: str, *params: str) -> tuple[UUID, Finished]:
    """`prefect deployment run <deployment> --param ...`; the new run's id."""
    args = [PREFECT, "deployment", "run", deployment]
    for param in params:
        args += ["--param", param]
    result = run(args, server.env())
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
    assert found, result.stdout
    return UUID(found[1]), result


def start(deployment: str, **parameters: Any) -> UUID:
    """A run of `deployment` with `parameters`, made with Prefect's client in this process.

    What `trigger` does without `prefect deployment run`'s process (about 5 s of CPU to start
    on 2 cores): for the tests whose point is what runs, not the command that asks for it
    (test_a_manual_run_picked_up_by_a_worker_elsewhere... drives the command itself)."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False)
    return flow_run.id


def work(pool: str, env: Mapping[str, str], cwd: Path) -> Finished:
    """`prefect worker start --pool <pool> --run-once` in `cwd`: runs what is due, then exits."""
    args = [PREFECT, "worker", "start", "--pool", pool, "--run-once"]
    result = run(args, env, timeout=150, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@contextmanager
def workers(
    pool: str, env: Mapping[str, str], cwd: Path, count: int = 1, limit: int = 3
) -> Iterator[list[Path]]:
    """`count` long-running workers of the pool in `cwd`; yields their log files.

    They look for runs every 2 s (10 s by default), so a parent's children start sooner.
    """
    env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    logs = [cwd / f"worker{i}.log" for i in range(1, count + 1)]
    procs = []
    for i, log in enumerate(logs, start=1):
        args = [PREFECT, "worker", "start", "--pool", pool, "--limit", str(limit)]
        args += ["--name", f"w{i}"]
        with log.open("w") as out:
            started = subprocess.Popen(
                args,
                cwd=cwd,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            procs.append(started)
    try:
        yield logs
    finally:
        for proc in procs:
            _stop(proc)


def wait_for_runs(ids: list[UUID], timeout: float) -> dict[UUID, StateType]:
    """Wait until these flow runs (and the children they started) are final; their states."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs()
            pending = [r for r in runs if r.state and not r.state.is_final()]
            states = {r.id: r.state.type for r in runs if r.id in ids and r.state}
            if not pending and len(states) == len(ids):
                return states
            assert time.monotonic() < deadline, f"runs not final after {timeout}s: {pending}"
            time.sleep(1.0)
