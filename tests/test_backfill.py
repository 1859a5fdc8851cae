"""A backfill rebuilds, from the object store and the warehouse, exactly the index that the
change events built incrementally."""

from pathlib import Path

import numpy as np
import pytest

from rag_assets.ingest import backfill_index, local_instance
from rag_core import services
from rag_core.adapters.catalog import add_sources, delete_source, put_source
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.local_servers import TansuBroker
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.flows.streaming import StreamingIndexer
from rag_core.settings import Settings
from rag_core.sources import warehouse
from rag_core.sources.warehouse_sample import load_sample

from conftest import announce, process

COLUMNS = ["chunk_id", "doc_id", "version", "text", "source_uri", "acl", "subjects"]


def rows(settings: Settings) -> tuple[list[dict], np.ndarray]:
    data = sorted(services.chunk_index(settings).rows(), key=lambda row: row["chunk_id"])
    return [{c: row[c] for c in COLUMNS} for row in data], np.array([r["vector"] for r in data])


@pytest.mark.slow
def test_a_backfill_equals_the_incremental_index(
    rag_home: Settings,
    broker: TansuBroker,
    corpus_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAG_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    settings = Settings()
    store = services.object_store(settings)
    load_sample(settings)
    build_models(settings)
    worker = StreamingIndexer(settings)
    try:
        add_sources(store, [corpus_copy])
        announce(settings)
        warehouse.announce_changes(settings, EventPublisher(settings).row_changes)
        process(worker)
        # History the rebuild must not resurrect: an overwrite and a delete.
        put_source(store, "documents/pip/getting-started.md", b"# Getting started\n\nRun pip.\n")
        delete_source(store, "documents/mosquitto-readme.md")
        announce(settings)
        process(worker)
    finally:
        worker.close()

    rebuilt = settings.model_copy(update={"index_uri": str(tmp_path / "rebuilt-lancedb")})
    keys = backfill_index(rebuilt, local_instance(rebuilt))

    incremental, incremental_vectors = rows(settings)
    backfilled, backfilled_vectors = rows(rebuilt)
    assert len(keys) == 2 + 12  # pip's two files and the sample tickets
    assert backfilled == incremental
    np.testing.assert_allclose(backfilled_vectors, incremental_vectors, atol=1e-5)
