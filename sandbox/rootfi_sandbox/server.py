"""Running the sandbox: `SandboxServer` (uvicorn in a daemon thread) and blocking `serve()`.

Both bind the listening socket themselves (so port 0 gives a free port that is known at
once) and run uvicorn with SandboxH11Protocol, no access log and level "warning".
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Self

import httpx
import uvicorn
from starlette.applications import Starlette

from rootfi_sandbox.adminclient import SandboxAdmin, local_client
from rootfi_sandbox.app import create_app
from rootfi_sandbox.config import SandboxConfig
from rootfi_sandbox.protocol import SandboxH11Protocol
from rootfi_sandbox.runtime import SandboxState

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (uvicorn starts listening on it)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    """http://host:port of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def uvicorn_config(app: Starlette, *, own_logging: bool) -> uvicorn.Config:
    """Quiet uvicorn settings; `own_logging=False` leaves the host's logging config alone."""
    extra = {} if own_logging else {"log_config": None}
    return uvicorn.Config(
        app,
        http=SandboxH11Protocol,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
        **extra,  # type: ignore[arg-type]
    )


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server that first cuts the sandbox's sleeps short, so stopping is quick."""

    def __init__(self, app: Starlette, *, own_logging: bool) -> None:
        super().__init__(uvicorn_config(app, own_logging=own_logging))
        self.sandbox: SandboxState = app.state.sandbox

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.sandbox.stopping.set()
        await super().shutdown(sockets=sockets)


def serve(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted. `on_ready(url)` is called once the port is bound."""
    sock = bind_socket(host, port)
    if on_ready is not None:
        on_ready(base_url(sock))
    server = _Uvicorn(create_app(config), own_logging=True)
    server.run(sockets=[sock])


class SandboxServer:
    """A sandbox on a background thread, for tests and demos.

    >>> with SandboxServer(SandboxConfig()) as sb:   # doctest: +SKIP
    ...     httpx.get(f"{sb.api_url}/core/companies", headers={"api_key": "sandbox-key"})
    """

    def __init__(
        self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._admin: SandboxAdmin | None = None

    @property
    def url(self) -> str:
        """`http://host:port` (only once started)."""
        if self._url is None:
            raise RuntimeError("the sandbox is not running")
        return self._url

    @property
    def api_url(self) -> str:
        """What ROOTFI_BASE_URL is set to: `http://host:port/v3`."""
        return f"{self.url}/v3"

    @property
    def admin(self) -> SandboxAdmin:
        """A small client for the `/_sandbox/` admin API (closed by stop())."""
        if self._admin is None:
            self._admin = SandboxAdmin(self.url)
        return self._admin

    def start(self) -> Self:
        """Start serving; returns once the server answers HTTP."""
        if self._thread is not None:
            raise RuntimeError("the sandbox is already running")
        sock = bind_socket(self.host, self.port)
        self._url = base_url(sock)
        self.port = sock.getsockname()[1]
        self._server = _Uvicorn(create_app(self.config), own_logging=False)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="rootfi-sandbox", daemon=True
        )
        self._thread.start()
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with local_client(self.url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("the sandbox server stopped while starting")
                try:
                    if client.get("/_sandbox/state").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        raise TimeoutError(f"the sandbox did not answer within {START_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        server, thread, admin = self._server, self._thread, self._admin
        self._server, self._thread, self._admin = None, None, None
        if admin is not None:
            admin.close()
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
