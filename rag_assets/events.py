"""Change events in Dagster: the object-store producer as a sensor, the Kafka sensor that
turns batches of events into indexing runs, the job that retires deleted documents, and the
freshness check.

The Kafka sensor keeps its offsets in its cursor, which Dagster saves only together with the
sensor's result: a sensor that crashes after polling reads the same events again on its next
tick, and the run keys make the requests it then repeats harmless.
"""

import json
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, datetime, timedelta

import dagster as dg
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from rag_assets.documents import PARTITIONS_NAME, document_versions, index, ingest_documents
from rag_assets.resources import RagResource
from rag_core.adapters.kafka import Position, consumer_config, ensure_topics
from rag_core.domain.documents import DocumentVersion
from rag_core.domain.events import topics
from rag_core.domain.ids import digest, doc_id_for, partition_key
from rag_core.domain.stats import percentile
from rag_core.flows.changes import (
    ChangePlan,
    note_announcements,
    plan_changes,
    read_batch,
    recent_freshness,
)
from rag_core.flows.orchestration import (
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    PARTITION_TAG,
    partition_range_tags,
)
from rag_core.flows.pipeline import retire_documents as retire
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings

SENSOR_BATCH = 1000  # events read per tick at most; the rest wait for the next tick
SENSOR_GROUP = "rag-dagster-sensor"  # never commits: the cursor holds the offsets
FRESHNESS_CHECK = "freshness_lag"
FRESHNESS_WINDOW = timedelta(hours=1)  # versions the freshness check judges


@dg.sensor(minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def object_store_changes(
    context: dg.SensorEvaluationContext, rag: RagResource
) -> dg.SensorResult | dg.SkipReason:
    """Announce sources added, changed or deleted in the object store on Kafka. Its work is
    the announcement, not a run (the streaming worker or `document_change_runs` follow the
    events): a tick that announced changes says so in its log; only one that found none is
    skipped."""
    events = sync_object_store(rag.store(), rag.publish_document_changes)
    if not events:
        return dg.SkipReason("no source changed")
    upserts = sum(event.op == "upsert" for event in events)
    context.log.info(f"announced {upserts} upserts, {len(events) - upserts} deletes")
    return dg.SensorResult()


def _offset_key(message: Message) -> str:
    return f"{message.topic()}:{message.partition()}"


def poll_from(
    settings: Settings, cursor: Mapping[str, int], limit: int = SENSOR_BATCH
) -> tuple[list[Message], dict[str, int]]:
    """Events after the cursor's offsets, and the cursor past them."""
    ensure_topics(settings)
    consumer = Consumer(consumer_config(settings, SENSOR_GROUP))
    try:
        assignment = []
        for topic in (topics(settings).documents, topics(settings).tables):
            for number in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                offset = cursor.get(f"{topic}:{number}", OFFSET_BEGINNING)
                assignment.append(TopicPartition(topic, number, offset))
        consumer.assign(assignment)
        messages: list[Message] = []
        while len(messages) < limit:
            polled = consumer.consume(limit - len(messages), timeout=1.0)
            if not polled:
                break
            messages += [message for message in polled if not message.error()]
    finally:
        consumer.close()
    advanced = dict(cursor)
    for message in messages:
        advanced[_offset_key(message)] = (message.offset() or 0) + 1
    return messages, advanced


class RetireConfig(dg.Config):
    source_keys: list[str]


@dg.op
def retire_deleted_sources(
    context: dg.OpExecutionContext, config: RetireConfig, rag: RagResource
) -> None:
    """Retire the documents of sources that are still gone when this runs (one re-created
    since the delete event is left alone), then drop their partitions."""
    store = rag.store()
    gone = [doc_id_for(store.uri_for(k)) for k in config.source_keys if not store.exists(k)]
    removed = retire(store, rag.index(), gone)
    known = set(context.instance.get_dynamic_partitions(PARTITIONS_NAME))
    for key in (partition_key(*pair) for pair in removed):
        if key in known:
            context.instance.delete_dynamic_partition(PARTITIONS_NAME, key)
    context.log.info(f"retired {len(gone)} documents ({len(removed)} versions)")


@dg.job
def retire_documents() -> None:
    retire_deleted_sources()


def _named(position: Position) -> str:
    topic, partition, offset = position
    return f"{topic}:{partition}:{offset}"


def run_requests(
    plan: ChangePlan, latest: Mapping[str, Position], known: Set[str], in_flight: Set[str]
) -> list[dg.RunRequest]:
    """One run for all new versions, one per version left pending by an earlier run (unless
    a run of it is still queued or going), one for all deletions.

    Run keys name the events that asked for the work (each source's latest offset): the same
    events polled again launch nothing, and any later event about a source (a delete after a
    re-create, a new announcement of a version whose run failed) launches a new run."""
    new = [m for m in plan.upserts if m.partition_key not in known]
    pending = [
        m for m in plan.upserts if m.partition_key in known and m.partition_key not in in_flight
    ]
    access_only = {m.partition_key for m in plan.access_only}
    requests = [
        dg.RunRequest(
            job_name=ingest_documents.name,
            partition_key=m.partition_key,
            run_key=f"{m.partition_key}@{_named(latest[m.source_key])}",
            # Only the rows' access changed: the index asset updates it, nothing is rebuilt.
            asset_selection=[index.key] if m.partition_key in access_only else None,
        )
        for m in pending
    ]
    if new:
        requests.append(_index_request(new, latest))
    if plan.deletions:
        requests.append(_retire_request(sorted(plan.deletions.values()), latest))
    return requests


def _index_request(new: list[DocumentVersion], latest: Mapping[str, Position]) -> dg.RunRequest:
    causes = sorted(f"{m.partition_key}@{_named(latest[m.source_key])}" for m in new)
    return dg.RunRequest(
        job_name=ingest_documents.name,
        run_key=f"index:{digest(*causes, length=32)}",
        tags=partition_range_tags([m.partition_key for m in new]),
    )


def _retire_request(source_keys: list[str], latest: Mapping[str, Position]) -> dg.RunRequest:
    causes = [f"{key}@{_named(latest[key])}" for key in source_keys]
    return dg.RunRequest(
        job_name=retire_documents.name,
        run_key=f"retire:{digest(*causes, length=32)}",
        run_config=dg.RunConfig(
            ops={"retire_deleted_sources": RetireConfig(source_keys=source_keys)}
        ),
    )


# Runs that are queued or going: what the sensors and schedules wait for.
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def in_flight_partitions(instance: dg.DagsterInstance, partitions: Sequence[str]) -> set[str]:
    """Partitions that a queued or running `ingest_documents` run covers, by its partition
    tag or its partition range (ranges follow the order partitions were added in)."""
    order = {key: number for number, key in enumerate(partitions)}
    runs = instance.get_run_records(
        dg.RunsFilter(job_name=ingest_documents.name, statuses=ACTIVE_RUN_STATUSES)
    )
    covered: set[str] = set()
    for tags in (record.dagster_run.tags for record in runs):
        if PARTITION_TAG in tags:
            covered.add(tags[PARTITION_TAG])
        start = order.get(tags.get(PARTITION_RANGE_START_TAG, ""))
        end = order.get(tags.get(PARTITION_RANGE_END_TAG, ""))
        if start is not None and end is not None:
            covered.update(partitions[start : end + 1])
    return covered


def document_change_runs(settings: Settings) -> dg.SensorDefinition:
    """The Kafka sensor, on by default when `settings.indexer` is `runs`; otherwise the
    streaming worker consumes the events. Built with the code location, so importing this
    module reads no settings."""

    @dg.sensor(
        name="document_change_runs",
        jobs=[ingest_documents, retire_documents],
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING
        if settings.indexer == "runs"
        else dg.DefaultSensorStatus.STOPPED,
    )
    def sensor(
        context: dg.SensorEvaluationContext, rag: RagResource
    ) -> dg.SensorResult | dg.SkipReason:
        return change_runs(context, rag)

    return sensor


def change_runs(
    context: dg.SensorEvaluationContext, rag: RagResource
) -> dg.SensorResult | dg.SkipReason:
    """Kafka change events → indexing runs, batched: every event of a tick in one run."""
    settings = rag.settings()
    store = rag.store()
    messages, cursor = poll_from(settings, json.loads(context.cursor or "{}"))
    if not messages:
        return dg.SkipReason("no new change events")
    batch = read_batch(settings, store, messages)
    if batch.malformed:
        publisher = rag.publisher()
        for message, reason in batch.malformed:
            publisher.dead_letter(message, reason)
    plan = plan_changes(store, rag.index(), batch)
    note_announcements(store, plan)
    partitions = context.instance.get_dynamic_partitions(PARTITIONS_NAME)
    known = set(partitions)
    in_flight = in_flight_partitions(context.instance, partitions)
    new_keys = [m.partition_key for m in plan.upserts if m.partition_key not in known]
    return dg.SensorResult(
        run_requests=run_requests(plan, batch.latest, known, in_flight),
        dynamic_partitions_requests=[document_versions.build_add_request(new_keys)]
        if new_keys
        else [],
        cursor=json.dumps(cursor),
    )


@dg.asset_check(
    asset=index, name=FRESHNESS_CHECK, description="Change events reach the index in time."
)
def freshness_lag(rag: RagResource) -> dg.AssetCheckResult:
    """Fails when a version that became queryable within the window took longer than the SLA
    from its event; older versions no longer count, so one slow batch does not fail it
    forever. With no version in the window it passes and says so."""
    since = datetime.now(UTC) - FRESHNESS_WINDOW
    recent = [r for r in recent_freshness(rag.store()) if r.queryable_at >= since]
    return freshness_result(rag.settings().freshness_sla_seconds, [r.lag_seconds for r in recent])


def freshness_result(sla_seconds: float, lags: list[float]) -> dg.AssetCheckResult:
    if not lags:
        return dg.AssetCheckResult(
            check_name=FRESHNESS_CHECK,
            asset_key=index.key,
            passed=True,
            description="No version was indexed in the window: nothing to measure.",
            metadata={"versions": 0, "sla_seconds": sla_seconds},
        )
    ordered = sorted(lags)
    late = sum(lag > sla_seconds for lag in ordered)
    return dg.AssetCheckResult(
        check_name=FRESHNESS_CHECK,
        asset_key=index.key,
        passed=late == 0,
        description=f"{late} of {len(ordered)} versions took longer than {sla_seconds:g} s.",
        metadata={
            "versions": len(ordered),
            "late_versions": late,
            "p95_seconds": round(percentile(ordered, 0.95), 3),
            "max_seconds": round(ordered[-1], 3),
            "sla_seconds": sla_seconds,
        },
    )


def events_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        jobs=[retire_documents],
        sensors=[object_store_changes, document_change_runs(settings)],
        asset_checks=[freshness_lag],
    )
