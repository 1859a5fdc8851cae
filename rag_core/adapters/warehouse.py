"""The warehouse producer: dbt renders table rows into document models, and diffing each model
against the versions already announced turns inserts, updates and deletes into `TableRowChange`
events. The consumer side (`sync_row_document`) rereads the current row for every event, so
duplicated, stale or reordered events cannot regress a document.

DuckDB (embedded) and Snowflake are reached through DB-API cursors with the same SQL, using
qmark (`?`) parameters. Table names only ever come from `DOCUMENT_MODELS`.
"""

import csv
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import BaseModel

from rag_core.domain.documents import (
    WAREHOUSE_PREFIX,
    SourceMetadata,
    delete_source,
    is_source,
    normalize_subject,
    put_source,
)
from rag_core.domain.events import TableRowChange, table_row_change
from rag_core.domain.ids import digest
from rag_core.adapters.objectstore import ObjectStore
from rag_core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
SAMPLE_CSV = REPO_ROOT / "sample_warehouse" / "support_tickets.csv"

DOCUMENT_MODELS = ("support_ticket_documents",)
STATE_TABLE = "rag_sync_state"
LOCK_WAIT_SECONDS = 5.0

# Extra `snowflake.connector.connect` arguments, e.g. login_timeout or network_timeout: the
# connector's defaults retry for minutes, which callers that must fail fast can shorten.
SNOWFLAKE_CONNECT_OPTIONS: dict[str, Any] = {}

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached, is busy, or dbt failed; the message says which."""


class Cursor(Protocol):
    def execute(self, query: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, query: str, parameters: Any, /) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


class RenderedRow(BaseModel):
    """One row of a document model, as the document it renders to."""

    table: str
    row_key: str
    title: str
    text: str
    acl: list[str]
    subjects: list[str]
    updated_at: datetime
    row_version: str

    def markdown(self) -> str:
        return f"# {self.title}\n\n{self.text}"


# Connections


def _open_duckdb(path: Path, read_only: bool) -> Connection:
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
        password=settings.snowflake_password.get_secret_value(),
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
        connection = _open_duckdb(settings.warehouse_path, read_only)
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def _transaction(cursor: Cursor) -> Iterator[None]:
    cursor.execute("BEGIN")
    try:
        yield
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")


# Sample data and dbt


def load_sample(settings: Settings, csv_path: Path = SAMPLE_CSV) -> int:
    """(Re)create `raw.support_tickets` from a CSV, every column as text; returns the rows."""
    with csv_path.open(newline="", encoding="utf-8") as file:
        header, *rows = list(csv.reader(file))
    columns = [name.strip().lower() for name in header]
    if bad := [name for name in columns if not _IDENTIFIER.fullmatch(name)]:
        raise ValueError(f"{csv_path}: column names must be plain identifiers, not {bad}")
    with connect(settings) as connection:
        cursor = connection.cursor()
        cursor.execute("CREATE SCHEMA IF NOT EXISTS raw")
        cursor.execute(
            "CREATE OR REPLACE TABLE raw.support_tickets ("
            + ", ".join(f"{name} VARCHAR" for name in columns)
            + ")"
        )
        if rows:
            cursor.executemany(
                f"INSERT INTO raw.support_tickets ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                rows,
            )
    return len(rows)


def dbt_env(settings: Settings) -> dict[str, str]:
    """The variables `dbt_project/profiles.yml` reads, from settings."""
    env = {
        "RAG_WAREHOUSE_TARGET": settings.warehouse_target,
        "RAG_WAREHOUSE_PATH": str(settings.warehouse_path),
        # Keep dbt off the internet: no usage statistics, no check for a newer release.
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
    }
    if settings.warehouse_target == "snowflake":
        env |= {
            "RAG_SNOWFLAKE_ACCOUNT": settings.snowflake_account,
            "RAG_SNOWFLAKE_USER": settings.snowflake_user,
            "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD": settings.snowflake_password.get_secret_value(),
            "RAG_SNOWFLAKE_DATABASE": settings.snowflake_database,
            "RAG_SNOWFLAKE_SCHEMA": settings.snowflake_schema,
            "RAG_SNOWFLAKE_WAREHOUSE": settings.snowflake_warehouse,
            "RAG_SNOWFLAKE_ROLE": settings.snowflake_role,
            "RAG_SNOWFLAKE_HOST": settings.snowflake_host,
            "RAG_SNOWFLAKE_PORT": str(settings.snowflake_port),
            "RAG_SNOWFLAKE_PROTOCOL": settings.snowflake_protocol,
        }
    return env


@contextmanager
def dbt_environment(settings: Settings) -> Iterator[None]:
    """Set `dbt_env` in this process while dbt starts: in-process dbt and dagster-dbt's
    subprocesses both take their profile variables from `os.environ`."""
    env = dbt_env(settings)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_paths(settings: Settings) -> tuple[Path, Path]:
    """dbt's target and log folders, under RAG_HOME so the repository stays clean."""
    return settings.home / "dbt" / "target", settings.home / "dbt" / "logs"


def dbt_executable() -> str:
    """The venv's dbt, which need not be on PATH."""
    beside_python = Path(sys.executable).with_name("dbt")
    return str(beside_python) if beside_python.exists() else "dbt"


def _dbt_failure(command: str, result: Any) -> str:
    if result.exception is not None:
        return f"dbt {command} failed: {result.exception}"
    failures = [
        f"{node.node.name}: {node.message or node.status}"
        for node in getattr(result.result, "results", [])
        if str(node.status) in {"error", "fail", "runtime error"}
    ]
    return f"dbt {command} failed: " + ("; ".join(failures) or "see the dbt log")


def run_dbt(settings: Settings, args: Sequence[str], target_path: Path | None = None) -> None:
    """Run a dbt command in-process against the configured target."""
    from dbt.cli.main import dbtRunner

    default_target, log_path = dbt_paths(settings)
    argv = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        settings.warehouse_target,
        "--target-path",
        str(target_path or default_target),
        "--log-path",
        str(log_path),
        "--quiet",
    ]
    with dbt_environment(settings):
        result = dbtRunner().invoke(argv)
    if not result.success:
        raise WarehouseError(_dbt_failure(args[0], result))


def build_models(settings: Settings) -> None:
    """`dbt build`: (re)create the models and run their tests."""
    run_dbt(settings, ["build"])


# Rendered rows


def _model(table: str) -> str:
    if table not in DOCUMENT_MODELS:
        raise ValueError(f"{table!r} is not a document model (known: {', '.join(DOCUMENT_MODELS)})")
    return table


def _split(values: str | None) -> list[str]:
    return [value.strip() for value in (values or "").split(",") if value.strip()]


def _rendered(table: str, record: Sequence[Any]) -> RenderedRow:
    row_key, title, text, acl, subjects, updated_at = record
    acl_list, subject_list = _split(acl), [normalize_subject(s) for s in _split(subjects)]
    return RenderedRow(
        table=table,
        row_key=str(row_key),
        title=title,
        text=text,
        acl=acl_list,
        subjects=subject_list,
        updated_at=updated_at,
        row_version=digest(title, text, ",".join(acl_list), ",".join(subject_list), length=16),
    )


def _select_rows(cursor: Cursor, table: str, row_key: str | None = None) -> list[RenderedRow]:
    query = f"SELECT row_key, title, body, acl, subjects, updated_at FROM {_model(table)}"
    if row_key is None:
        cursor.execute(query)
    else:
        cursor.execute(f"{query} WHERE row_key = ?", [row_key])
    return [_rendered(table, record) for record in cursor.fetchall()]


def rendered_rows(settings: Settings, table: str) -> dict[str, RenderedRow]:
    _model(table)
    with connect(settings, read_only=True) as connection:
        return {row.row_key: row for row in _select_rows(connection.cursor(), table)}


def row_counts(settings: Settings) -> dict[str, int]:
    """Rows in each document model."""
    counts = {}
    with connect(settings, read_only=True) as connection:
        cursor = connection.cursor()
        for table in DOCUMENT_MODELS:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = int(cursor.fetchall()[0][0])
    return counts


def fetch_row(settings: Settings, table: str, row_key: str) -> RenderedRow | None:
    _model(table)
    with connect(settings, read_only=True) as connection:
        rows = _select_rows(connection.cursor(), table, row_key)
    return rows[0] if rows else None


# Change detection


def _ensure_state_table(cursor: Cursor) -> None:
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
        "table_name VARCHAR NOT NULL, row_key VARCHAR NOT NULL, "
        "row_version VARCHAR NOT NULL, emitted_at TIMESTAMP NOT NULL, "
        "PRIMARY KEY (table_name, row_key))"
    )


def _emitted_versions(cursor: Cursor, table: str) -> dict[str, str]:
    cursor.execute(f"SELECT row_key, row_version FROM {STATE_TABLE} WHERE table_name = ?", [table])
    return {row_key: row_version for row_key, row_version in cursor.fetchall()}


def diff_rows(
    table: str, rows: dict[str, RenderedRow], emitted: dict[str, str], observed_at: datetime
) -> list[TableRowChange]:
    """Upserts for rows whose version was never emitted, deletes for emitted rows now gone."""
    upserts = [
        table_row_change("upsert", table, key, row.row_version, row.updated_at.isoformat())
        for key, row in sorted(rows.items())
        if emitted.get(key) != row.row_version
    ]
    deletes = [
        table_row_change("delete", table, key, None, observed_at.isoformat())
        for key in sorted(emitted.keys() - rows.keys())
    ]
    return upserts + deletes


def row_changes(settings: Settings) -> list[TableRowChange]:
    """Every document-model row changed since `record_emitted` last saw it."""
    changes = []
    with connect(settings) as connection:
        cursor = connection.cursor()
        _ensure_state_table(cursor)
        for table in DOCUMENT_MODELS:
            rows = {row.row_key: row for row in _select_rows(cursor, table)}
            emitted = _emitted_versions(cursor, table)
            changes += diff_rows(table, rows, emitted, datetime.now(UTC))
    return changes


def record_emitted(settings: Settings, changes: Iterable[TableRowChange]) -> None:
    """Remember that these changes were published (acknowledged by the broker)."""
    latest = {(_model(change.table), change.row_key): change for change in changes}
    if not latest:
        return
    # Naive UTC, the same in DuckDB's and Snowflake's TIMESTAMP (without time zone).
    emitted_at = datetime.now(UTC).replace(tzinfo=None)
    upserts = [
        (table, key, change.row_version, emitted_at)
        for (table, key), change in latest.items()
        if change.op == "upsert"
    ]
    with connect(settings) as connection:
        cursor = connection.cursor()
        _ensure_state_table(cursor)
        with _transaction(cursor):
            cursor.executemany(
                f"DELETE FROM {STATE_TABLE} WHERE table_name = ? AND row_key = ?", list(latest)
            )
            if upserts:
                cursor.executemany(
                    f"INSERT INTO {STATE_TABLE} (table_name, row_key, row_version, emitted_at) "
                    "VALUES (?, ?, ?, ?)",
                    upserts,
                )


def emit_row_changes(
    settings: Settings, publish: Callable[[list[TableRowChange]], None]
) -> list[TableRowChange]:
    """Diff, publish, then record. State moves only after `publish` returns, so a failure in
    between announces the same changes again (at least once) instead of losing them."""
    changes = row_changes(settings)
    if changes:
        publish(changes)
        record_emitted(settings, changes)
    return changes


# Consumer side


def row_source_key(table: str, row_key: str) -> str:
    """Object key of a row's document; the row key is quoted into one safe path segment."""
    return f"{WAREHOUSE_PREFIX}/{table}/{quote(row_key, safe='')}.md"


def _put_row(store: ObjectStore, row: RenderedRow) -> str:
    key = row_source_key(row.table, row.row_key)
    metadata = SourceMetadata(acl=row.acl, subjects=row.subjects)
    put_source(store, key, row.markdown().encode(), metadata)
    return key


def sync_row_document(store: ObjectStore, settings: Settings, table: str, row_key: str) -> str:
    """Make the row's source file match the row as it is now (written, or deleted when the row
    is gone); returns its key. Unknown tables raise ValueError."""
    row = fetch_row(settings, table, row_key)
    if row is not None:
        return _put_row(store, row)
    key = row_source_key(table, row_key)
    delete_source(store, key)
    return key


def sync_documents(store: ObjectStore, settings: Settings) -> list[str]:
    """Mirror every document model into the store at once (for a backfill): each row's source
    written, sources of rows that are gone deleted. Returns the keys of the current rows."""
    keys: list[str] = []
    for table in DOCUMENT_MODELS:
        current = {_put_row(store, row) for row in rendered_rows(settings, table).values()}
        for stale in store.list(f"{WAREHOUSE_PREFIX}/{table}"):
            if is_source(stale.key) and stale.key not in current:
                delete_source(store, stale.key)
        keys += sorted(current)
    return keys


# Erasure

# Where each document model's rows come from: source table, key column, subject column.
MODEL_SOURCES = {"support_ticket_documents": ("raw.support_tickets", "ticket_id", "customer_email")}


def _is_subject(column: str) -> str:
    """SQL matching a normalized subject (`normalize_subject`) in a raw column."""
    return f"lower(trim({column})) = ?"


def rows_about(settings: Settings, subject: str) -> dict[str, list[str]]:
    """Row keys, per document model, of the rows whose subjects include `subject`."""
    return {
        table: sorted(
            key for key, row in rendered_rows(settings, table).items() if subject in row.subjects
        )
        for table in DOCUMENT_MODELS
    }


def erase_rows(settings: Settings, table: str, row_keys: Sequence[str], subject: str) -> None:
    """Delete the rows from the source table (every version of them, and any other row about
    the subject), from the model built on it, and from the producer's state, in one
    transaction. The next `dbt build` rebuilds the model without them."""
    source, key_column, subject_column = MODEL_SOURCES[_model(table)]
    keys = [[key] for key in row_keys]
    with connect(settings) as connection:
        cursor = connection.cursor()
        _ensure_state_table(cursor)
        with _transaction(cursor):
            cursor.execute(f"DELETE FROM {source} WHERE {_is_subject(subject_column)}", [subject])
            if keys:
                cursor.executemany(f"DELETE FROM {source} WHERE {key_column} = ?", keys)
                cursor.executemany(f"DELETE FROM {table} WHERE row_key = ?", keys)
                cursor.executemany(
                    f"DELETE FROM {STATE_TABLE} WHERE table_name = ? AND row_key = ?",
                    [[table, key] for key in row_keys],
                )
    if settings.warehouse_target != "snowflake":
        _rewrite_duckdb_file(settings.warehouse_path)


def _rewrite_duckdb_file(path: Path) -> None:
    """Copy the database into a fresh file and move that into place. DuckDB keeps deleted
    rows' bytes in the free blocks of its file, through CHECKPOINT and VACUUM alike; erased
    rows must leave none. The copy runs under the writer's lock with the log checkpointed,
    so no write is lost and no stale log is replayed into the new file."""
    fresh = path.with_name(f"{path.name}.rewrite")
    fresh.unlink(missing_ok=True)
    connection = _open_duckdb(path, read_only=False)
    try:
        cursor = connection.cursor()
        cursor.execute("CHECKPOINT")
        cursor.execute("SELECT current_database()")
        catalog = cursor.fetchall()[0][0]
        cursor.execute(f"ATTACH '{fresh}' AS erasure_rewrite")
        cursor.execute(f'COPY FROM DATABASE "{catalog}" TO erasure_rewrite')
        cursor.execute("DETACH erasure_rewrite")
        os.replace(fresh, path)
    finally:
        connection.close()
        fresh.unlink(missing_ok=True)


def rows_left_about(settings: Settings, subject: str) -> int:
    """Rows in the source tables and document models that still concern `subject`."""
    left = sum(len(keys) for keys in rows_about(settings, subject).values())
    with connect(settings, read_only=True) as connection:
        cursor = connection.cursor()
        for source, _, subject_column in MODEL_SOURCES.values():
            cursor.execute(
                f"SELECT count(*) FROM {source} WHERE {_is_subject(subject_column)}", [subject]
            )
            left += int(cursor.fetchall()[0][0])
    return left
