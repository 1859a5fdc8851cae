"""Change data capture for the document models: diffing each model against the row
versions already announced turns inserts, updates and deletes into `TableRowChange` events.
What was announced is kept in the warehouse itself (`STATE_TABLE`)."""

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from rag_core.adapters.warehouse.connection import Cursor, connect, transaction
from rag_core.adapters.warehouse.rows import (
    RenderedRow,
    document_model,
    document_models,
    select_rows,
)
from rag_core.domain.events import TableRowChange, table_row_change
from rag_core.settings import Settings

STATE_TABLE = "rag_sync_state"


def ensure_state_table(cursor: Cursor) -> None:
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
        "table_name VARCHAR NOT NULL, row_key VARCHAR NOT NULL, "
        "row_version VARCHAR NOT NULL, emitted_at TIMESTAMP NOT NULL, "
        "PRIMARY KEY (table_name, row_key))"
    )


def forget_emitted(cursor: Cursor, rows: Sequence[tuple[str, str]]) -> None:
    """Drop what was announced about these (table, row key) pairs, inside the caller's
    transaction."""
    cursor.executemany(f"DELETE FROM {STATE_TABLE} WHERE table_name = ? AND row_key = ?", rows)


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
        ensure_state_table(cursor)
        for table in document_models():
            rows = {row.row_key: row for row in select_rows(cursor, table)}
            emitted = _emitted_versions(cursor, table)
            changes += diff_rows(table, rows, emitted, datetime.now(UTC))
    return changes


def record_emitted(settings: Settings, changes: Iterable[TableRowChange]) -> None:
    """Remember that these changes were published (acknowledged by the broker)."""
    latest = {(document_model(change.table).name, change.row_key): change for change in changes}
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
        ensure_state_table(cursor)
        with transaction(cursor):
            forget_emitted(cursor, list(latest))
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
