"""The Kafka sensor: batches of change events become one indexing run, a crash between polling
and emitting leaves no gap and no duplicate, replays launch nothing, deletes retire, run keys
name the events that asked for the work, and the freshness check judges against the SLA."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    RUN_KEY_TAG,
)
from test_dagster_ui import Messages

from rag_assets.definitions import build_defs
from rag_assets.documents import PARTITIONS_NAME, index
from rag_assets.events import (
    document_change_runs,
    freshness_lag,
    in_flight_partitions,
    object_store_changes,
    run_requests,
)
from rag_assets.ingest import local_instance
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.adapters.catalog import add_sources, delete_source, put_source
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.documents import DocumentVersion, SourceMetadata
from rag_core.domain.events import document_change, table_row_change
from rag_core.domain.ids import doc_id_for
from rag_core.domain.layout import Artifact, artifact_key
from rag_core.flows.changes import ChangePlan, Freshness, recent_freshness
from rag_core.settings import Settings

from conftest import (
    HOSTILE_KEYS,
    PARKING,
    assert_dead_lettered_for_their_keys,
    plant_outside_the_store,
    read_dead_letters,
)

DOCUMENTS = "rag.document-changes"
AUTHENTICATION = "documents/pip/authentication.md"


def evaluate(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, rag: RagResource, cursor: str | None
) -> dg.SensorResult | dg.SkipReason:
    with dg.build_sensor_context(instance=instance, resources={"rag": rag}, cursor=cursor) as ctx:
        result = sensor(ctx)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def tick(instance: dg.DagsterInstance, rag: RagResource, cursor: str | None) -> dg.SensorResult:
    result = evaluate(document_change_runs(rag.settings()), instance, rag, cursor)
    assert isinstance(result, dg.SensorResult), result
    return result


def launch(result: dg.SensorResult, instance: dg.DagsterInstance, rag: RagResource) -> list[str]:
    """What the daemon does with a sensor result: add partitions, then run each request whose
    run key no earlier run has. Returns the run keys launched."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(PARTITIONS_NAME, list(request.partition_keys))
    defs = build_defs(rag)
    launched = []
    for run in result.run_requests or []:
        assert run.run_key and run.job_name
        if instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: run.run_key})):
            continue
        outcome = defs.resolve_job_def(run.job_name).execute_in_process(
            instance=instance,
            tags={**run.tags, RUN_KEY_TAG: run.run_key},
            partition_key=run.partition_key,
            run_config=run.run_config,
        )
        assert outcome.success
        launched.append(run.run_key)
    return launched


def run_keys_of(result: dg.SensorResult) -> list[str | None]:
    return [request.run_key for request in result.run_requests or []]


def announce(instance: dg.DagsterInstance, rag: RagResource, expected: str) -> None:
    """The object-store sensor announces the changes, as its tick's log says; it launches no
    run itself."""
    logged = Messages()
    with dg.build_sensor_context(instance=instance, resources={"rag": rag}) as ctx:
        ctx.log.addHandler(logged)
        result = object_store_changes(ctx)
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    assert any(expected in message for message in logged.messages), logged.messages


@pytest.mark.slow
def test_events_become_batched_runs_exactly_once(
    kafka_platform: Settings, corpus_copy: Path
) -> None:
    platform = kafka_platform
    store = services.object_store(platform)
    index = services.chunk_index(platform)
    instance = local_instance(platform)
    rag = RagResource.for_settings(platform)
    add_sources(store, [corpus_copy])
    announce(instance, rag, "3 upserts")
    first = tick(instance, rag, None)
    [add] = first.dynamic_partitions_requests or []
    assert len(add.partition_keys) == 3
    assert len(launch(first, instance, rag)) == 1  # all three new versions in one run
    assert index.stats().documents == 3
    # The run records each version's event-to-queryable lag, as the streaming worker does.
    lags = recent_freshness(store)
    assert sorted(f"{r.doc_id}@{r.version}" for r in lags) == sorted(add.partition_keys)
    assert all(0 < r.lag_seconds < 600 for r in lags)
    assert not list(store.list(Artifact.ANNOUNCED))

    # A table-row event with no warehouse here can never be applied: it is dead-lettered and
    # the tick goes on with the document event beside it.
    EventPublisher(platform).row_changes(
        [table_row_change("upsert", "support_ticket_documents", "TCK-1", "r1", "w")]
    )
    store.put("documents/handbook/parking.md", b"# Parking\n\nVisitors park in the blue garage.")
    announce(instance, rag, "1 upserts")
    # The sensor dies between polling and emitting: its result is never stored, so the next
    # tick starts from the same cursor and asks for the same work under the same run keys.
    lost = tick(instance, rag, first.cursor)
    retried = tick(instance, rag, first.cursor)
    assert run_keys_of(retried) == run_keys_of(lost)
    assert retried.dynamic_partitions_requests == lost.dynamic_partitions_requests
    assert retried.cursor == lost.cursor != first.cursor
    assert len(launch(retried, instance, rag)) == 1
    assert launch(lost, instance, rag) == []  # were it emitted too, its run keys launch nothing
    assert isinstance(
        evaluate(document_change_runs(rag.settings()), instance, rag, retried.cursor), dg.SkipReason
    )
    assert len(instance.get_runs(dg.RunsFilter(job_name="ingest_documents"))) == 2
    assert index.stats().documents == 4
    # Both ticks parked the row event: one idempotency key lets readers drop the repeat.
    letters = read_dead_letters(platform, 2)
    assert len({letter.idempotency_key for letter in letters}) == 1
    assert "no warehouse" in letters[0].reason

    # Replaying the topic from offset zero launches nothing and changes no row.
    table_version = index.table_version()
    replay = tick(instance, rag, None)
    assert replay.run_requests == [] and replay.dynamic_partitions_requests == []

    # Delete, re-create, delete again: each delete is a new event, so each retire runs.
    original = store.get(AUTHENTICATION)
    cursor = retried.cursor
    retire_keys = []
    for step in ("delete", "create", "delete"):
        if step == "delete":
            delete_source(store, AUTHENTICATION)
        else:
            store.put(AUTHENTICATION, original)
        announce(instance, rag, "1 deletes" if step == "delete" else "1 upserts")
        result = tick(instance, rag, cursor)
        cursor = result.cursor
        [launched] = launch(result, instance, rag)
        if step == "delete":
            retire_keys.append(launched)
            assert index.stats().documents == 3
    assert retire_keys[0] != retire_keys[1]
    assert index.table_version() > table_version
    assert len(instance.get_dynamic_partitions(PARTITIONS_NAME)) == 3


def test_the_sensor_dead_letters_events_naming_no_source(kafka_platform: Settings) -> None:
    """An event whose key leaves `documents/`, names an access sidecar or has a segment too
    long for a file name gets no partition and no run: only a dead letter with the reason."""
    platform = kafka_platform
    store = services.object_store(platform)
    plant_outside_the_store(platform, b"The vault code is 4471.")
    put_source(store, PARKING, b"# Parking\n\nThe blue garage.", SourceMetadata(acl=["staff"]))
    EventPublisher(platform).document_changes(
        document_change("upsert", key, "v1", "forged") for key in HOSTILE_KEYS
    )
    instance = local_instance(platform)
    rag = RagResource.for_settings(platform)
    announce(instance, rag, "1 upserts")
    result = tick(instance, rag, None)
    [add] = result.dynamic_partitions_requests or []
    parking = doc_id_for(store.uri_for(PARKING))
    assert [key.split("@")[0] for key in add.partition_keys] == [parking]
    assert len(result.run_requests or []) == 1
    assert {obj.key.split("/")[1] for obj in store.list(Artifact.ANNOUNCED)} == {parking}
    assert_dead_lettered_for_their_keys(platform)


def version_of(source_key: str, version: str = "v1") -> DocumentVersion:
    return DocumentVersion(
        doc_id=f"doc-{source_key}", version=version, source_key=source_key,
        source_uri=f"file:///{source_key}", size=1, discovered_at=datetime.now(UTC),
    )  # fmt: skip


def requested(plan: ChangePlan, offset: int, known: set[str], in_flight: set[str]) -> list[str]:
    latest = {key: (DOCUMENTS, 0, offset) for key in ["documents/a.md", "documents/b.md"]}
    return [r.run_key or "" for r in run_requests(plan, latest, known, in_flight)]


def test_each_delete_event_gets_its_own_retire_run() -> None:
    deletion = ChangePlan(upserts=[], deletions={"doc-a": "documents/a.md"}, event_times={})
    first = requested(deletion, 3, set(), set())
    assert requested(deletion, 3, set(), set()) == first  # the same event polled again
    assert requested(deletion, 9, set(), set()) != first  # deleted again after a re-create


def test_a_pending_version_gets_a_new_run_per_event_unless_one_is_in_flight() -> None:
    pending = version_of("documents/a.md")
    plan = ChangePlan(upserts=[pending], deletions={}, event_times={})
    known = {pending.partition_key}
    [failed] = requested(plan, 5, known, set())
    assert requested(plan, 5, known, set()) == [failed]
    assert requested(plan, 6, known, set()) != [failed]
    assert requested(plan, 6, known, {pending.partition_key}) == []


def test_an_access_change_runs_the_index_asset_alone() -> None:
    changed, pending = version_of("documents/a.md"), version_of("documents/b.md")
    plan = ChangePlan(
        upserts=[changed, pending], deletions={}, event_times={}, access_only=[changed]
    )
    latest = {key: (DOCUMENTS, 0, 7) for key in ["documents/a.md", "documents/b.md"]}
    known = {changed.partition_key, pending.partition_key}
    by_partition = {r.partition_key: r for r in run_requests(plan, latest, known, set())}
    assert by_partition[changed.partition_key].asset_selection == [index.key]
    assert by_partition[pending.partition_key].asset_selection is None


def test_new_versions_share_one_run_keyed_by_their_events() -> None:
    plan = ChangePlan(
        upserts=[version_of("documents/a.md"), version_of("documents/b.md")],
        deletions={},
        event_times={},
    )
    [batch] = requested(plan, 4, set(), set())
    assert batch.startswith("index:") and requested(plan, 4, set(), set()) == [batch]
    assert requested(plan, 5, set(), set()) != [batch]


def test_in_flight_partitions_come_from_runs_not_finished(rag_home: Settings) -> None:
    instance = local_instance(rag_home)
    partitions = ["p1", "p2", "p3", "p4", "p5", "p6"]
    instance.add_dynamic_partitions(PARTITIONS_NAME, partitions)
    runs = [
        ("ingest_documents", dg.DagsterRunStatus.NOT_STARTED, {PARTITION_NAME_TAG: "p1"}),
        ("ingest_documents", dg.DagsterRunStatus.STARTED,
         {ASSET_PARTITION_RANGE_START_TAG: "p2", ASSET_PARTITION_RANGE_END_TAG: "p3"}),
        ("ingest_documents", dg.DagsterRunStatus.FAILURE, {PARTITION_NAME_TAG: "p4"}),
        ("ingest_documents", dg.DagsterRunStatus.SUCCESS,
         {ASSET_PARTITION_RANGE_START_TAG: "p4", ASSET_PARTITION_RANGE_END_TAG: "p6"}),
        ("retire_documents", dg.DagsterRunStatus.STARTED, {PARTITION_NAME_TAG: "p5"}),
    ]  # fmt: skip
    for job_name, status, tags in runs:
        instance.add_run(DagsterRun(job_name=job_name, status=status, tags=tags))
    assert in_flight_partitions(instance, partitions) == {"p1", "p2", "p3"}


def freshness_record(store: ObjectStore, name: str, lag: float, age: float = 0.0) -> None:
    queryable_at = datetime.now(UTC) - timedelta(seconds=age)
    record = Freshness(
        doc_id=name, version="v1", event_time=queryable_at - timedelta(seconds=lag),
        queryable_at=queryable_at,
    )  # fmt: skip
    store.put(artifact_key(Artifact.FRESHNESS, name, "v1"), record.model_dump_json().encode())


def check_freshness(rag: RagResource) -> dg.AssetCheckResult:
    result = freshness_lag(rag=rag)
    assert isinstance(result, dg.AssetCheckResult)
    return result


def test_freshness_check_judges_recent_versions_against_the_sla(rag_home: Settings) -> None:
    rag = RagResource.for_settings(rag_home.model_copy(update={"freshness_sla_seconds": 10}))
    store = rag.store()

    empty = check_freshness(rag)
    assert empty.passed and empty.metadata["versions"].value == 0
    assert "No version" in (empty.description or "")

    freshness_record(store, "quick", lag=2.0)
    freshness_record(store, "slow-long-ago", lag=500.0, age=2 * 3600)  # outside the window
    within = check_freshness(rag)
    assert within.passed
    assert within.metadata["versions"].value == 1
    assert within.metadata["sla_seconds"].value == 10

    freshness_record(store, "late", lag=30.0)
    late = check_freshness(rag)
    assert not late.passed
    assert late.metadata["late_versions"].value == 1
    assert late.metadata["max_seconds"].value == 30.0
    assert "1 of 2 versions" in (late.description or "")
