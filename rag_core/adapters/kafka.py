"""Kafka clients for the platform's topics (confluent-kafka / librdkafka).

Producers are idempotent and wait for every acknowledgement; consumers never auto-commit:
offsets are committed only after the work for the events is done. Every message carries the
trace context it was sent in (W3C `traceparent` headers), so the work on an event continues
the producer's trace.

With `kafka_auth=msk-iam` the clients sign in to Amazon MSK with the process's AWS
credentials (SASL/OAUTHBEARER): librdkafka asks `oauth_cb` for a token, which a map of
strings such as `kafka_client_config` cannot carry.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from pydantic import BaseModel

from rag_core.domain.events import (
    DocumentChange,
    MalformedEvent,
    TableRowChange,
    dead_letter,
    encode,
    topic_schemas,
    topics,
)
from rag_core.settings import Settings
from rag_core.telemetry import tracer

TOPIC_PARTITIONS = 1  # one partition keeps per-key order simple; raise for throughput

Position = tuple[str, int, int]  # topic, partition and offset of a message
Partition = tuple[str, int]  # topic and partition number
# How long the one committed-offset request for newly assigned partitions may wait.
COMMITTED_QUERY_SECONDS = 0.5


def position(message: Message) -> Position:
    return message.topic() or "", message.partition() or 0, message.offset() or 0


Headers = list[tuple[str, str | bytes | None]]


def trace_headers() -> Headers:
    """The current trace context as message headers (`traceparent`, `tracestate`); none
    outside a recorded span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value) for name, value in carrier.items()]


def trace_context(message: Message) -> Context:
    """The trace context a message's producer sent it in (an empty one if it carried none)."""
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    carrier = {
        name: value.decode(errors="replace") if isinstance(value, bytes) else value
        for name, value in pairs
        if value is not None
    }
    return propagate.extract(carrier)


def messaging_attributes(operation: str, topic: str, count: int) -> dict[str, AttributeValue]:
    """The OpenTelemetry messaging conventions' attributes of a span over `count` messages."""
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
        "messaging.batch.message_count": count,
    }


def msk_iam_token_callback(region: str) -> Callable[[str], tuple[str, float]]:
    """librdkafka's `oauth_cb` for MSK IAM. Each call signs a fresh token (a presigned
    `kafka-cluster:Connect` request, base64url-encoded) with the AWS credentials the process
    has, and returns it with its expiry in seconds since the epoch. confluent-kafka calls it
    on its background thread when a client starts and before the token expires."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    def token(_oauthbearer_config: str) -> tuple[str, float]:
        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return value, expiry_ms / 1000

    return token


def authentication_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka settings `kafka_auth` stands for."""
    if settings.kafka_auth == "msk-iam":
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": msk_iam_token_callback(settings.s3_region),
        }
    return {}


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    # librdkafka writes to stderr itself; notices and worse only (not a closing producer's
    # "Purging 1 unserved events").
    defaults = {"bootstrap.servers": settings.kafka_bootstrap_servers, "log_level": 5}
    return defaults | settings.kafka_client_config | authentication_config(settings) | overrides


def ensure_topics(settings: Settings) -> None:
    """Create the platform's topics where missing."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [name for name in topics(settings) if name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=TOPIC_PARTITIONS, replication_factor=1) for name in missing]
    )
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    return client_config(
        settings,
        **{
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Answer fetches as soon as one event is there, not after librdkafka's 500 ms.
            "fetch.wait.max.ms": 20,
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": settings.kafka_session_timeout_ms // 3,
        },
    )


class EventPublisher:
    """Publishes events and returns only once the broker acknowledged all of them. Each
    event is checked against its topic's released schema first, as a broker with a schema
    registry would: what such a broker refuses is never sent."""

    def __init__(self, settings: Settings):
        ensure_topics(settings)
        self._producer = Producer(
            client_config(settings, **{"enable.idempotence": True, "linger.ms": 2})
        )
        self.topics = topics(settings)
        self._validators = {
            topic: Draft202012Validator(schema) for topic, schema in topic_schemas(settings).items()
        }

    def _check(self, topic: str, value: bytes) -> None:
        error = best_match(self._validators[topic].iter_errors(json.loads(value)))
        if error is not None:
            where = f"{topic}: {error.json_path}"
            raise MalformedEvent(f"not a valid event of {where}: {error.message}")

    def publish(self, topic: str, events: Iterable[tuple[str, BaseModel]]) -> int:
        """Send (key, event) pairs; raises if any delivery failed."""
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(str(error))

        messages = [(key.encode(), encode(event)) for key, event in events]
        for _, value in messages:  # all checked before any is sent
            self._check(topic, value)
        attributes = messaging_attributes("send", topic, len(messages))
        with tracer.start_as_current_span(
            f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            headers = trace_headers()
            for key, value in messages:
                self._producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=on_delivery
                )
            remaining = self._producer.flush(30)
            if failures or remaining:
                raise KafkaException(
                    f"{len(failures) + remaining} of {len(messages)} events not delivered"
                    + (f": {failures[0]}" if failures else "")
                )
        return len(messages)

    def document_changes(self, events: Iterable[DocumentChange]) -> None:
        """Keyed by source, so the changes of one source stay in order."""
        self.publish(self.topics.documents, ((event.source_key, event) for event in events))

    def row_changes(self, events: Iterable[TableRowChange]) -> None:
        self.publish(self.topics.tables, ((f"{e.table}/{e.row_key}", e) for e in events))

    def dead_letter(self, message: Message, reason: str) -> None:
        """Park an unprocessable event, with why, on the dead-letter topic. A consumer that
        crashes before committing parks it again: the letter's idempotency key is the same."""
        letter = dead_letter(*position(message), message.key(), message.value(), reason)
        self.publish(self.topics.dead_letter, [(letter.topic, letter)])


class ConsumerLag:
    """A consumer group's lag per assigned partition: the high watermark minus the group's
    committed offset, without a broker request on the way. The watermark is the one the last
    fetch response carried (librdkafka keeps it); the committed offsets are those this
    consumer committed (`committed`), asked of the broker once for partitions newly assigned.
    A partition where nothing was ever committed lags by all of its log."""

    def __init__(self, consumer: Consumer):
        self._consumer = consumer
        self._committed: dict[Partition, int] = {}  # a negative offset: nothing committed

    def committed(self, partitions: Iterable[TopicPartition]) -> None:
        """Note the offsets a synchronous `commit` returns; a partition it had no position on
        (a negative offset) kept what was committed there before."""
        for partition in partitions:
            if partition.offset >= 0:
                self._committed[partition.topic, partition.partition] = partition.offset

    def forget(self, partitions: Iterable[Partition] | None = None) -> None:
        """Ask the broker again (partitions reassigned, whose offsets others may have moved;
        all of them when None, after the broker lost its logs)."""
        if partitions is None:
            self._committed.clear()
        for name in partitions or ():
            self._committed.pop(name, None)

    def measure(self) -> dict[Partition, int]:
        """Lag by assigned partition, for those fetched from at least once; raises
        `KafkaException` when the committed offsets of new partitions cannot be read."""
        assigned = self._consumer.assignment()
        unknown = [p for p in assigned if (p.topic, p.partition) not in self._committed]
        if unknown:
            for partition in self._consumer.committed(unknown, timeout=COMMITTED_QUERY_SECONDS):
                self._committed[partition.topic, partition.partition] = partition.offset
        lags = {}
        for partition in assigned:
            low, high = self._consumer.get_watermark_offsets(partition, cached=True)
            if high < 0:  # not fetched from yet
                continue
            committed = self._committed.get((partition.topic, partition.partition), -1)
            lags[partition.topic, partition.partition] = max(
                high - (committed if committed >= 0 else max(low, 0)), 0
            )
        return lags
