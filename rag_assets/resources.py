from collections.abc import Sequence

import dagster as dg

from rag_core import services
from rag_core.adapters.embedding import Embedder
from rag_core.domain.events import DocumentChange, TableRowChange
from rag_core.adapters.index import ChunkIndex
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.objectstore import ObjectStore
from rag_core.settings import Settings


class RagResource(dg.ConfigurableResource):
    """Storage and models of the platform. Unset fields fall back to `RAG_*` settings, so the
    same definitions run on embedded defaults locally and on S3 in production."""

    home: str | None = None
    object_store_uri: str | None = None
    index_uri: str | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> "RagResource":
        return cls(
            home=str(settings.home),
            object_store_uri=settings.object_store_uri,
            index_uri=settings.index_uri,
        )

    def settings(self) -> Settings:
        overrides = {
            name: value
            for name, value in (
                ("home", self.home),
                ("object_store_uri", self.object_store_uri),
                ("index_uri", self.index_uri),
            )
            if value
        }
        return Settings(**overrides)  # type: ignore[arg-type]

    def store(self) -> ObjectStore:
        return services.object_store(self.settings())

    def index(self) -> ChunkIndex:
        return services.chunk_index(self.settings())

    def embedder(self) -> Embedder:
        return services.embedder(self.settings())

    def publisher(self) -> EventPublisher:
        return EventPublisher(self.settings())

    def publish_document_changes(self, events: Sequence[DocumentChange]) -> None:
        self.publisher().document_changes(events)

    def publish_row_changes(self, events: Sequence[TableRowChange]) -> None:
        self.publisher().row_changes(events)
