"""Real processes for the e2e tests: a Prefect server, CLI commands, a webhook receiver."""

from __future__ import annotations

import os
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

import httpx

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


def run(args: list[str], env: Mapping[str, str], *, timeout: float = 60.0) -> Finished:
    """Run a command from the repository root in its own process group, killed on timeout."""
    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=REPO, env=dict(env), text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
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
        cwd=home.parent, env=clean_env(PREFECT_HOME=str(home)), start_new_session=True,
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
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
