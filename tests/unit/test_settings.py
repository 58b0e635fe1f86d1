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


@pytest.mark.parametrize(
    ("given", "setting", "company"),
    [(7, None, 7), (7, 1089, 7), (None, 1089, 1089)],
)
def test_the_company_is_the_one_given_else_rootfi_company_id(
    given: int | None, setting: int | None, company: int
) -> None:
    settings = load_settings(rootfi_company_id=setting)
    assert settings.company(given) == company
    assert settings.company(given, required=False) == company


def test_no_company_given_nor_set_is_a_settings_error_naming_rootfi_company_id() -> None:
    settings = load_settings(rootfi_company_id=None)
    with pytest.raises(SettingsError, match="ROOTFI_COMPANY_ID"):
        settings.company(None)
    assert settings.company(None, required=False) is None  # `status`: every company


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
        "sqlite:///rootfi_sync.ledger.db",
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
        "sqlite:///rootfi_sync.ledger.db",
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


PG = "postgresql+psycopg://sync:secret@db.internal:5432/shop"
LEDGER = "sqlite:////var/lib/rootfi-sync/ledger.db"


def test_the_ledger_shares_the_sources_database_unless_it_is_given_its_own() -> None:
    shared = load_settings(source_database_url=PG, ledger_database_url="")
    apart = load_settings(source_database_url=PG, ledger_database_url=LEDGER)

    assert (shared.ledger_url, shared.ledger_apart) == (PG, False)
    assert (apart.ledger_url, apart.ledger_apart) == (LEDGER, True)
    same = load_settings(source_database_url=PG, ledger_database_url=PG)
    assert same.ledger_apart is False  # one database: joined, as without the setting


def test_a_duckdb_source_needs_a_ledger_database_of_its_own() -> None:
    duckdb = "duckdb:////data/warehouse.duckdb"
    with pytest.raises(SettingsError, match=r"SOURCE_DATABASE_URL: .*LEDGER_DATABASE_URL"):
        load_settings(source_database_url=duckdb)
    with pytest.raises(
        SettingsError, match=r"LEDGER_DATABASE_URL: .*'duckdb' can only be a source"
    ):
        load_settings(source_database_url=LEDGER, ledger_database_url=duckdb)
    settings = load_settings(source_database_url=duckdb, ledger_database_url=LEDGER)
    assert settings.ledger_apart


def test_refuses_an_unsupported_ledger_database_naming_the_setting_not_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(ledger_database_url="oracle+oracledb://sync:secret@db.internal/shop")
    assert "LEDGER_DATABASE_URL: Value error, unsupported database 'oracle'" in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("table", "ledger_url", "schema", "name", "ledger_schema"),
    [
        ("customers", None, None, "customers", None),
        ("crm.customers", None, "crm", "customers", "crm"),  # PostgreSQL: beside the table
        ("crm.customers", LEDGER, "crm", "customers", None),  # the ledger's own database
    ],
)
def test_source_table_may_name_its_schema_and_the_ledger_follows_it_on_postgresql(
    table: str, ledger_url: str | None, schema: str, name: str, ledger_schema: str | None
) -> None:
    settings = load_settings(
        source_database_url=PG, source_table=table, ledger_database_url=ledger_url
    )

    assert (settings.source_schema, settings.source_name) == (schema, name)
    assert settings.ledger_schema_name == ledger_schema
    chosen = load_settings(source_database_url=PG, source_table=table, ledger_schema="sync")
    assert chosen.ledger_schema_name == "sync"


def test_the_ledger_stays_in_the_default_database_on_mysql() -> None:
    url = "mysql+pymysql://sync@db.internal/shop"
    settings = load_settings(source_database_url=url, source_table="crm.customers")
    assert (settings.source_schema, settings.ledger_schema_name) == ("crm", None)


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"source_table": "a.b.c"}, "SOURCE_TABLE: Value error, must be a table"),
        ({"source_table": ".customers"}, "SOURCE_TABLE: Value error, must be a table"),
        ({"source_table": "main.customers"}, "SOURCE_TABLE: Value error, 'main': a schema"),
        ({"ledger_schema": "sync"}, "LEDGER_SCHEMA: Value error, a schema (an attached"),
    ],
)
def test_refuses_a_schema_on_sqlite_and_a_table_name_of_more_parts(
    overrides: dict[str, str], said: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(source_database_url="sqlite:///shop.db", **overrides)
    assert said in str(caught.value)


@pytest.mark.parametrize("value", ["name,mail", "city", ""])
def test_names_match_fields_that_cannot_identify_a_customer(value: str) -> None:
    with pytest.raises(SettingsError, match="ROOTFI_MATCH_FIELDS"):
        load_settings(rootfi_match_fields=value)


def test_reads_the_match_fields_and_the_resend_policy() -> None:
    settings = load_settings(rootfi_match_fields="Email, phone", rootfi_resend_in_doubt="never")
    assert (settings.match_fields, settings.rootfi_resend_in_doubt) == (("email", "phone"), "never")


def test_refuses_an_unknown_resend_policy() -> None:
    with pytest.raises(SettingsError, match="ROOTFI_RESEND_IN_DOUBT"):
        load_settings(rootfi_resend_in_doubt="sometimes")


def test_a_write_mode_counts_as_forced_only_when_rootfi_write_mode_was_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROOTFI_WRITE_MODE", raising=False)
    assert load_settings(_env_file=None).forced_write_mode is None
    assert load_settings(_env_file=None).rootfi_write_mode == "single"  # a run of one company
    monkeypatch.setenv("ROOTFI_WRITE_MODE", "single")
    assert load_settings(_env_file=None).forced_write_mode == "single"
    monkeypatch.delenv("ROOTFI_WRITE_MODE")
    assert load_settings(_env_file=None, rootfi_write_mode="batch").forced_write_mode == "batch"
