"""Connections to the warehouse: the embedded DuckDB file, or Snowflake. Both are reached
through DB-API cursors with the same SQL, using qmark (`?`) parameters."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from rag_core.settings import Settings

LOCK_WAIT_SECONDS = 5.0

# Extra `snowflake.connector.connect` arguments, e.g. login_timeout or network_timeout: the
# connector's defaults retry for minutes, which callers that must fail fast can shorten.
SNOWFLAKE_CONNECT_OPTIONS: dict[str, Any] = {}


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached, is busy, or dbt failed; the message says which."""


class Cursor(Protocol):
    def execute(self, query: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, query: str, parameters: Any, /) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


def open_duckdb(path: Path, read_only: bool) -> Connection:
    """Open the DuckDB file, waiting briefly while another process holds its lock."""
    import duckdb

    if read_only and not path.exists():
        raise WarehouseError(f"no warehouse at {path}: load data and build the models first")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise WarehouseError(
                    f"the DuckDB warehouse {path} stayed locked by another process for "
                    f"{LOCK_WAIT_SECONDS:.0f} s (DuckDB allows one writing process): {exc}"
                ) from exc
        time.sleep(0.1)


def snowflake_private_key_der(settings: Settings) -> bytes:
    """`snowflake_private_key` (PEM, opened with its passphrase if any) as unencrypted PKCS#8
    DER, what the connector takes. A key that cannot be read raises `WarehouseError` saying
    why (never its content)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        load_pem_private_key,
    )

    pem = settings.snowflake_private_key.get_secret_value().encode()
    passphrase = settings.snowflake_private_key_passphrase.get_secret_value().encode()
    try:
        key = load_pem_private_key(pem, password=passphrase or None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise WarehouseError(f"RAG_SNOWFLAKE_PRIVATE_KEY cannot be read: {exc}") from None
    if not isinstance(key, RSAPrivateKey):
        raise WarehouseError("RAG_SNOWFLAKE_PRIVATE_KEY is not an RSA key, which Snowflake needs")
    return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


def _snowflake_credentials(settings: Settings) -> dict[str, Any]:
    """A key pair's private key when one is set, else the password."""
    if settings.snowflake_private_key.get_secret_value():
        return {"private_key": snowflake_private_key_der(settings)}
    return {"password": settings.snowflake_password.get_secret_value()}


def _open_snowflake(settings: Settings) -> Connection:
    import snowflake.connector

    endpoint = (
        {
            "host": settings.snowflake_host,
            "port": settings.snowflake_port,
            "protocol": settings.snowflake_protocol,
        }
        if settings.snowflake_host
        else {}
    )
    connection: Connection = snowflake.connector.connect(
        account=settings.snowflake_account,
        user=settings.snowflake_user,
        **_snowflake_credentials(settings),
        database=settings.snowflake_database,
        schema=settings.snowflake_schema,
        warehouse=settings.snowflake_warehouse or None,
        role=settings.snowflake_role or None,
        paramstyle="qmark",
        **endpoint,
        **SNOWFLAKE_CONNECT_OPTIONS,
    )
    return connection


def configured(settings: Settings) -> bool:
    """Whether there is a warehouse to read: Snowflake when targeted, else the DuckDB file."""
    return settings.warehouse_target == "snowflake" or settings.warehouse_path.exists()


@contextmanager
def connect(settings: Settings, *, read_only: bool = False) -> Iterator[Connection]:
    """A connection to the configured warehouse, closed on exit. Keep it brief: an open DuckDB
    connection locks the file against other processes (read-only ones only against writers)."""
    if settings.warehouse_target == "snowflake":
        connection = _open_snowflake(settings)
    else:
        connection = open_duckdb(settings.warehouse_path, read_only)
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def transaction(cursor: Cursor) -> Iterator[None]:
    cursor.execute("BEGIN")
    try:
        yield
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
