"""The Kafka sensor on the real broker: batches of change events become one indexing run,
a crash between polling and emitting leaves no gap, replays launch nothing, deletes retire."""

from pathlib import Path

import dagster as dg
import pytest

import rag_assets.events
from rag_assets.definitions import build_defs
from rag_assets.documents import PARTITIONS_NAME
from rag_assets.events import document_change_runs, object_store_changes
from rag_assets.ingest import local_instance
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.documents import add_sources, delete_source
from rag_core.localstack import TansuBroker
from rag_core.settings import Settings


@pytest.fixture
def platform(rag_home: Settings, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RAG_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    return Settings()


def evaluate(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, rag: RagResource, cursor: str | None
) -> dg.SensorResult | dg.SkipReason:
    with dg.build_sensor_context(instance=instance, resources={"rag": rag}, cursor=cursor) as ctx:
        return sensor(ctx)


def launch(result: dg.SensorResult, instance: dg.DagsterInstance, rag: RagResource) -> None:
    """What the daemon does with a sensor result: add partitions, then run the requests."""
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(PARTITIONS_NAME, list(request.partition_keys))
    defs = build_defs(rag)
    for run in result.run_requests:
        job = defs.resolve_job_def(run.job_name)
        outcome = job.execute_in_process(
            instance=instance,
            tags=run.tags,
            partition_key=run.partition_key,
            run_config=run.run_config,
        )
        assert outcome.success


@pytest.mark.slow
def test_events_become_batched_runs_exactly_once(
    platform: Settings, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = services.object_store(platform)
    instance = local_instance(platform)
    rag = RagResource.for_settings(platform)
    add_sources(store, [corpus_copy])
    assert "3 upserts" in str(evaluate(object_store_changes, instance, rag, None))

    # The sensor dies after polling: no cursor is saved, so the next tick sees every event.
    def crash(*args: object) -> None:
        raise RuntimeError("sensor process killed")

    with monkeypatch.context() as patch:
        patch.setattr(rag_assets.events, "plan_changes", crash)
        with pytest.raises(RuntimeError, match="killed"):
            evaluate(document_change_runs, instance, rag, None)

    result = evaluate(document_change_runs, instance, rag, None)
    assert isinstance(result, dg.SensorResult)
    [run] = result.run_requests  # all three new versions in one run
    [add] = result.dynamic_partitions_requests
    assert len(add.partition_keys) == 3
    # Emitting twice (a crash before the cursor was stored) asks for the same run key.
    again = evaluate(document_change_runs, instance, rag, None)
    assert isinstance(again, dg.SensorResult)
    assert [r.run_key for r in again.run_requests] == [run.run_key]

    launch(result, instance, rag)
    index = services.chunk_index(platform)
    assert index.stats().documents == 3
    table_version = index.table_version()

    # Replaying the topic from offset zero launches nothing.
    replay = evaluate(document_change_runs, instance, rag, None)
    assert isinstance(replay, dg.SensorResult)
    assert replay.run_requests == [] and replay.dynamic_partitions_requests == []
    assert evaluate(document_change_runs, instance, rag, result.cursor).skip_message  # type: ignore[union-attr]

    delete_source(store, "documents/pip/authentication.md")
    assert "1 deletes" in str(evaluate(object_store_changes, instance, rag, None))
    deletion = evaluate(document_change_runs, instance, rag, result.cursor)
    assert isinstance(deletion, dg.SensorResult)
    [retire] = deletion.run_requests
    assert retire.job_name == "retire_documents"
    launch(deletion, instance, rag)
    assert index.stats().documents == 2 and index.table_version() > table_version
    assert len(instance.get_dynamic_partitions(PARTITIONS_NAME)) == 2
