"""Every error rootfi-sync raises, in one tree.

    RootFiSyncError
    ├── SettingsError (ValueError)         a setting is missing or wrong; nothing was sent
    ├── SourceTableError (LookupError)     the source has no such table or view, or lacks
    │                                      columns; nothing was changed
    ├── SeedRefused (PermissionError)      `seed` would write into a database that is not the
    │                                      demo's, without --yes-into naming it
    ├── CircuitOpen                        too many customers refused: the run stopped early
    ├── CompanyRunsFailed                  a fan-out's run of one company or more did not
    │                                      complete (the companies are named)
    ├── LeaseLost                          the database no longer vouches for the lease of a
    │                                      customer about to be sent: nothing was sent
    └── RootFiError                        talking to RootFi went wrong; `sent` is False
                                           only when RootFi surely processed nothing
        ├── TransportError (OSError)       the answer never came: the request may or may not
        │                                  have been processed (in doubt) unless `sent` is False
        ├── PagingError (RuntimeError)     a list's `next` cursor came back, or a page repeated
        │                                  the one before: the listing stopped, not looped
        └── HTTPStatusError                RootFi answered with an error status
            ├── AuthError (PermissionError)     401/403: stop the run, fix the key
            ├── RateLimited                     429: nothing was processed; wait `retry_after`
            ├── ServerError                     5xx: the request may have been processed
            └── Refused (ValueError)            any other 4xx: RootFi or the platform said no

Messages say what failed and where, with RootFi's error body when there is one; none of
them carries the API key (the client never puts it anywhere but the request header).
"""

from __future__ import annotations

from typing import Any


class RootFiSyncError(Exception):
    """Base of every error raised by rootfi-sync."""


class SettingsError(RootFiSyncError, ValueError):
    """A setting is missing or invalid; the message names it."""


class SourceTableError(RootFiSyncError, LookupError):
    """The source table (or view) is missing, or lacks columns; the message names the table,
    the database (without its password) and the columns expected."""


class SeedRefused(RootFiSyncError, PermissionError):
    """Fake customers would go into a database that is not the demo's, without consent."""


class CircuitOpen(RootFiSyncError):
    """The share of refused customers passed the configured threshold."""


class CompanyRunsFailed(RootFiSyncError):
    """One company's run or more, started by the fan-out, did not complete."""


class LeaseLost(RootFiSyncError):
    """The run no longer holds (with its margin) the lease of a customer it was about to send,
    by the database's clock: the request did not leave."""


class RootFiError(RootFiSyncError):
    """Talking to RootFi failed; `sent` is False only when RootFi surely processed nothing."""

    sent: bool = True


class TransportError(RootFiError, OSError):
    """No answer came back; `sent` is False only when the request surely never left."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class PagingError(RootFiError, RuntimeError):
    """A listing would loop (a `next` cursor came back, or a page repeated); names the path."""


class HTTPStatusError(RootFiError):
    """RootFi answered with an error status; `code`, `field` come from its error body."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        method: str = "",
        path: str = "",
        code: str | None = None,
        field: str | None = None,
        body: Any = None,
    ) -> None:
        where = f" ({method} {path})" if method else ""
        super().__init__(f"RootFi answered {status_code}{where}: {message}")
        self.status_code = status_code
        self.reason = message
        self.code = code
        self.field = field
        self.body = body


class AuthError(HTTPStatusError, PermissionError):
    """401/403: the API key is missing, wrong or not allowed for this company."""


class RateLimited(HTTPStatusError):
    """429: throttled; nothing was processed."""

    sent = False

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServerError(HTTPStatusError):
    """5xx: RootFi failed; the request may or may not have been processed."""


class Refused(HTTPStatusError, ValueError):
    """A 4xx other than 401/403/429: the request (or one of its records) was refused."""
