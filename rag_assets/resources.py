import os
from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from rag_core import services
from rag_core.adapters.embedding import Embedder
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.chunk_store import ChunkStore
from rag_core.domain.events import DocumentChange, TableRowChange
from rag_core.settings import SECRET_FIELDS, Settings, from_spelled, spelled, variable


class RagResource(dg.ConfigurableResource):
    """Storage and models of the platform, configured by `Settings`. Its one field holds the
    settings Dagster knows of, so they show on the resource's page in the UI, spelled as
    their `RAG_*` variables are; one that names an environment variable (`dg.EnvVar`) is
    shown by name and read where the run starts. Settings it leaves out are read from the
    environment, as `Settings` always does, so the same definitions run on embedded defaults
    locally and on S3 in production."""

    settings_values: dict[str, str | None] = Field(
        default_factory=dict,
        description="Settings by field name, as their RAG_* variables spell them (JSON for "
        "lists and maps); the rest come from the run's environment.",
    )

    @classmethod
    def from_environment(cls) -> "RagResource":
        """The code location's resource: every setting whose variable is set here, as that
        variable, so the UI lists what configures the platform without showing a value."""
        return cls(
            settings_values={
                name: dg.EnvVar(variable(name))
                for name in Settings.model_fields
                if variable(name) in os.environ
            }
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> "RagResource":
        """These settings, whole: every field, as set here."""
        return cls(
            settings_values={name: _config_value(settings, name, value) for name, value in settings}
        )

    def settings(self) -> Settings:
        return from_spelled(
            {
                name: value.get_value() if isinstance(value, dg.EnvVar) else value
                for name, value in self.settings_values.items()
            }
        )

    def store(self) -> ObjectStore:
        return services.object_store(self.settings())

    def index(self) -> ChunkStore:
        return services.chunk_index(self.settings())

    def embedder(self) -> Embedder:
        return services.embedder(self.settings())

    def publisher(self) -> EventPublisher:
        return EventPublisher(self.settings())

    def publish_document_changes(self, events: Sequence[DocumentChange]) -> None:
        self.publisher().document_changes(events)

    def publish_row_changes(self, events: Sequence[TableRowChange]) -> None:
        self.publisher().row_changes(events)


def _config_value(settings: Settings, name: str, value: object) -> str | None:
    """A setting as resource config. A secret stays out of it where it can: an aws-sm://
    reference is passed instead of what it resolved to, a value the environment holds as the
    variable holding it (resolved again where the run starts); only a secret given in code
    or read from a file is written in clear."""
    text = spelled(value)
    if name not in SECRET_FIELDS or text is None:
        return text
    if reference := settings.secret_reference(name):
        return reference
    if os.environ.get(variable(name)) == text:
        return dg.EnvVar(variable(name))
    return text
