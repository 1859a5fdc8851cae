"""Freshness: time from a change event to the change being queryable, on the real parts.

SeaweedFS serves S3 on loopback and holds the object store, the LanceDB index and tansu's
storage; the producer is the object-store scanner (`ragctl sync`'s), and the consumer is
the warm streaming worker (`ragctl stream`'s, with its Dagster records), run in a thread here
so its per-stage times can be read. "Queryable" means a keyword search for a token that only
the new text holds returns the document (for a delete: no longer returns it), polled every
20 ms by a separate reader, as a user would see it.

    python bench/freshness.py [--quick] [--sequential N] [--concurrent N]

Sequential: one add, then one update, then one delete at a time, each awaited. Concurrent:
N files put at once and announced in one scan; throughput is N over the time until the last
is queryable. Prints a table, then one JSON line with the figures.
"""

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer
from harness import arguments, console, finish, spread, table, temp_dir

from rag_assets.ingest import local_instance
from rag_assets.streaming import InstanceRecorder
from rag_core import services
from rag_core.adapters.catalog import delete_source, put_source
from rag_core.adapters.kafka import EventPublisher, consumer_config
from rag_core.adapters.local_servers import SeaweedS3, TansuBroker
from rag_core.domain.events import dead_letter
from rag_core.domain.layout import source_key
from rag_core.domain.stats import percentile
from rag_core.flows.streaming import BatchOutcome, StreamingIndexer
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings

TARGET_P95_S = 1.0
POLL_SECONDS = 0.02


def document(token: str) -> bytes:
    return (
        f"# Release note {token}\n\nThe {token} build changes how the gateway retries "
        "requests: it now waits with exponential back-off, caps retries at five, and logs "
        "each attempt with the request id so operators can follow a request end to end.\n"
    ).encode()


class Bench:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = services.object_store(settings)
        self.index = services.chunk_index(settings)
        self.publisher = EventPublisher(settings)
        self.outcomes: list[BatchOutcome] = []

    def announce(self) -> datetime:
        """Scan and publish; returns the event time of the changes."""
        events = sync_object_store(self.store, self.publisher.document_changes)
        assert events, "the scan found no change"
        return min(event.event_time for event in events)

    def found(self, token: str) -> bool:
        return bool(self.index.keyword_search(token, 3))

    def lag_until(self, event_time: datetime, done: Callable[[], bool]) -> float:
        deadline = time.monotonic() + 60
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("the change did not become queryable within 60 s")
            time.sleep(POLL_SECONDS)
        return (datetime.now(UTC) - event_time).total_seconds()

    def sequential(self, count: int) -> dict[str, list[float]]:
        lags: dict[str, list[float]] = {"add": [], "update": [], "delete": []}
        for number in range(count):
            key = source_key(f"bench/sequential-{number}.md")
            old, new = f"zq{uuid.uuid4().hex[:10]}", f"zq{uuid.uuid4().hex[:10]}"
            put_source(self.store, key, document(old))
            lags["add"].append(self.lag_until(self.announce(), lambda t=old: self.found(t)))
            put_source(self.store, key, document(new))
            lags["update"].append(
                self.lag_until(
                    self.announce(), lambda o=old, n=new: self.found(n) and not self.found(o)
                )
            )
            delete_source(self.store, key)
            lags["delete"].append(self.lag_until(self.announce(), lambda n=new: not self.found(n)))
        return lags

    def kafka_round_trips(self, count: int) -> list[float]:
        """Baseline: produce one event and consume it, the broker's share of the path."""
        consumer = Consumer(consumer_config(self.settings, "bench-baseline"))
        consumer.subscribe([self.publisher.topics.dead_letter])
        consumer.poll(10.0)  # join the group before timing
        times = []
        for _ in range(count):
            started = time.perf_counter()
            letter = dead_letter("bench", 0, 0, None, b"ping", "baseline")
            self.publisher.publish(self.publisher.topics.dead_letter, [("bench", letter)])
            while (message := consumer.poll(5.0)) is None or message.error():
                pass
            times.append(time.perf_counter() - started)
        consumer.close()
        return times

    def concurrent(self, count: int) -> tuple[list[float], float]:
        tokens = {f"zq{uuid.uuid4().hex[:10]}": n for n in range(count)}
        for token, number in tokens.items():
            put_source(self.store, source_key(f"bench/concurrent-{number}.md"), document(token))
        event_time = self.announce()
        lags: list[float] = []
        pending = set(tokens)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for token in [t for t in pending if self.found(t)]:
                pending.discard(token)
                lags.append((datetime.now(UTC) - event_time).total_seconds())
            time.sleep(POLL_SECONDS)
        if pending:
            raise TimeoutError(f"{len(pending)} of {count} documents not queryable in 120 s")
        return lags, count / max(lags)


def stage_means(outcomes: list[BatchOutcome]) -> dict[str, float]:
    stages = sorted({stage for outcome in outcomes for stage in outcome.seconds})
    return {
        stage: round(statistics.mean(o.seconds.get(stage, 0.0) for o in outcomes), 3)
        for stage in stages
    }


def run(workdir: Path, sequential: int, concurrent: int) -> dict[str, object]:
    with SeaweedS3(workdir / "seaweed", log_path=workdir / "weed.log") as seaweed:
        credentials = seaweed.credentials
        os.environ.update(credentials.env())
        credentials.create_bucket("bench")
        credentials.create_bucket("bench-tansu")
        with TansuBroker(storage="s3://bench-tansu/", s3=credentials,
                         log_path=workdir / "tansu.log") as broker:  # fmt: skip
            settings = Settings(
                home=workdir / "rag",
                object_store_uri="s3://bench/objects",
                index_uri="s3://bench/lancedb",
                s3_endpoint_url=credentials.endpoint_url,
                kafka_bootstrap_servers=broker.bootstrap_servers,
            )
            bench = Bench(settings)
            recorder = InstanceRecorder(local_instance(settings), settings.freshness_sla_seconds)

            def on_batch(outcome: BatchOutcome) -> None:
                recorder(outcome)
                bench.outcomes.append(outcome)

            worker = StreamingIndexer(settings, on_batch, group_id="bench")
            worker.warm_up()
            stop = threading.Event()
            thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
            thread.start()
            try:
                bench.sequential(1)  # joins the consumer group, creates the table
                bench.outcomes.clear()
                baseline = bench.kafka_round_trips(sequential)
                lags = bench.sequential(sequential)
                concurrent_lags, docs_per_s = bench.concurrent(concurrent)
            finally:
                stop.set()
                thread.join()
                worker.close()
    return {
        "kafka_round_trips": baseline,
        "lags": lags,
        "concurrent_lags": concurrent_lags,
        "docs_per_s": docs_per_s,
        "stage_means_s": stage_means(bench.outcomes),
    }


def main() -> None:
    parser = arguments(__doc__, quick="a small run, about a minute")
    parser.add_argument("--sequential", type=int, help="adds, updates and deletes, each")
    parser.add_argument("--concurrent", type=int, help="files put at once")
    args = parser.parse_args()
    sequential = args.sequential or (5 if args.quick else 20)
    concurrent = args.concurrent or (10 if args.quick else 50)
    with temp_dir("freshness") as folder:
        result = run(folder, sequential, concurrent)

    lags: dict[str, list[float]] = result["lags"]  # type: ignore[assignment]
    rows = {**lags, "concurrent": result["concurrent_lags"]}
    console.print(
        table(
            f"event → queryable, seconds ({'quick' if args.quick else 'full'})",
            ("change", "n", "p50", "p95", "max"),
            [(name, *spread(values, 3)) for name, values in rows.items()],
        )
    )
    round_trips: list[float] = result["kafka_round_trips"]  # type: ignore[assignment]
    console.print(
        f"baseline, Kafka produce → consume: p50 {percentile(round_trips, 0.5):.3f} s, "
        f"p95 {percentile(round_trips, 0.95):.3f} s"
    )
    console.print(f"concurrent throughput: {result['docs_per_s']:.1f} documents/s")
    console.print("worker seconds per batch, by stage:", result["stage_means_s"])
    sequential_lags = [lag for values in lags.values() for lag in values]
    finish(
        "freshness",
        args.quick,
        {
            "p50_s": round(percentile(sequential_lags, 0.5), 3),
            "p95_s": round(percentile(sequential_lags, 0.95), 3),
            "p95_by_change_s": {
                name: round(percentile(values, 0.95), 3) for name, values in rows.items()
            },
            "docs_per_s": round(float(result["docs_per_s"]), 1),  # type: ignore[arg-type]
            "kafka_round_trip_p50_s": round(percentile(round_trips, 0.5), 4),
            "stage_means_s": result["stage_means_s"],
            "target_p95_s": TARGET_P95_S,
        },
    )


if __name__ == "__main__":
    main()
