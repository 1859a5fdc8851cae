"""The streaming worker: a warm process that consumes change events and makes each change
queryable within about a second.

A Dagster run per event cannot be fresh: importing the stack and loading the model take
tens of seconds. This worker keeps the parser, the embedding model and the index open,
handles each poll's events as one batch (reconcile, raw → index in-process), and only then
commits the offsets. `on_batch` lets the caller record the outcome (the Dagster wiring
reports it to the instance as runless materializations).
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message

from rag_core import services
from rag_core.changes import (
    ChangeBatch,
    ChangePlan,
    Freshness,
    full_batch,
    plan_changes,
    read_batch,
    record_freshness,
)
from rag_core.documents import DocumentVersion
from rag_core.events import topics
from rag_core.kafka import EventPublisher, consumer_config
from rag_core.parsing import warm_up_parser
from rag_core.pipeline import build_versions, retire_documents
from rag_core.settings import Settings
from rag_core.telemetry import FRESHNESS_LAG, STREAM_EVENTS

log = logging.getLogger(__name__)

# Compaction and full-text index refresh wait for a quiet moment: new rows are searchable
# before it (unindexed rows are scanned), and doing it per event would cost the freshness.
OPTIMIZE_AFTER_IDLE_SECONDS = 5.0
RETRY_SECONDS, MAX_RETRY_SECONDS = 1.0, 60.0


@dataclass
class BatchOutcome:
    events: int
    indexed: list[DocumentVersion] = field(default_factory=list)
    access_only: list[DocumentVersion] = field(default_factory=list)  # of those indexed
    retired: list[tuple[str, str]] = field(default_factory=list)
    dead_letters: int = 0
    freshness: list[Freshness] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # time spent, by stage

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


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
        self.publisher = EventPublisher(settings)  # creates missing topics
        self.consumer = Consumer(consumer_config(settings, group_id or settings.kafka_group_id))
        self.consumer.subscribe([topics(settings).documents, topics(settings).tables])
        self._dirty_since: float | None = None
        self._closed = False

    def warm_up(self) -> None:
        """Load the model and the parsers before the first event, not on it."""
        self.embedder.embed(["warm up"])
        warm_up_parser({"a.md", "a.html", "a.txt", "a.pdf"})

    def poll_once(self, timeout: float = 0.5) -> BatchOutcome | None:
        # Wait for the first event only; `consume` alone would wait for a full batch.
        first = self.consumer.poll(timeout)
        if first is None:
            self._optimize_when_idle()
            return None
        messages = [first, *self.consumer.consume(self.settings.stream_batch_size - 1, 0)]
        for message in messages:
            if message.error():
                log.warning("consumer error: %s", message.error())
        messages = [message for message in messages if not message.error()]
        if not messages:
            self._optimize_when_idle()
            return None
        outcome = self.handle(messages)
        self.consumer.commit(asynchronous=False)  # only now is the batch's work done
        return outcome

    def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        outcome = BatchOutcome(events=len(messages))
        with outcome.timed("read"):
            batch = read_batch(self.settings, self.store, messages)
            for message, reason in batch.malformed:
                self.publisher.dead_letter(message, reason)
        outcome.dead_letters = len(batch.malformed)
        self._reconcile(batch, outcome)
        STREAM_EVENTS.labels("dead_letter").inc(outcome.dead_letters)
        STREAM_EVENTS.labels("applied" if outcome.indexed or outcome.retired else "no_op").inc(
            len(messages) - outcome.dead_letters
        )
        return outcome

    def catch_up(self) -> BatchOutcome:
        """Reconcile every known source, as if each had an event now (run at start-up)."""
        outcome = BatchOutcome(events=0)
        self._reconcile(full_batch(self.store), outcome)
        return outcome

    def _reconcile(self, batch: ChangeBatch, outcome: BatchOutcome) -> None:
        with outcome.timed("plan"):
            plan = plan_changes(self.store, self.index, batch)
        if plan.upserts:
            with outcome.timed("index"):
                result = build_versions(
                    self.settings, self.store, self.index, self.embedder, plan.upserts,
                    optimize=False,
                )  # fmt: skip
            outcome.indexed = plan.upserts
            outcome.access_only = plan.access_only
            outcome.retired += result.retired
        if plan.deletions:
            with outcome.timed("retire"):
                outcome.retired += retire_documents(self.store, self.index, list(plan.deletions))
        if not plan.empty:
            self._dirty_since = time.monotonic()
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

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set. A batch that fails (S3 or the warehouse unreachable, say)
        is not committed: the worker rewinds to the committed offsets and tries again after a
        pause, so nothing is lost and the process does not die."""
        backoff = RETRY_SECONDS
        while not stop.is_set():
            try:
                self.poll_once()
                backoff = RETRY_SECONDS
            except Exception:
                log.exception(
                    "batch failed; retrying from the committed offsets in %.0f s", backoff
                )
                stop.wait(backoff)
                self._rewind()
                backoff = min(backoff * 2, MAX_RETRY_SECONDS)

    def _rewind(self) -> None:
        for partition in self.consumer.committed(self.consumer.assignment(), timeout=10):
            if partition.offset < 0:  # nothing committed yet: from the start
                partition.offset = OFFSET_BEGINNING
            self.consumer.seek(partition)

    def close(self) -> None:
        """Leave the consumer group (idempotent)."""
        if not self._closed:
            self.consumer.close()
            self._closed = True

    def __enter__(self) -> "StreamingIndexer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
