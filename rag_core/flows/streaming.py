"""The streaming worker: a warm process that consumes change events and makes each change
queryable within about a second.

A Dagster run per event cannot be fresh: importing the stack and loading the model take
tens of seconds. This worker keeps the parser, the embedding model and the index open,
handles each poll's events as one batch (reconcile, raw → index in-process), and only then
commits the offsets. `on_batch` lets the caller record the outcome (the Dagster wiring
reports it to the instance as runless materializations); a recorder with work that can wait
(the index checks) does it in `when_idle`, off the path from event to commit.

Bad days: a batch that keeps failing is, after `stream_max_attempts` attempts, handled event
by event and the events that still fail are dead-lettered, so one poison event cannot hold
the partition. When the broker was unreachable the worker joins again once it answers and
reconciles every source, as the events of an in-memory broker are lost with it. Its health
is in `WorkerHealth`, served with the metrics by `serve_probes`.
"""

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, runtime_checkable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from opentelemetry.trace import Span
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from rag_core import services
from rag_core.adapters.kafka import (
    ConsumerLag,
    EventPublisher,
    consumer_config,
    messaging_attributes,
    position,
    trace_context,
)
from rag_core.domain.documents import DocumentVersion
from rag_core.domain.events import topics
from rag_core.domain.parsing import warm_up_parser
from rag_core.flows.changes import (
    ChangeBatch,
    ChangePlan,
    Freshness,
    full_batch,
    plan_changes,
    read_batch,
    record_freshness,
)
from rag_core.flows.pipeline import build_versions, retire_documents
from rag_core.settings import Settings
from rag_core.telemetry import (
    DEAD_LETTERS,
    FRESHNESS_LAG,
    INDEX_LAST_WRITE,
    STREAM_BATCH_SECONDS,
    STREAM_BROKER_CONNECTED,
    STREAM_BROKER_RECOVERIES,
    STREAM_CONSUMER_LAG,
    STREAM_DEAD_LETTER_FAILURES,
    STREAM_EVENTS,
    STREAM_FAILED_ATTEMPTS,
    STREAM_LAST_PROGRESS,
    continuing,
    tracer,
)

log = logging.getLogger(__name__)

# Compaction and full-text index refresh wait for a quiet moment: new rows are searchable
# before it (unindexed rows are scanned), and doing it per event would cost the freshness.
OPTIMIZE_AFTER_IDLE_SECONDS = 5.0
RETRY_SECONDS, MAX_RETRY_SECONDS = 1.0, 60.0
# After events were dead-lettered for failing, the next idle moments try a catch-up this often.
CATCH_UP_RETRY_SECONDS = 30.0
# librdkafka's sign that no broker could be reached (a single connection dropping is not:
# the other brokers of a cluster still hold the log, and a catch-up costs a full reconcile).
BROKER_LOST = {KafkaError._ALL_BROKERS_DOWN}
# The consumer lag gauge is refreshed this often at most, after a poll: a dashboard's scrape
# interval, and well apart from the path from event to commit.
LAG_REFRESH_SECONDS = 1.0


@dataclass
class BatchOutcome:
    events: int
    indexed: list[DocumentVersion] = field(default_factory=list)
    access_only: list[DocumentVersion] = field(default_factory=list)  # of those indexed
    retired: list[tuple[str, str]] = field(default_factory=list)
    # Chunks of each version written to the index, by (doc_id, version).
    chunk_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_letters: int = 0
    freshness: list[Freshness] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # time spent, by stage

    @contextmanager
    def timed(self, stage: str) -> Iterator[Span]:
        """Time a stage of the batch, traced as the span `stream.<stage>`."""
        started = time.perf_counter()
        with tracer.start_as_current_span(f"stream.{stage}") as span:
            try:
                yield span
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def add(self, other: "BatchOutcome") -> None:
        """Count the work of a part of this batch (an event handled alone)."""
        self.indexed += other.indexed
        self.access_only += other.access_only
        self.retired += other.retired
        self.chunk_counts |= other.chunk_counts
        self.dead_letters += other.dead_letters
        self.freshness += other.freshness
        for stage, seconds in other.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@runtime_checkable
class IdleWork(Protocol):
    """A batch recorder with work that can wait for a quiet moment: the worker calls
    `when_idle` after each poll that brought no event."""

    def when_idle(self) -> None: ...


class DeadLetterFailed(RuntimeError):
    """The broker did not take a dead letter: the event can neither be applied nor parked,
    so its batch is not committed (and the worker reports itself stalled)."""


@dataclass
class WorkerHealth:
    """What the probes say. Ready: consuming, the broker reachable, and not stalled. Stalled:
    the current batch failed `max_attempts` times in a row, and then handling its events one
    by one and dead-lettering the failures did not get it through either (the dead-letter
    topic refused a letter, say)."""

    max_attempts: int
    consuming: bool = False
    broker_connected: bool = True
    failed_attempts: int = 0
    last_progress: float = field(default_factory=time.time)
    last_error: str | None = None

    @property
    def stalled(self) -> bool:
        return self.failed_attempts > self.max_attempts

    @property
    def ready(self) -> bool:
        return self.consuming and self.broker_connected and not self.stalled

    def progressed(self) -> None:
        self.failed_attempts, self.last_error, self.last_progress = 0, None, time.time()
        STREAM_FAILED_ATTEMPTS.set(0)
        STREAM_LAST_PROGRESS.set(self.last_progress)

    def failed(self, error: BaseException) -> None:
        self.failed_attempts += 1
        self.last_error = f"{type(error).__name__}: {error}"
        STREAM_FAILED_ATTEMPTS.set(self.failed_attempts)

    def broker(self, connected: bool, error: str | None = None) -> None:
        self.broker_connected = connected
        if error:
            self.last_error = error
        STREAM_BROKER_CONNECTED.set(int(connected))

    def report(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "consuming": self.consuming,
            "broker_connected": self.broker_connected,
            "stalled": self.stalled,
            "failed_attempts": self.failed_attempts,
            "max_attempts": self.max_attempts,
            "last_progress": datetime.fromtimestamp(self.last_progress, UTC).isoformat(),
            "last_error": self.last_error,
        }


class StreamingIndexer:
    def __init__(
        self,
        settings: Settings,
        on_batch: Callable[[BatchOutcome], None] = lambda outcome: None,
        group_id: str | None = None,
    ):
        self.settings = settings
        self.store = services.object_store(settings)
        self.index = services.chunk_index(settings)
        self.embedder = services.embedder(settings)
        self.on_batch = on_batch
        self.group_id = group_id or settings.kafka_group_id
        self.health = WorkerHealth(max_attempts=settings.stream_max_attempts)
        self._replay: set[tuple[str, int]] = set()  # partitions to read from their start
        self._next_offsets: dict[tuple[str, int], int] = {}  # after the last event polled
        self.publisher = EventPublisher(settings)  # creates missing topics
        self.consumer = self._subscribe()
        self._lag = ConsumerLag(self.consumer)
        self._lag_measured_at = -LAG_REFRESH_SECONDS
        self._lag_series: set[tuple[str, int]] = set()  # the partitions the gauge shows
        self.health.broker(connected=True)
        self.health.progressed()
        self._broker_lost = False
        self._rewind_pending = False
        self._dirty_since: float | None = None
        self._catch_up_tries_left, self._catch_up_tried_at = 0, 0.0
        self._closed = False

    def _subscribe(self) -> Consumer:
        consumer = Consumer(
            consumer_config(self.settings, self.group_id) | {"error_cb": self._on_kafka_error}
        )
        consumer.subscribe(
            [topics(self.settings).documents, topics(self.settings).tables],
            on_assign=self._on_assign,
        )
        return consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start the partitions whose log the broker lost at their beginning, whatever
        offset is committed there (see `_lost_partitions`). Their committed offsets are read
        again for the lag: another member may have moved them while they were its."""
        self._lag.forget((partition.topic, partition.partition) for partition in partitions)
        for partition in partitions:
            if (partition.topic, partition.partition) in self._replay:
                self._replay.discard((partition.topic, partition.partition))
                partition.offset = OFFSET_BEGINNING
        consumer.assign(partitions)

    def _lost_partitions(self) -> set[tuple[str, int]]:
        """Partitions whose log now ends before where this worker was: the broker lost them
        (an in-memory broker restarted). The consumer's position there, and any offset
        committed there, are past the new log's end and would skip its events."""
        lost = set()
        for (topic, number), next_offset in self._next_offsets.items():
            partition = TopicPartition(topic, number)
            _, high = self.consumer.get_watermark_offsets(partition, timeout=5)
            if high < next_offset:
                lost.add((topic, number))
        return lost

    def _replay_assigned(self) -> None:
        """Seek the assigned partitions whose log was lost to their beginning now; those not
        assigned yet (the consumer is joining the group again) start there on assignment."""
        for partition in self.consumer.assignment():
            name = (partition.topic, partition.partition)
            if name in self._replay:
                try:
                    self.consumer.seek(TopicPartition(*name, OFFSET_BEGINNING))
                except KafkaException:  # not fetching yet: `_on_assign` will do it
                    continue
                self._replay.discard(name)

    def _on_kafka_error(self, error: KafkaError) -> None:
        """librdkafka's error callback, served inside `poll` on this thread."""
        log.warning("kafka: %s", error)
        if error.code() in BROKER_LOST:
            self._broker_lost = True
            self.health.broker(connected=False, error=f"kafka: {error}")

    def warm_up(self) -> None:
        """Load the model and the parsers before the first event, not on it."""
        self.embedder.embed(["warm up"])
        warm_up_parser({"a.md", "a.html", "a.txt", "a.pdf"})

    def poll_once(self, timeout: float = 0.5) -> BatchOutcome | None:
        """Handle what arrived (or recover from a broker outage) and commit. A failure leaves
        the batch uncommitted: the next call starts again from the committed offsets."""
        if self._broker_lost:
            return self._recover(timeout)
        try:
            if self._rewind_pending:
                self._rewind()
            messages = self._poll(timeout)
            outcome = self._handle_and_commit(messages) if messages else None
        except Exception as exc:
            self._rewind_pending = True
            self.health.failed(exc)
            raise
        if outcome is None:
            self._optimize_when_idle()
            self._catch_up_when_idle()
            self._record_when_idle()
        self.health.progressed()
        self._measure_lag()
        return outcome

    def _handle_and_commit(self, messages: Sequence[Message]) -> BatchOutcome:
        started = time.perf_counter()
        outcome = self._handle_batch(messages)
        # Only now is the batch's work done.
        self._lag.committed(self.consumer.commit(asynchronous=False))
        STREAM_BATCH_SECONDS.observe(time.perf_counter() - started)
        return outcome

    def _measure_lag(self) -> None:
        """Refresh the consumer lag gauge, at most every `LAG_REFRESH_SECONDS`. A failure is
        only logged: the gauge informs the operator and never holds the stream back."""
        now = time.monotonic()
        if now - self._lag_measured_at < LAG_REFRESH_SECONDS:
            return
        self._lag_measured_at = now
        try:
            lags = self._lag.measure()
        except KafkaException as exc:
            log.debug("consumer lag not measured: %s", exc)
            return
        for topic, number in self._lag_series - lags.keys():  # no longer assigned here
            STREAM_CONSUMER_LAG.remove(topic, str(number))
        for (topic, number), lag in lags.items():
            STREAM_CONSUMER_LAG.labels(topic, str(number)).set(lag)
        self._lag_series = set(lags)

    def _poll(self, timeout: float) -> list[Message]:
        # Wait for the first event only; `consume` alone would wait for a full batch.
        first = self.consumer.poll(timeout)
        if first is None:
            return []
        messages = [first, *self.consumer.consume(self.settings.stream_batch_size - 1, 0)]
        for message in messages:
            if error := message.error():
                self._on_kafka_error(error)
        messages = [message for message in messages if not message.error()]
        for topic, number, offset in map(position, messages):
            self._next_offsets[topic, number] = offset + 1
        return messages

    def _handle_batch(self, messages: Sequence[Message]) -> BatchOutcome:
        if self.health.failed_attempts < self.settings.stream_max_attempts:
            return self.handle(messages)
        return self._handle_one_by_one(messages)

    def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        """Apply a batch of events in a span that continues their producer's trace: one trace
        runs from an event's producer to the index write it led to."""
        topic = ",".join(sorted({position(message)[0] for message in messages}))
        carried = [trace_context(message) for message in messages]
        attributes = messaging_attributes("process", topic, len(messages))
        with continuing(f"process {topic}", carried, attributes):
            return self._handle(messages)

    def _handle(self, messages: Sequence[Message]) -> BatchOutcome:
        outcome = BatchOutcome(events=len(messages))
        with outcome.timed("read"):
            batch = read_batch(self.settings, self.store, messages)
            for message, reason in batch.malformed:
                self._dead_letter(message, reason)
        outcome.dead_letters = len(batch.malformed)
        self._reconcile(batch, outcome)
        handled = "applied" if outcome.indexed or outcome.retired else "no_op"
        dead_lettered = topic_counts(message for message, _ in batch.malformed)
        for topic, events in topic_counts(messages).items():
            STREAM_EVENTS.labels(topic, "dead_letter").inc(dead_lettered[topic])
            STREAM_EVENTS.labels(topic, handled).inc(events - dead_lettered[topic])
        return outcome

    def _handle_one_by_one(self, messages: Sequence[Message]) -> BatchOutcome:
        """The batch failed `stream_max_attempts` times in a row: each event alone, and
        those that still fail go to the dead-letter topic with the error, so one event that
        cannot be processed does not hold back the events after it."""
        outcome = BatchOutcome(events=len(messages))
        for message in messages:
            try:
                outcome.add(self.handle([message]))
            except DeadLetterFailed:
                raise
            except Exception as exc:
                log.exception("event failed alone too; dead-lettering it")
                attempts = self.health.failed_attempts
                self._dead_letter(message, f"failed {attempts} times in a row, then alone: {exc}")
                STREAM_EVENTS.labels(position(message)[0], "dead_letter").inc()
                outcome.dead_letters += 1
                self._catch_up_tries_left = self.settings.stream_max_attempts
        return outcome

    def _dead_letter(self, message: Message, reason: str) -> None:
        try:
            self.publisher.dead_letter(message, reason)
        except Exception as exc:
            STREAM_DEAD_LETTER_FAILURES.inc()
            raise DeadLetterFailed(f"dead letter not accepted ({exc}) for: {reason}") from exc
        DEAD_LETTERS.labels(position(message)[0]).inc()

    def catch_up(self) -> BatchOutcome:
        """Reconcile every known source, as if each had an event now (run at start-up and
        after the broker was unreachable)."""
        outcome = BatchOutcome(events=0)
        with tracer.start_as_current_span("catch_up"):
            self._reconcile(full_batch(self.store), outcome)
        return outcome

    def _recover(self, timeout: float) -> BatchOutcome | None:
        """The broker was unreachable. Once it answers: create the topics if it lost them,
        produce with a new producer, read the partitions whose log it lost from their start
        (the consumer, which librdkafka reconnects and joins to the group again, would stay
        past the new log's end), then catch up, since events may have been lost with the
        broker. None while the broker does not answer yet.

        The consumer is kept, not replaced: a member that leaves a group tansu has just
        rebuilt can stay its leader for good, and no new member then gets partitions."""
        try:
            self.consumer.list_topics(timeout=max(timeout, 0.1))
            # A new producer too: a restarted broker may not know the old one's id.
            self.publisher = EventPublisher(self.settings)  # creates the topics it lost
            self._replay |= self._lost_partitions()
        except KafkaException as exc:
            self.health.broker(connected=False, error=f"broker unreachable: {exc}")
            return None
        log.warning("the broker answers again; catching up (logs lost: %s)", self._replay)
        self._replay_assigned()
        self._next_offsets.clear()
        self._lag.forget()  # a broker that lost its logs lost their committed offsets too
        self._broker_lost = self._rewind_pending = False
        self.health.broker(connected=True)
        try:
            outcome = self.catch_up()
        except Exception as exc:
            self._broker_lost = True  # so the catch-up is tried again
            self.health.failed(exc)
            raise
        STREAM_BROKER_RECOVERIES.inc()
        self.health.progressed()
        return outcome

    def _reconcile(self, batch: ChangeBatch, outcome: BatchOutcome) -> None:
        with outcome.timed("plan"):
            plan = plan_changes(self.store, self.index, batch)
        if plan.upserts:
            with outcome.timed("index") as span:
                span.set_attribute("rag.versions", [v.partition_key for v in plan.upserts])
                result = build_versions(
                    self.settings, self.store, self.index, self.embedder, plan.upserts,
                    optimize=False,
                )  # fmt: skip
            outcome.indexed = plan.upserts
            outcome.access_only = plan.access_only
            outcome.retired += result.retired
            outcome.chunk_counts |= result.chunk_counts
        if plan.deletions:
            with outcome.timed("retire") as span:
                span.set_attribute("rag.doc_ids", sorted(plan.deletions))
                outcome.retired += retire_documents(self.store, self.index, list(plan.deletions))
        if not plan.empty:
            self._dirty_since = time.monotonic()
            INDEX_LAST_WRITE.set(time.time())
        with outcome.timed("record"):
            self._record_freshness(plan, outcome)
            self.on_batch(outcome)

    def _record_freshness(self, plan: ChangePlan, outcome: BatchOutcome) -> None:
        outcome.freshness = record_freshness(self.store, plan.event_times, plan.upserts)
        for record in outcome.freshness:
            FRESHNESS_LAG.labels("upsert").observe(record.lag_seconds)
        now = datetime.now(UTC)
        for doc_id in plan.deletions:
            lag = now - plan.event_times[doc_id]
            FRESHNESS_LAG.labels("delete").observe(lag.total_seconds())

    def _optimize_when_idle(self) -> None:
        if self._dirty_since is None:
            return
        if time.monotonic() - self._dirty_since >= OPTIMIZE_AFTER_IDLE_SECONDS:
            self.index.optimize()
            self._dirty_since = None

    def _catch_up_when_idle(self) -> None:
        """Events dead-lettered for failing were often failing on an outage (the object store
        or the warehouse unreachable for longer than the attempts took), not on themselves:
        once the stream is idle, reconcile every source, which indexes what those events were
        about if it can be now. A few tries, not forever: a source that really cannot be
        indexed would fail every catch-up."""
        if not self._catch_up_tries_left:
            return
        if time.monotonic() - self._catch_up_tried_at < CATCH_UP_RETRY_SECONDS:
            return
        self._catch_up_tried_at = time.monotonic()
        self._catch_up_tries_left -= 1
        try:
            self.catch_up()
        except Exception:
            log.exception("catch-up after dead-lettered failures failed; %d tries left",
                          self._catch_up_tries_left)  # fmt: skip
            return
        self._catch_up_tries_left = 0

    def _record_when_idle(self) -> None:
        """The recorder's deferred work; its failure is logged, as the events it follows
        are indexed and committed already."""
        if not isinstance(self.on_batch, IdleWork):
            return
        try:
            self.on_batch.when_idle()
        except Exception:
            log.exception("the recorder's idle work failed; it is tried again when idle")

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set. A batch that fails (S3 or the warehouse unreachable, say)
        is not committed: the worker rewinds to the committed offsets and tries again after a
        pause, so nothing is lost and the process does not die."""
        self.health.consuming = True
        backoff = RETRY_SECONDS
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                    backoff = RETRY_SECONDS
                except Exception:
                    log.exception(
                        "batch failed (%d in a row); retrying from the committed offsets in "
                        "%.0f s", self.health.failed_attempts, backoff,
                    )  # fmt: skip
                    stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_RETRY_SECONDS)
        finally:
            self.health.consuming = False

    def _rewind(self) -> None:
        for partition in self.consumer.committed(self.consumer.assignment(), timeout=10):
            if partition.offset < 0:  # nothing committed yet: from the start
                partition.offset = OFFSET_BEGINNING
            self.consumer.seek(partition)
        self._rewind_pending = False

    def close(self) -> None:
        """Leave the consumer group (idempotent)."""
        if not self._closed:
            self.consumer.close()
            self._closed = True

    def __enter__(self) -> "StreamingIndexer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def topic_counts(messages: Iterable[Message]) -> Counter[str]:
    """Messages by topic."""
    return Counter(position(message)[0] for message in messages)


def serve_probes(health: WorkerHealth, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve `/healthz` (liveness: the process answers), `/readyz` (200 when ready, else 503;
    both with the health report as JSON) and Prometheus `/metrics`, from a daemon thread."""

    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                status = 200 if path == "/healthz" or health.ready else 503
                self._send(status, json.dumps(health.report()).encode(), "application/json")
            else:
                self._send(404, b'{"detail": "not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds would flood the worker's log."""

    server = ThreadingHTTPServer((host, port), Probes)
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
