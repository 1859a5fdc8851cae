"""Erasing a data subject from the warehouse: their rows in the source tables (every
version), in the document models built on them and in the producer's state, and the bytes
DuckDB would otherwise keep in its file."""

import os
from collections.abc import Sequence
from pathlib import Path

from rag_core.adapters.warehouse.cdc import ensure_state_table, forget_emitted
from rag_core.adapters.warehouse.connection import connect, open_duckdb, transaction
from rag_core.adapters.warehouse.rows import document_model, document_models, rendered_rows
from rag_core.settings import Settings


def _is_subject(column: str) -> str:
    """SQL matching a normalized subject (`normalize_subject`) in a raw column."""
    return f"lower(trim({column})) = ?"


def rows_about(settings: Settings, subject: str) -> dict[str, list[str]]:
    """Row keys, per document model, of the rows whose subjects include `subject`."""
    return {
        table: sorted(
            key for key, row in rendered_rows(settings, table).items() if subject in row.subjects
        )
        for table in document_models()
    }


def erase_rows(settings: Settings, table: str, row_keys: Sequence[str], subject: str) -> None:
    """Delete the rows from the source table (every version of them, and any other row about
    the subject), from the model built on it, and from the producer's state, in one
    transaction. The next `dbt build` rebuilds the model without them."""
    model = document_model(table)
    keys = [[key] for key in row_keys]
    with connect(settings) as connection:
        cursor = connection.cursor()
        ensure_state_table(cursor)
        with transaction(cursor):
            cursor.execute(
                f"DELETE FROM {model.source_table} WHERE {_is_subject(model.subject_column)}",
                [subject],
            )
            if keys:
                cursor.executemany(
                    f"DELETE FROM {model.source_table} WHERE {model.key_column} = ?", keys
                )
                cursor.executemany(f"DELETE FROM {model.name} WHERE row_key = ?", keys)
                forget_emitted(cursor, [(model.name, key) for key in row_keys])
    if settings.warehouse_target != "snowflake":
        _rewrite_duckdb_file(settings.warehouse_path)


def _rewrite_duckdb_file(path: Path) -> None:
    """Copy the database into a fresh file and move that into place. DuckDB keeps deleted
    rows' bytes in the free blocks of its file, through CHECKPOINT and VACUUM alike; erased
    rows must leave none. The copy runs under the writer's lock with the log checkpointed,
    so no write is lost and no stale log is replayed into the new file."""
    fresh = path.with_name(f"{path.name}.rewrite")
    fresh.unlink(missing_ok=True)
    connection = open_duckdb(path, read_only=False)
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
        for model in document_models().values():
            cursor.execute(
                f"SELECT count(*) FROM {model.source_table} "
                f"WHERE {_is_subject(model.subject_column)}",
                [subject],
            )
            left += int(cursor.fetchall()[0][0])
    return left
