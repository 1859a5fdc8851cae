"""The object-store producer: compares the store's sources with what it already announced
and emits upsert and delete events for the difference.

Its bookmark (`state/object_sync.json`) records each source's size, modification times and
version; a source whose listing entry is unchanged is not read again. The bookmark is saved
only after the broker acknowledged the events, so a crash in between announces again, which
consumers absorb, instead of never.
"""

import json
from collections.abc import Callable

from pydantic import BaseModel

from rag_core.documents import (
    WAREHOUSE_PREFIX,
    is_source,
    metadata_key,
    read_source,
    source_version,
)
from rag_core.events import DocumentChange, document_change
from rag_core.objectstore import SOURCES_PREFIX, ObjectStore, StoredObject

STATE_KEY = "state/object_sync.json"


class SourceStamp(BaseModel):
    listing: str  # size and modification times of the source and its sidecar
    version: str


def _listing_stamp(source: StoredObject, sidecar: StoredObject | None) -> str:
    parts = [source.size, source.modified, sidecar.size if sidecar else None,
             sidecar.modified if sidecar else None]  # fmt: skip
    return json.dumps(parts, default=str)


def _load_state(store: ObjectStore) -> dict[str, SourceStamp]:
    if not store.exists(STATE_KEY):
        return {}
    return {
        key: SourceStamp.model_validate(stamp)
        for key, stamp in json.loads(store.get(STATE_KEY)).items()
    }


def scan(store: ObjectStore) -> tuple[list[DocumentChange], dict[str, SourceStamp]]:
    """Events for sources added, changed or removed since the last announcement, and the
    bookmark to save once they are delivered. Warehouse documents are the warehouse
    producer's to announce."""
    state = _load_state(store)
    listing = {
        obj.key: obj
        for obj in store.list(SOURCES_PREFIX)
        if not obj.key.startswith(f"{WAREHOUSE_PREFIX}/")
    }
    events: list[DocumentChange] = []
    new_state: dict[str, SourceStamp] = {}
    for key, obj in listing.items():
        if not is_source(key):
            continue
        stamp = _listing_stamp(obj, listing.get(metadata_key(key)))
        known = state.get(key)
        if known and known.listing == stamp:
            new_state[key] = known
            continue
        source = read_source(store, key)
        if source is None:  # removed while we scanned: the next scan announces it
            if known:
                new_state[key] = known
            continue
        version = source_version(*source)
        new_state[key] = SourceStamp(listing=stamp, version=version)
        if not known or known.version != version:
            events.append(document_change("upsert", key, version, source_position=stamp))
    for key, known in state.items():
        if key not in new_state and key not in listing:
            events.append(document_change("delete", key, None, source_position=known.listing))
    return events, new_state


def sync_object_store(
    store: ObjectStore, publish: Callable[[list[DocumentChange]], None]
) -> list[DocumentChange]:
    """Announce the store's changes through `publish`, then save the bookmark."""
    events, state = scan(store)
    if events:
        publish(events)
    store.put(STATE_KEY, json.dumps({k: v.model_dump() for k, v in state.items()}).encode())
    return events
