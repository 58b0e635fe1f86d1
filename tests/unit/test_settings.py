from __future__ import annotations

import pytest

from rootfi_sync.errors import SettingsError
from rootfi_sync.settings import PRODUCTION_URL, load_settings


def test_defaults_point_at_production_v3_and_a_local_sqlite_file() -> None:
    settings = load_settings(_env_file=None)
    assert settings.rootfi_base_url == PRODUCTION_URL
    assert settings.source_database_url.startswith("sqlite:///")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8787/v3", "http://localhost:1/v3", "http://[::1]:9/v3", "https://x.dev/v3"],
)
def test_accepts_https_or_a_loopback_http_base_url(url: str) -> None:
    assert load_settings(rootfi_base_url=url).rootfi_base_url == url


@pytest.mark.parametrize("url", ["http://api.rootfi.dev/v3", "ftp://127.0.0.1/", "not a url"])
def test_refuses_a_base_url_that_is_not_https_off_loopback(url: str) -> None:
    with pytest.raises(SettingsError, match="ROOTFI_BASE_URL"):
        load_settings(rootfi_base_url=url)


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("rootfi_batch_size", 0, "ROOTFI_BATCH_SIZE"),
        ("rootfi_write_mode", "bulk", "ROOTFI_WRITE_MODE"),
        ("rootfi_company_id", -4, "ROOTFI_COMPANY_ID"),
        ("source_columns", {"nmae": "full_name"}, "SOURCE_COLUMNS"),
    ],
)
def test_names_the_bad_setting_in_the_error(field: str, value: object, name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(**{field: value})


def test_reads_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTFI_COMPANY_ID", "1089")
    monkeypatch.setenv("SOURCE_COLUMNS", '{"name": "full_name"}')
    settings = load_settings()
    assert settings.rootfi_company_id == 1089
    assert settings.source_columns == {"name": "full_name"}


def test_never_shows_the_api_key_in_errors_or_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTFI_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)
    with pytest.raises(SettingsError) as caught:
        load_settings(rootfi_api_key=["sk-very-secret"])
    assert "sk-very-secret" not in str(caught.value)


def test_a_value_from_the_environment_that_is_not_json_is_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_COLUMNS", "{bad")
    with pytest.raises(SettingsError, match="SOURCE_COLUMNS: not valid JSON"):
        load_settings()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///rootfi_sync.db",
        "sqlite+pysqlite:////var/lib/shop.db",
        "postgresql+psycopg://sync:secret@db.internal:5432/shop",
        "mysql+pymysql://sync:secret@db.internal:3306/shop?charset=utf8mb4",
        "mariadb+pymysql://sync@127.0.0.1/shop",
    ],
)
def test_accepts_sqlite_postgresql_and_mysql_or_mariadb_source_urls(url: str) -> None:
    assert load_settings(source_database_url=url).source_database_url == url


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("oracle+oracledb://sync:secret@db.internal/shop", "unsupported database 'oracle'"),
        ("mssql+pyodbc://sync:secret@db.internal/shop", "unsupported database 'mssql'"),
        ("mysql://sync:secret@db.internal/shop", "unsupported driver 'mysqldb' of 'mysql://'"),
        ("mysql+mysqldb://sync:secret@db.internal/shop", "unsupported driver 'mysqldb'"),
        ("postgresql+psycopg2://sync:secret@db.internal/shop", "unsupported driver 'psycopg2'"),
        ("sqlite+aiosqlite:///shop.db", "unsupported driver 'aiosqlite'"),
        ("shop.db", "is not a database URL"),
    ],
)
def test_refuses_other_source_databases_naming_the_setting_and_the_supported_ones(
    url: str, said: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(source_database_url=url)

    message = str(caught.value)
    assert f"SOURCE_DATABASE_URL: Value error, {said}" in message
    for example in (
        "sqlite:///rootfi_sync.db",
        "postgresql+psycopg://user:password@host:5432/dbname",
        "mysql+pymysql://user:password@host:3306/dbname?charset=utf8mb4",
    ):
        assert example in message
    assert "secret" not in message  # the URL's password is never shown


def test_refuses_an_unsupported_source_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_DATABASE_URL", "mysql+mysqlconnector://sync@db.internal/shop")
    with pytest.raises(SettingsError, match=r"SOURCE_DATABASE_URL: .*mysql\+pymysql://"):
        load_settings()
