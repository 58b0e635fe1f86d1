"""The one typed settings object, read from the environment and a `.env` file."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic_settings
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rootfi_sync.errors import SettingsError

PRODUCTION_URL = "https://api.rootfi.dev/v3"
DEFAULT_DATABASE_URL = "sqlite:///rootfi_sync.db"
# The databases rootfi-sync supports, by SQLAlchemy URL: backend -> (its drivers, an example).
DATABASES = {
    "sqlite": (("pysqlite",), "sqlite:///rootfi_sync.db"),
    "postgresql": (("psycopg",), "postgresql+psycopg://user:password@host:5432/dbname"),
    "mysql": (("pymysql",), "mysql+pymysql://user:password@host:3306/dbname?charset=utf8mb4"),
    "mariadb": (("pymysql",), "mariadb+pymysql://user:password@host:3306/dbname"),
}
SUPPORTED_DATABASES = (
    f"SQLite ({DATABASES['sqlite'][1]}), PostgreSQL through psycopg "
    f"({DATABASES['postgresql'][1]}) or MySQL 8 / MariaDB through PyMySQL "
    f"({DATABASES['mysql'][1]})"
)
SOURCE_COLUMNS = (
    "id", "name", "email", "phone", "currency", "status", "street", "locality", "city",
    "state", "pincode", "country", "created_at", "updated_at",
)  # fmt: skip


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything rootfi-sync can be told; each field is read from the upper-cased env var."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    rootfi_api_key: SecretStr | None = None
    rootfi_base_url: str = PRODUCTION_URL
    rootfi_company_id: int | None = Field(default=None, gt=0)
    source_database_url: str = DEFAULT_DATABASE_URL
    source_table: str = Field(default="customers", min_length=1)
    source_columns: dict[str, str] = Field(default_factory=dict)
    source_company_column: str | None = None
    rootfi_batch_size: int = Field(default=100, ge=1, le=1000)
    rootfi_write_mode: Literal["single", "batch"] = "single"
    rootfi_concurrency: int = Field(default=4, ge=1, le=64)
    rootfi_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
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

    @field_validator("rootfi_base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.rootfi.dev/v3")
        if parts.scheme != "https" and not _is_loopback(parts.hostname):
            raise ValueError("must use https unless its host is loopback (127.0.0.1)")
        return value.rstrip("/")

    @field_validator("source_database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        # The message names the scheme at most: the URL itself may hold a password.
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"is not a database URL; use {SUPPORTED_DATABASES}") from None
        backend = url.get_backend_name()
        if backend not in DATABASES:
            raise ValueError(f"unsupported database {backend!r}; use {SUPPORTED_DATABASES}")
        drivers, example = DATABASES[backend]
        driver = url.get_driver_name()  # the dialect's default when the URL names none
        if driver not in drivers:  # e.g. mysql:// means MySQLdb, which is not installed
            raise ValueError(
                f"unsupported driver {driver!r} of {url.drivername + '://'!r} (for this "
                f"database: {example}); use {SUPPORTED_DATABASES}"
            )
        return value

    @field_validator("source_columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SOURCE_COLUMNS))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; known: {', '.join(SOURCE_COLUMNS)}")
        return value


def load_settings(**overrides: Any) -> Settings:
    """Return the settings, or raise SettingsError naming every bad setting (never its value)."""
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
