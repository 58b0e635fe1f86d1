"""A small RootFi v3 client over httpx: create customers, follow syncs, list customers.

Only the `api_key` header carries the key; it is never logged, put in a URL or in an error.
The client retries no write itself except after a 429 (which RootFi answers before
processing anything): it waits the `Retry-After` it is given, within a bound, then asks
again. A GET, which changes nothing, is also asked again a few times after a 5xx or no answer.
Everything else is raised as one of `rootfi_sync.errors`, for the caller to decide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from rootfi_sync import errors
from rootfi_sync.errors import RateLimited
from rootfi_sync.timefmt import iso_ms

USER_AGENT = "rootfi-sync/0.1"
PAGE_SIZE = 1000  # asked for, not relied on: see "Page sizes" below
BeforeSend = Callable[[], bool] | None
"""Asked right before a POST leaves; False: it must not (see `create_customer`)."""
GET_RETRY_PAUSE = 0.25  # seconds before the first new try of a failed GET; doubles each time


class Governor(Protocol):
    """Paces requests: `acquire` before each one, `observe` each answer."""

    def acquire(self) -> None: ...

    def observe(self, response: httpx.Response) -> None: ...


class NoGovernor:
    """Sends as fast as asked."""

    def acquire(self) -> None:
        return None

    def observe(self, response: httpx.Response) -> None:
        return None


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """Return how long a 429 asks us to wait, from Retry-After or X-RateLimit-Reset."""
    value = response.headers.get("retry-after") or response.headers.get("x-ratelimit-reset")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds > 1e9:  # an epoch timestamp rather than a delay
        seconds -= now if now is not None else time.time()
    return max(0.0, seconds)


class RootFiClient:
    """One client per run; use it as a context manager so its connections are closed."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        timeout: float = 60.0,
        governor: Governor | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 16,
        max_rate_limit_wait: float = 120.0,
        get_retries: int = 3,
    ) -> None:
        self._governor = governor or NoGovernor()
        self._server_clock: tuple[datetime, float] | None = None  # last Date seen, and when
        self._max_wait = max_rate_limit_wait
        self._get_retries = get_retries
        self._limit_refused = False
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"api_key": api_key.get_secret_value(), "user-agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

    def __enter__(self) -> RootFiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RootFiClient(base_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    # -- endpoints ---------------------------------------------------------------------------

    def create_customer(
        self, company_id: int, record: dict[str, Any], *, before_send: BeforeSend = None
    ) -> dict[str, Any]:
        """Create one customer synchronously; return RootFi's record (with `sync_id` added).

        `before_send` is asked right before each POST leaves (after any rate-limit wait, and
        again after a 429); when it says no, nothing leaves and LeaseLost is raised.
        """
        body = self._request(
            "POST",
            "ecommerce/customers",
            params={"run_async": "false"},
            json={"company_id": company_id, "data": [record], "run_async": False},
            before_send=before_send,
        )
        created = dict(body["data"][0])
        created.setdefault("sync_id", body.get("sync_id"))
        return created

    def create_customers_async(
        self, company_id: int, records: list[dict[str, Any]], *, before_send: BeforeSend = None
    ) -> tuple[str, datetime | None]:
        """Start an async write of `records`; return its sync id and RootFi's clock then.

        The clock (the answer's `Date` header, to the second) bounds where the records can
        appear in the list, whatever the skew between our clock and RootFi's. `before_send`:
        as for `create_customer`.
        """
        response = self._exchange(
            "POST",
            "ecommerce/customers",
            params={"run_async": "true"},
            json={"company_id": company_id, "data": records, "run_async": True},
            before_send=before_send,
        )
        sync_id = self._json("POST", "ecommerce/customers", response).get("sync_id")
        if not sync_id:  # the docs put it at the top of the answer (its `data` lists no one)
            raise errors.TransportError("RootFi accepted an async write but sent no sync_id")
        return str(sync_id), _server_time(response)

    def get_sync(self, sync_id: str) -> dict[str, Any]:
        """Return the sync's status object."""
        data: dict[str, Any] = self._request("GET", f"core/syncs/{sync_id}")["data"]
        return data

    # Page sizes. RootFi documents neither a default nor a maximum `limit`, and its SDK sends
    # none unless asked. Asking for none costs requests: at the sandbox's default page (50),
    # 2,000 customers in batch mode took 514 API requests against 97 with limit=1000
    # (`python -m bench.pipeline --n 2000 --mode batch --no-ceiling`). So the client asks
    # for PAGE_SIZE, follows `next` whatever page size comes back, and when RootFi refuses
    # the `limit` itself (a 4xx naming it) reads at RootFi's own page size from then on.

    def iter_sync_jobs(self, sync_id: str) -> Iterator[dict[str, Any]]:
        """Yield the sync's jobs, following `next` cursors."""
        yield from self._paginate(f"core/syncs/{sync_id}/jobs", {}, PAGE_SIZE)

    def iter_customers(
        self, company_id: int, updated_since: datetime | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Yield the company's customers updated since a moment, oldest first."""
        params: dict[str, Any] = {
            "rootfi_company_id[eq]": company_id,
            "sort[rootfi_updated_at]": "ASC",
        }
        if updated_since is not None:
            params["rootfi_updated_at[gte]"] = iso_ms(updated_since)
        yield from self._paginate("ecommerce/customers", params, page_size)

    def iter_companies(self, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Yield the companies this key can reach, following `next` cursors."""
        yield from self._paginate("core/companies", {}, page_size)

    def server_now(self) -> datetime | None:
        """Return RootFi's clock now, from the `Date` of its last answer (asking for one when
        none came yet), or None when it sends none. To the second: the middle of it is taken."""
        if self._server_clock is None:
            self._request("GET", "core/companies", params={"limit": 1})
        if self._server_clock is None:
            return None
        seen, at = self._server_clock
        return seen + timedelta(seconds=0.5 + time.monotonic() - at)

    # -- transport ---------------------------------------------------------------------------

    def _paginate(
        self, path: str, params: dict[str, Any], page_size: int
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a list, following `next` until it is null.

        A `next` handed out before, or a page that repeats the one before it, would loop
        forever: the listing ends with a PagingError naming the endpoint instead.
        """
        cursor: str | None = None
        seen: set[str] = set()
        last_page: list[Any] | None = None
        while True:
            body = self._page(path, {**params, **({"next": cursor} if cursor else {})}, page_size)
            page = body.get("data") or []
            if page and page == last_page:
                raise errors.PagingError(f"GET /{path}: page after cursor {cursor} repeats")
            yield from page
            cursor, last_page = body.get("next"), page
            if not cursor:
                return
            if cursor in seen:
                raise errors.PagingError(f"GET /{path}: cursor {cursor} came back")
            seen.add(cursor)

    def _page(self, path: str, params: dict[str, Any], page_size: int) -> dict[str, Any]:
        """One page, asked for with `limit` unless RootFi has refused that limit before."""
        if self._limit_refused:
            return self._request("GET", path, params=params)
        try:
            return self._request("GET", path, params={**params, "limit": page_size})
        except errors.Refused as exc:
            if exc.field != "limit" and "limit" not in str(exc):
                raise
        self._limit_refused = True
        return self._request("GET", path, params=params)

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._json(method, path, self._exchange(method, path, **kwargs))

    def _exchange(
        self, method: str, path: str, before_send: BeforeSend = None, **kwargs: Any
    ) -> httpx.Response:
        """Send, waiting out 429s; return a successful answer or raise its error.

        A GET changes nothing, so one that fails (5xx, no answer) is asked again, a few times
        with a growing pause: a lookup reads many pages, and one failed page must not fail it.
        """
        waited, tries = 0.0, 0
        while True:
            try:
                response = self._send(method, path, before_send, **kwargs)
            except errors.TransportError:
                if method != "GET" or tries >= self._get_retries:
                    raise
                tries = self._pause_before_get(tries)
                continue
            if response.is_success:
                return response
            if response.status_code >= 500 and method == "GET" and tries < self._get_retries:
                tries = self._pause_before_get(tries)
                continue
            if response.status_code != 429:
                raise _status_error(method, path, response)
            error = _status_error(method, path, response)
            delay = retry_after_seconds(response) or 1.0
            if waited + delay > self._max_wait:
                raise error
            time.sleep(delay)
            waited += delay

    @staticmethod
    def _pause_before_get(tries: int) -> int:
        time.sleep(GET_RETRY_PAUSE * 2**tries)
        return tries + 1

    def _send(
        self, method: str, path: str, before_send: BeforeSend, **kwargs: Any
    ) -> httpx.Response:
        self._governor.acquire()
        if before_send is not None and not before_send():  # asked last: after any wait
            raise errors.LeaseLost(f"{method} /{path}: not sent, the run no longer holds its lease")
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise errors.TransportError(
                f"{method} /{path}: could not connect ({exc})", sent=False
            ) from None
        except httpx.TransportError as exc:
            kind = type(exc).__name__
            raise errors.TransportError(f"{method} /{path}: no answer ({kind}: {exc})") from None
        self._governor.observe(response)
        seen = _server_time(response)
        if seen is not None:
            self._server_clock = (seen, time.monotonic())
        return response

    @staticmethod
    def _json(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise errors.TransportError(f"{method} /{path}: answer is not JSON") from None
        return body


def _server_time(response: httpx.Response) -> datetime | None:
    """Return the time in the answer's `Date` header, if it has a readable one."""
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(response.headers["date"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return None


def _status_error(method: str, path: str, response: httpx.Response) -> errors.HTTPStatusError:
    """Map an error answer to the exception tree, keeping RootFi's error body."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    detail = body.get("error") if isinstance(body, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    message = str(detail.get("message") or body or response.reason_phrase)
    args = dict(
        method=method,
        path="/" + path,
        code=detail.get("code"),
        field=detail.get("field"),
        body=body,
    )
    status = response.status_code
    if status in (401, 403):
        return errors.AuthError(status, message + " (check ROOTFI_API_KEY)", **args)
    if status == 429:
        return RateLimited(status, message, retry_after=retry_after_seconds(response), **args)
    if status >= 500:
        return errors.ServerError(status, message, **args)
    return errors.Refused(status, message, **args)
