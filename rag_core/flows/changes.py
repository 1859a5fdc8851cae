"""The consumer side of change events, shared by the streaming worker and the Dagster sensor.

Events only say which source changed. Each batch is reconciled against the current state
of the object store (and, for table rows, of the warehouse): what exists gets its current
version indexed, what is gone gets retired. So a duplicated, replayed or out-of-order event
finds nothing to do, and exactly-once holds in effect with at-least-once delivery.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Message
from pydantic import BaseModel

from rag_core.adapters.catalog import discover, known_versions, manifest_source_keys, source_keys
from rag_core.adapters.kafka import Position, position
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.chunk_store import ChunkStore
from rag_core.domain.documents import DocumentVersion, InvalidSourceKey, check_source_key
from rag_core.domain.events import DocumentChange, MalformedEvent, TableRowChange, decode, topics
from rag_core.domain.ids import doc_id_for
from rag_core.domain.layout import Artifact, artifact_key
from rag_core.flows.pipeline import access_changes, pending_versions
from rag_core.settings import Settings
from rag_core.sources import warehouse


@dataclass
class ChangeBatch:
    """One poll's events, reduced to the sources they touched."""

    event_times: dict[str, datetime] = field(default_factory=dict)  # source key → earliest
    latest: dict[str, Position] = field(default_factory=dict)  # source key → its last event
    malformed: list[tuple[Message, str]] = field(default_factory=list)


def _row_source_key(settings: Settings, store: ObjectStore, row: TableRowChange) -> str:
    if row.table not in warehouse.collections():
        raise MalformedEvent(f"unknown table {row.table!r}")
    if not warehouse.configured(settings):
        raise MalformedEvent(
            f"no warehouse is configured here ({settings.warehouse_target} target), "
            "so table-row events cannot be applied"
        )
    return warehouse.sync_document(store, settings, row.table, row.row_key)


def _source_key(settings: Settings, store: ObjectStore, message: Message) -> tuple[str, datetime]:
    """The source an event is about; a table-row event first brings the row's document up
    to date in the object store (from the warehouse's current row, not the event)."""
    if message.topic() == topics(settings).tables:
        row = decode(TableRowChange, message.value())
        return _row_source_key(settings, store, row), row.event_time
    document = decode(DocumentChange, message.value())
    try:
        check_source_key(document.source_key, allow_warehouse=False)
    except InvalidSourceKey as exc:
        raise MalformedEvent(f"not a document source key ({exc}): {document.source_key!r}") from exc
    return document.source_key, document.event_time


def read_batch(settings: Settings, store: ObjectStore, messages: Iterable[Message]) -> ChangeBatch:
    """Events that can never be processed land in `malformed`; anything else raised (the
    warehouse or the store unreachable) is transient and fails the batch, to be retried."""
    batch = ChangeBatch()
    for message in messages:
        try:
            key, event_time = _source_key(settings, store, message)
        except MalformedEvent as exc:
            batch.malformed.append((message, str(exc)))
            continue
        batch.event_times[key] = min(batch.event_times.get(key, event_time), event_time)
        batch.latest[key] = max(batch.latest.get(key, position(message)), position(message))
    return batch


def full_batch(store: ObjectStore) -> ChangeBatch:
    """A batch touching every source, present or known from a manifest: reconciling it
    catches up with changes whose events were lost (e.g. an in-memory broker restarted)."""
    now = datetime.now(UTC)
    keys = set(source_keys(store)) | manifest_source_keys(store)
    return ChangeBatch(event_times=dict.fromkeys(sorted(keys), now))


@dataclass
class ChangePlan:
    """What the index must do for a batch."""

    # Current versions not indexed yet, and indexed ones whose rows lack the source's
    # current access (indexing those again only updates the rows' acl and subjects).
    upserts: list[DocumentVersion]
    deletions: dict[str, str]  # doc_id → source key, for sources gone whose data remains
    event_times: dict[str, datetime]  # doc_id → when its change was first announced
    access_only: list[DocumentVersion] = field(default_factory=list)  # the latter upserts

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.deletions


def plan_changes(store: ObjectStore, index: ChunkStore, batch: ChangeBatch) -> ChangePlan:
    keys = list(batch.event_times)
    versions = discover(store, keys)
    present = {version.source_key for version in versions}
    gone = {doc_id_for(store.uri_for(key)): key for key in keys if key not in present}
    indexed = {doc_id for doc_id, _ in index.versions_of(gone)}
    pending = pending_versions(store, index, versions)
    access_only = access_changes(index, [v for v in versions if v not in pending])
    return ChangePlan(
        upserts=pending + access_only,
        access_only=access_only,
        deletions={
            doc_id: key
            for doc_id, key in gone.items()
            if doc_id in indexed or known_versions(store, doc_id)
        },
        event_times={doc_id_for(store.uri_for(k)): t for k, t in batch.event_times.items()},
    )


class Freshness(BaseModel):
    doc_id: str
    version: str
    event_time: datetime
    queryable_at: datetime

    @property
    def lag_seconds(self) -> float:
        return (self.queryable_at - self.event_time).total_seconds()


def record_freshness(
    store: ObjectStore, event_times: dict[str, datetime], indexed: Iterable[DocumentVersion]
) -> list[Freshness]:
    """Record, per indexed version, when its change was announced (`event_times` by doc id)
    and when it became queryable (now)."""
    now = datetime.now(UTC)
    records = [
        Freshness(doc_id=m.doc_id, version=m.version, event_time=event_times[m.doc_id],
                  queryable_at=now)
        for m in indexed
        if m.doc_id in event_times
    ]  # fmt: skip
    for record in records:
        store.put(
            artifact_key(Artifact.FRESHNESS, record.doc_id, record.version),
            record.model_dump_json().encode(),
        )
    return records


def note_announcements(store: ObjectStore, plan: ChangePlan) -> None:
    """Runs path: keep each upsert's event time beside its version, so the run that indexes
    it can record its freshness (the sensor that saw the event is gone by then). The first
    announcement counts: a version announced again waited since the first."""
    for manifest in plan.upserts:
        key = artifact_key(Artifact.ANNOUNCED, manifest.doc_id, manifest.version)
        if manifest.doc_id in plan.event_times and not store.exists(key):
            store.put(key, plan.event_times[manifest.doc_id].isoformat().encode())


def record_announced_freshness(
    store: ObjectStore, indexed: Sequence[DocumentVersion]
) -> list[Freshness]:
    """Freshness of the versions a run indexed whose change events the sensor noted."""
    event_times, noted = {}, []
    for manifest in indexed:
        key = artifact_key(Artifact.ANNOUNCED, manifest.doc_id, manifest.version)
        if store.exists(key):
            event_times[manifest.doc_id] = datetime.fromisoformat(store.get(key).decode())
            noted.append(key)
    records = record_freshness(store, event_times, indexed)
    for key in noted:
        store.delete(key)
    return records


def recent_freshness(store: ObjectStore, limit: int = 200) -> list[Freshness]:
    """The latest freshness records, newest first."""
    objects = sorted(
        store.list(Artifact.FRESHNESS),
        key=lambda obj: obj.modified.timestamp() if obj.modified else 0.0,
        reverse=True,
    )
    return [Freshness.model_validate(json.loads(store.get(obj.key))) for obj in objects[:limit]]
