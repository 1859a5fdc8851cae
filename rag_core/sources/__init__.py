"""Sources: the systems of record whose records the platform indexes as documents.

Each connector is one module implementing `Source` with plain functions, listed in `SOURCES`;
its Dagster schedule or sensor calls `announce_changes`. The object store's own `documents/`
folder, where people put files, needs no connector: its files are the documents.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.events import ChangeEvent
from rag_core.settings import Settings
from rag_core.sources import warehouse


class Source(Protocol):
    """What a connector does. Its records sit in collections (a warehouse's document models,
    a wiki's spaces, a file share's folders), each under a key. It renders every record as a
    source document (Markdown, with the record's acl and subjects in the access sidecar) in
    its own folder of the object store, announces the records that changed as events, and
    erases what it holds about a data subject."""

    def configured(self, settings: Settings) -> bool:
        """Whether this deployment has the source; flows leave it alone otherwise."""
        ...

    def collections(self) -> Collection[str]:
        """The collections an event or an erasure target may name."""
        ...

    def announce_changes(
        self, settings: Settings, publish: Callable[[Sequence[ChangeEvent]], None]
    ) -> Sequence[ChangeEvent]:
        """Publish the records changed since the last announcement, and return those events.
        At least once: the source's bookmark moves only after `publish` returns."""
        ...

    def document_key(self, collection: str, record_key: str) -> str:
        """The object key of a record's document."""
        ...

    def sync_document(
        self, store: ObjectStore, settings: Settings, collection: str, record_key: str
    ) -> str:
        """Bring a record's document in line with the record as it is now (written, or
        deleted when the record is gone), whatever an event said; returns its key."""
        ...

    def sync_documents(self, store: ObjectStore, settings: Settings) -> list[str]:
        """Bring every record's document in line at once (a backfill), deleting those of
        records that are gone; returns the keys of the current ones."""
        ...

    def records_about(self, settings: Settings, subject: str) -> dict[str, list[str]]:
        """Keys, per collection, of the records about a data subject."""
        ...

    def erase_records(
        self, settings: Settings, subject: str, records: Mapping[str, Sequence[str]]
    ) -> int:
        """Erase these records, and any other the source holds about the subject; returns
        how many of `records` there were."""
        ...

    def records_left_about(self, settings: Settings, subject: str) -> int:
        """What the source still holds about the subject: 0 once it is erased."""
        ...


SOURCES: tuple[Source, ...] = (warehouse,)
