"""What a person finds in the Dagster UI: the streaming worker's materializations of `index`
come with its checks, `ragctl warehouse build` is a run materializing the warehouse's models,
the object-store sensor's ticks that announced changes are not "skipped", and a new instance
asks nothing of its user."""

import logging
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)
from typer.testing import CliRunner

from rag_assets.documents import INDEX_CHECKS, PARTITIONS_NAME, index
from rag_assets.events import object_store_changes
from rag_assets.ingest import local_instance
from rag_assets.orchestration import InProcessOrchestrator
from rag_assets.resources import RagResource
from rag_assets.warehouse import ROW_EVENTS
from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.adapters.dagster_webserver import JobAddress
from rag_core.adapters.warehouse.rows import document_models
from rag_core.domain.documents import SourceMetadata
from rag_core.flows.orchestration import (
    WAREHOUSE_ANNOUNCE_JOB,
    WAREHOUSE_BUILD_JOB,
    RunFailed,
    SubmittedOrchestrator,
)
from rag_core.flows.streaming import BatchOutcome, StreamingIndexer
from rag_core.settings import Settings
from rag_core.sources.warehouse_sample import load_sample
from rag_serving.cli import app

from conftest import announce, process

PARKING = "documents/handbook/parking.md"
LIFTS = "documents/handbook/lifts.md"
PASSED = AssetCheckExecutionRecordStatus.SUCCEEDED
FAILED = AssetCheckExecutionRecordStatus.FAILED


def index_check_records(instance: dg.DagsterInstance) -> dict[str, AssetCheckExecutionRecord]:
    """The latest evaluation of each index check, by check name."""
    keys = [dg.AssetCheckKey(index.key, spec.name) for spec in INDEX_CHECKS]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return {key.name: record for key, record in latest.items()}


def next_batch(worker: StreamingIndexer, timeout: float = 60.0) -> BatchOutcome:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (outcome := worker.poll_once(timeout=1.0)) is not None:
            return outcome
    raise AssertionError("the worker handled no events in time")


def pause(worker: StreamingIndexer, seconds: float = 1.5) -> None:
    """Idle polls for a while: no event arrives."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert worker.poll_once(timeout=0.2) is None


def test_the_streaming_worker_checks_the_index_once_the_stream_pauses(
    kafka_platform: Settings,
) -> None:
    settings = kafka_platform
    store = services.object_store(settings)
    instance = local_instance(settings)
    recorder = InProcessOrchestrator(settings).streaming_recorder()
    with StreamingIndexer(settings, recorder) as worker:
        put_source(store, PARKING, b"# Parking\n\nVisitors park in the blue garage.\n",
                   SourceMetadata())  # fmt: skip
        announce(settings)
        [parking] = next_batch(worker).indexed
        assert index_check_records(instance) == {}, "the batch's commit did not wait for them"

        pause(worker)
        checks = index_check_records(instance)
        assert set(checks) == {spec.name for spec in INDEX_CHECKS}
        latest = instance.get_latest_materialization_event(index.key)
        assert latest is not None and latest.run_id == "", "a runless materialization"
        materialization = latest.asset_materialization
        assert materialization is not None
        link = materialization.metadata["document"].value
        assert link == f"{settings.api_url}/v1/documents/{parking.doc_id}"
        assert materialization.metadata["bytes"].value == parking.size
        live = services.chunk_index(settings).live_versions()
        chunks = live[(parking.doc_id, parking.version)]
        assert materialization.metadata["chunks"].value == chunks > 0
        for record in checks.values():
            assert record.status == PASSED
            assert record.create_timestamp > latest.timestamp, "checks the latest materialization"

        # Rows of a version with no partition fail the check at the next pause.
        instance.delete_dynamic_partition(PARTITIONS_NAME, parking.partition_key)
        put_source(store, LIFTS, b"# Lifts\n\nThe lifts stop at every floor.\n", SourceMetadata())
        announce(settings)
        process(worker)
        pause(worker)
        rows = index_check_records(instance)["rows_match_live_chunks"]
        assert rows.status == FAILED
        assert rows.evaluation is not None
        assert rows.evaluation.metadata["versions_without_partition"].value == 1


@pytest.mark.slow
def test_warehouse_build_materializes_the_models_in_a_run(rag_home: Settings) -> None:
    load_sample(rag_home)
    built = CliRunner().invoke(app, ["warehouse", "build"])
    assert built.exit_code == 0, built.output
    assert "WARNING" not in built.output  # e.g. a dbt test Dagster has no check for
    instance = local_instance(rag_home)
    [run] = instance.get_runs()
    assert run.job_name == WAREHOUSE_BUILD_JOB and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.run_id in built.output
    for model in document_models():
        materialization = instance.get_latest_materialization_event(dg.AssetKey(model))
        assert materialization is not None and materialization.run_id == run.run_id
    # Announcing the rows needs the broker, which `make run` starts only afterwards.
    assert instance.get_latest_materialization_event(dg.AssetKey(ROW_EVENTS)) is None


@pytest.mark.slow
def test_sync_announces_the_warehouse_rows_in_a_run(kafka_platform: Settings) -> None:
    """As `ragctl dev` does once the broker is up, after `make run` built the models."""
    sample_rows = load_sample(kafka_platform)
    assert CliRunner().invoke(app, ["warehouse", "build"]).exit_code == 0

    synced = CliRunner().invoke(app, ["sync"])

    assert synced.exit_code == 0, synced.output
    instance = local_instance(kafka_platform)
    [run] = instance.get_runs(limit=1)
    assert run.job_name == WAREHOUSE_ANNOUNCE_JOB and run.status == dg.DagsterRunStatus.SUCCESS
    assert f"warehouse row changes in run {run.run_id}" in synced.output
    announced = instance.get_latest_materialization_event(dg.AssetKey(ROW_EVENTS))
    assert announced is not None and announced.run_id == run.run_id
    metadata = announced.asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["upserts"].value == sample_rows and metadata["deletes"].value == 0


class Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_sensor_tick_that_announced_changes_is_not_skipped(kafka_platform: Settings) -> None:
    rag = RagResource.for_settings(kafka_platform)
    put_source(rag.store(), PARKING, b"# Parking\n\nVisitors park in the blue garage.\n",
               SourceMetadata())  # fmt: skip
    instance = local_instance(kafka_platform)
    results, logged = [], Messages()
    for _ in range(2):
        with dg.build_sensor_context(instance=instance, resources={"rag": rag}) as context:
            context.log.addHandler(logged)
            results.append(object_store_changes(context))
    announced, unchanged = results
    assert isinstance(announced, dg.SensorResult) and not announced.run_requests
    assert logged.messages == ["announced 1 upserts, 0 deletes"]
    assert isinstance(unchanged, dg.SkipReason)


def test_a_new_instance_shows_no_community_pop_up(rag_home: Settings) -> None:
    assert not local_instance(rag_home).nux_enabled


class FakeWebserver:
    """Launches every run with the status given; records the jobs it was asked for."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.launched: list[str] = []

    def find_job(self, name: str) -> JobAddress:
        return JobAddress("rag", "__repository__", name)

    def launch_run(self, job: JobAddress) -> str:
        self.launched.append(job.job)
        return f"run-{len(self.launched)}"

    def wait_for_run(self, run_id: str) -> str:
        return self.status


def test_the_dagster_orchestrator_launches_the_warehouse_build(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, orchestrator="dagster")
    succeeding = FakeWebserver("SUCCESS")
    orchestrator = SubmittedOrchestrator(settings, succeeding)  # type: ignore[arg-type]
    assert orchestrator.build_warehouse() == "run-1"
    assert succeeding.launched == [WAREHOUSE_BUILD_JOB]
    failing = SubmittedOrchestrator(settings, FakeWebserver("FAILURE"))  # type: ignore[arg-type]
    with pytest.raises(RunFailed, match="run-1 ended FAILURE"):
        failing.build_warehouse()
