"""The object-store producer: compares the store's sources with what it already announced
(on its first scan, with the manifests of what was indexed) and emits upsert and delete
events for the difference.

Its bookmark (`layout.SYNC_STATE_KEY`) records each source's size, modification times and
version; a source whose listing entry is unchanged is not read again, unless it was modified
around the previous scan (S3 keeps modification times to the second, so a same-size rewrite
within that second looks unchanged). The bookmark is saved
only after the broker acknowledged the events, so a crash in between announces again, which
consumers absorb, instead of never. Erasure drops erased sources from it (`forget_sources`).
"""

import json
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from rag_core.adapters.catalog import manifest_source_keys, read_source
from rag_core.adapters.objectstore import ObjectStore, StoredObject
from rag_core.domain.documents import SourceMetadata, is_source
from rag_core.domain.events import DocumentChange, document_change
from rag_core.domain.ids import digest, version_for
from rag_core.domain.layout import SOURCES_PREFIX, SYNC_STATE_KEY, is_warehouse_source, metadata_key

# Listing times are to the second on S3; allow for that and a little clock skew.
MTIME_RESOLUTION = timedelta(seconds=2)


class SourceStamp(BaseModel):
    listing: str  # size and modification times of the source and its sidecar
    version: str  # of the content
    access: str = ""  # hash of the sidecar's acl and subjects


def _access_stamp(metadata: SourceMetadata) -> str:
    """Empty without metadata, as in bookmarks saved before access was stamped, so those
    sources are not announced again."""
    return "" if metadata == SourceMetadata() else digest(metadata.model_dump_json(), length=16)


def _listing_stamp(source: StoredObject, sidecar: StoredObject | None) -> str:
    parts = [source.size, source.modified, sidecar.size if sidecar else None,
             sidecar.modified if sidecar else None]  # fmt: skip
    return json.dumps(parts, default=str)


class SyncState(BaseModel):
    scanned_at: datetime | None = None
    sources: dict[str, SourceStamp] = {}


def _load_state(store: ObjectStore) -> SyncState:
    if not store.exists(SYNC_STATE_KEY):
        return SyncState()
    return SyncState.model_validate_json(store.get(SYNC_STATE_KEY))


def _settled_before(objects: list[StoredObject | None], since: datetime | None) -> bool:
    """Whether these objects were last modified safely before `since` (the last scan)."""
    times = [obj.modified for obj in objects if obj is not None]
    return since is not None and all(t is not None and t < since - MTIME_RESOLUTION for t in times)


def scan(store: ObjectStore) -> tuple[list[DocumentChange], SyncState]:
    """Events for sources added, changed or removed since the last announcement, and the
    bookmark to save once they are delivered. Warehouse documents are the warehouse
    producer's to announce."""
    state = _load_state(store)
    scanned_at = datetime.now(UTC)
    listing = {
        obj.key: obj for obj in store.list(SOURCES_PREFIX) if not is_warehouse_source(obj.key)
    }
    events: list[DocumentChange] = []
    sources: dict[str, SourceStamp] = {}
    for key, obj in listing.items():
        if not is_source(key):
            continue
        sidecar = listing.get(metadata_key(key))
        stamp = _listing_stamp(obj, sidecar)
        known = state.sources.get(key)
        if known and known.listing == stamp and _settled_before([obj, sidecar], state.scanned_at):
            sources[key] = known
            continue
        source = read_source(store, key)
        if source is None:  # removed while we scanned: the next scan announces it
            if known:
                sources[key] = known
            continue
        content, metadata = source
        current = SourceStamp(
            listing=stamp, version=version_for(content), access=_access_stamp(metadata)
        )
        sources[key] = current
        if not known or (known.version, known.access) != (current.version, current.access):
            events.append(document_change("upsert", key, current.version, source_position=stamp))
    for key in _vanished(store, state, listing):
        position = state.sources[key].listing if key in state.sources else "manifest"
        events.append(document_change("delete", key, None, source_position=position))
    return events, SyncState(scanned_at=scanned_at, sources=sources)


def _vanished(store: ObjectStore, state: SyncState, listing: dict[str, StoredObject]) -> set[str]:
    """Sources announced before and gone now. Without a bookmark (the first scan, or a lost
    one) the manifests say what was indexed, so a source ingested and removed before any
    scan is still announced as deleted."""
    known = set(state.sources)
    if state.scanned_at is None:
        known |= {key for key in manifest_source_keys(store) if not is_warehouse_source(key)}
    return {key for key in known if key not in listing}


def forget_sources(store: ObjectStore, keys: Collection[str]) -> int:
    """Drop erased sources from the bookmark, which would otherwise keep their keys (paths,
    which may name a person) until the next scan; returns how many it held. Every stored
    version of the bookmark goes (on a versioned bucket each one names them), then it is
    written again; a crash in between loses it, and the next scan announces from the
    manifests, which consumers absorb. The next scan has nothing to say about the erased
    sources: erasure already removed all a delete event would."""
    state = _load_state(store)
    erased = set(keys) & set(state.sources)
    if erased:
        kept = {key: stamp for key, stamp in state.sources.items() if key not in erased}
        store.purge(SYNC_STATE_KEY)
        store.put(
            SYNC_STATE_KEY, state.model_copy(update={"sources": kept}).model_dump_json().encode()
        )
    return len(erased)


def sync_object_store(
    store: ObjectStore, publish: Callable[[list[DocumentChange]], None]
) -> list[DocumentChange]:
    """Announce the store's changes through `publish`, then save the bookmark."""
    events, state = scan(store)
    if events:
        publish(events)
    store.put(SYNC_STATE_KEY, state.model_dump_json().encode())
    return events
