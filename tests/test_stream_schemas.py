"""The event schemas as a contract the broker enforces: the embedded broker (tansu with its
schema registry) refuses records that fail their topic's released schema, whoever sends
them, and producers check events before sending."""

import json
import random
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from rag_core.adapters.kafka import EventPublisher, consumer_config
from rag_core.adapters.local_servers import TansuBroker, registry_schema
from rag_core.domain.events import (
    DeadLetter,
    MalformedEvent,
    dead_letter,
    decode,
    document_change,
    encode,
    table_row_change,
    topic_schemas,
    topics,
)
from rag_core.settings import Settings


@pytest.fixture
def enforcing(rag_home: Settings, tmp_path: Path) -> Iterator[Settings]:
    """The platform on a tansu broker that runs with the published schemas."""
    with TansuBroker(
        topic_schemas=topic_schemas(rag_home), data_dir=tmp_path / "tansu",
        log_path=tmp_path / "tansu.log",
    ) as broker:  # fmt: skip
        yield Settings(kafka_bootstrap_servers=broker.bootstrap_servers)


def send_raw(settings: Settings, topic: str, values: list[bytes]) -> list[KafkaError | None]:
    """Produce with a bare client, bypassing every check of the platform's publisher; one
    record at a time, as the broker refuses a batch with an invalid record as a whole."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    results: list[KafkaError | None] = []
    for value in values:
        producer.produce(
            topic, key=b"k", value=value, on_delivery=lambda error, _: results.append(error)
        )
        assert producer.flush(30) == 0
    return results


def read_all(settings: Settings, topic: str) -> list[bytes]:
    reader = Consumer(consumer_config(settings, "schema-reader"))
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values = []
    while (message := reader.poll(3.0)) is not None:
        if not message.error():
            values.append(message.value() or b"")
    reader.close()
    return values


def test_the_embedded_broker_refuses_what_the_topic_schema_rejects(enforcing: Settings) -> None:
    settings = enforcing
    EventPublisher(settings)  # creates the topics
    names = topics(settings)
    valid = encode(document_change("upsert", "documents/a.md", "v1", "stamp"))
    wrong_op = json.loads(valid) | {"op": "rename"}
    results = send_raw(
        settings,
        names.documents,
        [b"{not json", b'{"op": "upsert"}', json.dumps(wrong_op).encode(), valid],
    )
    codes = [error.code() if error else None for error in results]
    assert codes == [KafkaError.INVALID_RECORD] * 3 + [None]
    assert read_all(settings, names.documents) == [valid]

    row = encode(table_row_change("delete", "support_ticket_documents", "TCK-1", None, "w"))
    assert send_raw(settings, names.tables, [row, valid])[0] is None
    assert send_raw(settings, names.tables, [valid])[0].code() == KafkaError.INVALID_RECORD


def test_dead_letters_of_malformed_events_pass_the_dead_letter_schema(
    enforcing: Settings,
) -> None:
    """A letter carries the malformed original as text, so its topic's schema takes it."""
    settings = enforcing
    publisher = EventPublisher(settings)
    names = topics(settings)
    originals = [b"{not json", random.Random(7).randbytes(900_000), b'{"schema_version": 99}']
    letters = [
        dead_letter(names.documents, 0, offset, b"k", original, "malformed")
        for offset, original in enumerate(originals)
    ]
    publisher.publish(names.dead_letter, [(names.documents, letter) for letter in letters])
    stored = [decode(DeadLetter, value) for value in read_all(settings, names.dead_letter)]
    assert [letter.value_size for letter in stored] == [len(o) for o in originals]
    assert stored[0].value == "{not json"
    assert send_raw(settings, names.dead_letter, [b"{}"])[0].code() == KafkaError.INVALID_RECORD


def test_the_publisher_checks_events_before_sending(enforcing: Settings) -> None:
    settings = enforcing
    publisher = EventPublisher(settings)
    names = topics(settings)
    letter = dead_letter(names.documents, 0, 1, None, b"x", "malformed")
    with pytest.raises(MalformedEvent, match=r"not a valid event of rag\.document-changes"):
        publisher.publish(names.documents, [("k", letter)])
    assert read_all(settings, names.documents) == []


def test_registry_schemas_describe_the_record_value(rag_home: Settings) -> None:
    schemas = topic_schemas(rag_home)
    assert set(schemas) == set(topics(rag_home))
    event = json.loads(encode(document_change("delete", "documents/a.md", None, "p")))
    wrapped = registry_schema(schemas[topics(rag_home).documents])
    jsonschema.validate({"key": "anything", "value": event}, wrapped)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"value": {"op": "delete"}}, wrapped)
