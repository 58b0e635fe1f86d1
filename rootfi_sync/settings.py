"""The one typed settings object, read from the environment and a `.env` file."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import pydantic_settings
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from rootfi_sync.errors import SettingsError
from rootfi_sync.models import ADDRESS_FIELDS, DEFAULT_MATCH_FIELDS, parse_match_fields

PRODUCTION_URL = "https://api.rootfi.dev/v3"
DEFAULT_DATABASE_URL = "sqlite:///rootfi_sync.ledger.db"
Drivers = dict[str, tuple[tuple[str, ...], str]]
# The databases rootfi-sync supports, by SQLAlchemy URL: backend -> (its drivers, an example).
DATABASES: Drivers = {
    "sqlite": (("pysqlite",), "sqlite:///rootfi_sync.ledger.db"),
    "postgresql": (("psycopg",), "postgresql+psycopg://user:password@host:5432/dbname"),
    "mysql": (("pymysql",), "mysql+pymysql://user:password@host:3306/dbname?charset=utf8mb4"),
    "mariadb": (("pymysql",), "mariadb+pymysql://user:password@host:3306/dbname"),
}
SUPPORTED_DATABASES = (
    f"SQLite ({DATABASES['sqlite'][1]}), PostgreSQL through psycopg "
    f"({DATABASES['postgresql'][1]}) or MySQL 8 / MariaDB through PyMySQL "
    f"({DATABASES['mysql'][1]})"
)
# Databases rootfi-sync can read a source from, but keep no ledger in: only with
# LEDGER_DATABASE_URL set (duckdb-engine is the optional extra `rootfi-sync[duckdb]`).
SOURCE_ONLY_DATABASES: Drivers = {"duckdb": (("duckdb_engine",), "duckdb:////var/lib/shop.duckdb")}
SOURCE_COLUMNS = (
    *("id", "name", "email", "phone", "currency", "status"),
    *ADDRESS_FIELDS,
    *("created_at", "updated_at"),
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ResendPolicy = Literal["after-settle", "never"]
"""ROOTFI_RESEND_IN_DOUBT: a customer in doubt not found once its settle time is over is sent
again, or parked FAILED for a person to look at."""


class Settings(BaseSettings):
    """Everything rootfi-sync can be told; each field is read from the upper-cased env var."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    rootfi_api_key: SecretStr | None = None
    rootfi_base_url: str = PRODUCTION_URL
    rootfi_company_id: int | None = Field(default=None, gt=0)
    # Before the source's URL: validating that one looks at this one (a DuckDB source).
    ledger_database_url: str | None = None
    source_database_url: str = DEFAULT_DATABASE_URL
    source_table: str = Field(default="customers", min_length=1)
    ledger_schema: str | None = None
    source_columns: dict[str, str] = Field(default_factory=dict)
    source_company_column: str | None = None
    rootfi_batch_size: int = Field(default=100, ge=1, le=1000)
    rootfi_write_mode: Literal["single", "batch"] = "single"
    rootfi_concurrency: int = Field(default=4, ge=1, le=64)
    rootfi_timeout_seconds: float = Field(default=60.0, gt=0, le=600)  # the official SDK's
    rootfi_retries: int = Field(default=4, ge=0, le=20)
    rootfi_retry_delay_seconds: float = Field(default=2.0, ge=0, le=600)
    rootfi_max_attempts: int = Field(default=5, ge=1, le=100)
    rootfi_requeue_delay_seconds: float = Field(default=300.0, ge=0)
    rootfi_lease_seconds: float = Field(default=900.0, gt=0)
    rootfi_rate_limit_per_minute: int = Field(default=100, ge=0)
    rootfi_rate_limit_name: str = "rootfi-api"
    rootfi_rate_limit_wait_seconds: float = Field(default=120.0, ge=0)
    rootfi_max_refused_share: float = Field(default=0.5, gt=0, le=1)
    rootfi_alert_failed_share: float = Field(default=0.1, ge=0, le=1)
    rootfi_poll_timeout_seconds: float = Field(default=300.0, gt=0)
    rootfi_sync_settle_seconds: float = Field(default=300.0, ge=0)
    rootfi_async_settle_seconds: float = Field(default=900.0, ge=0)
    rootfi_sync_poll_seconds: float = Field(default=60.0, ge=0)
    rootfi_reconcile_skew_seconds: float = Field(default=120.0, ge=0)
    # Which fields identify a customer in RootFi when a lost create is looked up (comma-
    # separated; any other field both hold must not contradict): see rootfi_sync.rootfi.matching.
    rootfi_match_fields: str = ",".join(DEFAULT_MATCH_FIELDS)
    # A customer in doubt, not found after its settle time: sent again, or parked FAILED.
    rootfi_resend_in_doubt: ResendPolicy = "after-settle"

    @field_validator("rootfi_base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.rootfi.dev/v3")
        if parts.scheme != "https" and not _is_loopback(parts.hostname):
            raise ValueError("must use https unless its host is loopback (127.0.0.1)")
        return value.rstrip("/")

    @field_validator("ledger_database_url", "ledger_schema", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("ledger_database_url")
    @classmethod
    def _ledger_database(cls, value: str | None) -> str | None:
        return None if value is None else _database_url(value, {})

    @field_validator("source_database_url")
    @classmethod
    def _source_database(cls, value: str, info: ValidationInfo) -> str:
        apart = info.data.get("ledger_database_url") is not None
        return _database_url(value, SOURCE_ONLY_DATABASES if apart else {})

    @field_validator("source_table")
    @classmethod
    def _schema_and_table(cls, value: str, info: ValidationInfo) -> str:
        parts = value.split(".")
        if len(parts) > 2 or not all(parts):
            raise ValueError("must be a table (or view) name, or schema.table")
        url = info.data.get("source_database_url")
        if len(parts) == 2 and url is not None and _backend(url) == "sqlite":
            raise ValueError(
                f"{parts[0]!r}: a schema (an attached database) is not supported on SQLite; "
                "name the table alone"
            )
        return value

    @field_validator("ledger_schema")
    @classmethod
    def _ledger_schema(cls, value: str | None, info: ValidationInfo) -> str | None:
        url = info.data.get("ledger_database_url") or info.data.get("source_database_url")
        if value is not None and url is not None and _backend(url) == "sqlite":
            raise ValueError("a schema (an attached database) is not supported on SQLite")
        return value

    @field_validator("source_columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SOURCE_COLUMNS))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; known: {', '.join(SOURCE_COLUMNS)}")
        return value

    @field_validator("rootfi_match_fields")
    @classmethod
    def _match_fields(cls, value: str) -> str:
        return ",".join(parse_match_fields(value))

    @property
    def forced_write_mode(self) -> Literal["single", "batch"] | None:
        """ROOTFI_WRITE_MODE when it was set (environment, `.env`, a value given), else None:
        a fan-out then chooses each company's mode by what it saves (`rootfi_sync.run.budget`)."""
        return self.rootfi_write_mode if "rootfi_write_mode" in self.model_fields_set else None

    @property
    def match_fields(self) -> tuple[str, ...]:
        """ROOTFI_MATCH_FIELDS, as the fields it names."""
        return tuple(self.rootfi_match_fields.split(","))

    @overload
    def company(self, given: int | None = None, *, required: Literal[True] = True) -> int: ...

    @overload
    def company(self, given: int | None = None, *, required: Literal[False]) -> int | None: ...

    def company(self, given: int | None = None, *, required: bool = True) -> int | None:
        """Return the RootFi company to work for: `given` (a --company-id option, a flow's
        company_id parameter), else ROOTFI_COMPANY_ID.

        Raises SettingsError naming ROOTFI_COMPANY_ID when neither is set, unless not
        `required` (then None: every company).
        """
        company = given or self.rootfi_company_id
        if company is None and required:
            raise SettingsError(
                "missing setting: ROOTFI_COMPANY_ID (or a company id: --company-id, or the "
                "flow parameter company_id)"
            )
        return company

    @property
    def source_schema(self) -> str | None:
        """The schema of SOURCE_TABLE (`schema.table`; on MySQL a database), if it names one."""
        return self.source_table.rpartition(".")[0] or None

    @property
    def source_name(self) -> str:
        """SOURCE_TABLE without its schema."""
        return self.source_table.rpartition(".")[2]

    @property
    def ledger_url(self) -> str:
        """The ledger's database: LEDGER_DATABASE_URL, or the source's."""
        return self.ledger_database_url or self.source_database_url

    @property
    def ledger_apart(self) -> bool:
        """Whether the ledger has a database of its own (then the source is only read)."""
        return self.ledger_url != self.source_database_url

    @property
    def ledger_schema_name(self) -> str | None:
        """LEDGER_SCHEMA; unset, the source table's schema on PostgreSQL when the ledger
        shares the source's database, else the database's default (None)."""
        if self.ledger_schema is not None:
            return self.ledger_schema
        if not self.ledger_apart and _backend(self.ledger_url) == "postgresql":
            return self.source_schema
        return None


def _backend(url: str) -> str:
    return make_url(url).get_backend_name()


def _database_url(value: str, source_only: Drivers) -> str:
    """Return `value` if it is a supported database URL (`source_only` databases too), or
    raise ValueError naming the scheme at most: the URL itself may hold a password."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"is not a database URL; use {SUPPORTED_DATABASES}") from None
    backend = url.get_backend_name()
    known = DATABASES | source_only
    if backend not in known:
        if backend in SOURCE_ONLY_DATABASES:
            raise ValueError(
                f"{backend!r} can only be a source, read while the ledger is in a database of "
                f"its own: set LEDGER_DATABASE_URL to {SUPPORTED_DATABASES}"
            )
        raise ValueError(f"unsupported database {backend!r}; use {SUPPORTED_DATABASES}")
    drivers, example = known[backend]
    try:
        driver = url.get_driver_name()  # the dialect's default when the URL names none
    except NoSuchModuleError:  # a dialect that is a package of its own (duckdb-engine)
        raise ValueError(f"no driver for {backend!r} is installed (for {example})") from None
    if driver not in drivers:  # e.g. mysql:// means MySQLdb, which is not installed
        raise ValueError(
            f"unsupported driver {driver!r} of {url.drivername + '://'!r} (for this "
            f"database: {example}); use {SUPPORTED_DATABASES}"
        )
    return value


class _ValuesOnly(Settings):
    """Settings from the values given and the defaults alone: no environment, no `.env`."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: Any, *_others: Any, **__: Any
    ) -> tuple[Any, ...]:
        return (init_settings,)


def settings_of(**values: Any) -> Settings:
    """Return settings made of these values and the defaults, whatever the environment and
    `.env` hold (the demo's: a user's LEDGER_DATABASE_URL must not reach it)."""
    return _ValuesOnly(**values)


_GIVEN: ContextVar[Settings | None] = ContextVar("rootfi_sync_settings", default=None)


@contextmanager
def settings_given(settings: Settings) -> Iterator[Settings]:
    """Within this block (and the flow and task runs it starts in this process), make
    `load_settings` start from `settings` instead of the environment: how the demo runs the
    flow on settings it built as values, with nothing written to `os.environ`."""
    token = _GIVEN.set(settings)
    try:
        yield settings
    finally:
        _GIVEN.reset(token)


def load_settings(**overrides: Any) -> Settings:
    """Return the settings, or raise SettingsError naming every bad setting (never its value).

    They come from the environment and `.env`, or from `settings_given`; `overrides` win.
    """
    given = _GIVEN.get()
    if given is not None:
        overrides = given.model_dump() | overrides
    try:
        return Settings(**overrides)
    except pydantic_settings.SettingsError as exc:  # a complex value (JSON) that does not parse
        field = re.search(r'field "(\w+)"', str(exc))
        name = field[1].upper() if field else "SETTINGS"
        raise SettingsError(
            f"invalid settings:\n  {name}: not valid JSON ({exc.__cause__})"
        ) from None
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
