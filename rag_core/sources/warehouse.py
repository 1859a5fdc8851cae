"""The warehouse as a source: each row of a document model (`adapters.warehouse.rows`) is a
document at `documents/warehouse/<model>/<row key>.md`, with the row's acl and subjects in its
sidecar. Changed rows are announced as `TableRowChange` events (`adapters.warehouse.cdc`); for
every event the consumer rereads the row as it is now (`sync_document`), so duplicated, stale
or reordered events cannot regress a document."""

from collections.abc import Callable, Collection, Mapping, Sequence

from rag_core.adapters.catalog import delete_source, put_source
from rag_core.adapters.objectstore import ObjectStore
from rag_core.adapters.warehouse import cdc, connection, erasure, rows
from rag_core.domain.documents import SourceMetadata, is_source
from rag_core.domain.events import TableRowChange
from rag_core.domain.layout import warehouse_row_key, warehouse_table_prefix
from rag_core.settings import Settings


def configured(settings: Settings) -> bool:
    return connection.configured(settings)


def collections() -> Collection[str]:
    """The document models."""
    return rows.document_models().keys()


def announce_changes(
    settings: Settings, publish: Callable[[list[TableRowChange]], None]
) -> list[TableRowChange]:
    return cdc.emit_row_changes(settings, publish)


def document_key(collection: str, record_key: str) -> str:
    """The row key is quoted into one safe path segment."""
    return warehouse_row_key(collection, record_key)


def _put_row(store: ObjectStore, row: rows.RenderedRow) -> str:
    key = document_key(row.table, row.row_key)
    metadata = SourceMetadata(acl=row.acl, subjects=row.subjects)
    put_source(store, key, row.markdown().encode(), metadata)
    return key


def sync_document(store: ObjectStore, settings: Settings, collection: str, record_key: str) -> str:
    """Unknown models raise ValueError."""
    row = rows.fetch_row(settings, collection, record_key)
    if row is not None:
        return _put_row(store, row)
    key = document_key(collection, record_key)
    delete_source(store, key)
    return key


def sync_documents(store: ObjectStore, settings: Settings) -> list[str]:
    keys: list[str] = []
    for table in rows.document_models():
        current = {_put_row(store, row) for row in rows.rendered_rows(settings, table).values()}
        for stale in store.list(warehouse_table_prefix(table)):
            if is_source(stale.key) and stale.key not in current:
                delete_source(store, stale.key)
        keys += sorted(current)
    return keys


def records_about(settings: Settings, subject: str) -> dict[str, list[str]]:
    return erasure.rows_about(settings, subject)


def erase_records(settings: Settings, subject: str, records: Mapping[str, Sequence[str]]) -> int:
    """Every model is erased of the subject, also those none of `records` is in: a source
    table may hold rows about the subject that no model row shows (older versions)."""
    for table in rows.document_models():
        erasure.erase_rows(settings, table, records.get(table, []), subject)
    return sum(len(keys) for keys in records.values())


def records_left_about(settings: Settings, subject: str) -> int:
    return erasure.rows_left_about(settings, subject)
