"""Event contracts: committed schemas, compatibility between versions, decoding."""

import copy
import hashlib
import itertools
import json

import jsonschema
import pytest

from rag_core.domain.events import (
    EVENT_MODELS,
    LETTER_VALUE_BYTES,
    DeadLetter,
    DocumentChange,
    MalformedEvent,
    TableRowChange,
    compatibility_problems,
    dead_letter,
    decode,
    document_change,
    encode,
    json_schema,
    released_schemas,
    table_row_change,
)


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_the_model_matches_its_latest_released_schema(event_type: str) -> None:
    released = released_schemas(event_type)
    model = EVENT_MODELS[event_type]
    assert released, f"no schema committed for {event_type}"
    assert json_schema(model) == released[-1], (
        f"{model.__name__} changed: commit its schema as a new version under event_schemas/ "
        "and raise the schema_version default"
    )
    assert model.model_fields["schema_version"].default == len(released)


RELEASED_PAIRS = [
    pytest.param(old, new, id=f"{event_type}.v{number}-v{number + 1}")
    for event_type in sorted(EVENT_MODELS)
    for number, (old, new) in enumerate(itertools.pairwise(released_schemas(event_type)), 1)
]


def test_some_event_type_has_evolved() -> None:
    """Keeps the next test from passing over nothing."""
    assert [pair.id for pair in RELEASED_PAIRS] == ["dead_letter.v1-v2", "dead_letter.v2-v3"]


@pytest.mark.parametrize(("old", "new"), RELEASED_PAIRS)
def test_every_released_version_is_compatible_with_the_one_before(old: dict, new: dict) -> None:
    assert compatibility_problems(old, new) == []


def test_dead_letters_of_every_version_are_read_on_every_side() -> None:
    schemas = released_schemas("dead_letter")
    letter = json.loads(encode(dead_letter("rag.document-changes", 0, 7, b"k", b"{", "not JSON")))
    v3_fields = {"value_size", "value_sha256", "value_truncated"}
    old_letters = [
        {k: v for k, v in letter.items() if k not in v3_fields | {"idempotency_key"}},
        {k: v for k, v in letter.items() if k not in v3_fields},
    ]
    for number, old in enumerate(old_letters, 1):
        old["schema_version"] = number
    for schema in schemas:  # every reader accepts letters of every version
        for payload in [letter, *old_letters]:
            jsonschema.validate(payload, schema)
    v1_letter = decode(DeadLetter, json.dumps(old_letters[0]).encode())
    assert v1_letter.idempotency_key is None and v1_letter.value_size is None


@pytest.mark.parametrize(
    "payload",
    [bytes(range(32)) * 28_125, b"\xff" * 900_000, bytes(range(256)) * 3516, b'"a' * 900_000],
    ids=["control", "invalid-utf8", "mixed", "escaped"],
)
def test_a_dead_letter_stays_small_whatever_the_payload(payload: bytes) -> None:
    """A ~900 KB binary payload once made a 2.7 MB letter the broker refused."""
    letter = dead_letter("rag.document-changes", 0, 7, payload, payload, "not JSON: " + "x" * 10**6)
    encoded = encode(letter)
    assert len(encoded) < LETTER_VALUE_BYTES + 8 * 1024
    assert letter.value and payload.decode(errors="replace").startswith(letter.value)
    assert letter.value_truncated and letter.value_size == len(payload)
    assert letter.value_sha256 == hashlib.sha256(payload).hexdigest()
    assert letter.key is not None and len(letter.key) <= 1024
    assert letter.reason.startswith("not JSON: xxx") and len(letter.reason) <= 4096
    jsonschema.validate(json.loads(encoded), released_schemas("dead_letter")[-1])


def test_a_small_dead_letter_keeps_the_whole_payload() -> None:
    letter = dead_letter("rag.document-changes", 0, 7, b"k", b'{"op": "\xff"}', "not JSON")
    assert letter.value == '{"op": "\ufffd"}' and not letter.value_truncated
    assert letter.value_size == 11


def test_a_message_dead_lettered_twice_has_one_idempotency_key() -> None:
    first = dead_letter("rag.document-changes", 0, 7, None, b"x", "not JSON")
    again = dead_letter("rag.document-changes", 0, 7, None, b"x", "not JSON")
    others = [
        dead_letter("rag.document-changes", 0, 8, None, b"x", "not JSON"),
        dead_letter("rag.document-changes", 1, 7, None, b"x", "not JSON"),
        dead_letter("rag.table-row-changes", 0, 7, None, b"x", "not JSON"),
    ]
    assert first.idempotency_key == again.idempotency_key
    assert first.failed_at <= again.failed_at
    assert first.idempotency_key not in {other.idempotency_key for other in others}


def _v1() -> dict:
    return released_schemas("document_change")[0]


def test_adding_an_optional_field_is_compatible() -> None:
    new = copy.deepcopy(_v1())
    new["properties"]["etag"] = {"type": "string", "default": None}
    new["properties"]["op"]["description"] = "reworded"
    assert compatibility_problems(_v1(), new) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["properties"].pop("version"), "field 'version' removed"),
        (lambda s: s["properties"]["op"].update(enum=["upsert"]), "changed type"),
        (lambda s: s["required"].append("version"), "became required"),
        (lambda s: s["required"].remove("op"), "no longer required"),
        (lambda s: s.update(additionalProperties=False), "unknown fields are forbidden"),
    ],
)
def test_breaking_changes_are_reported(change, problem: str) -> None:
    new = copy.deepcopy(_v1())
    change(new)
    assert any(problem in found for found in compatibility_problems(_v1(), new))


def test_produced_events_validate_against_the_committed_schemas() -> None:
    events = {
        "document_change": document_change("upsert", "documents/a.md", "v1", "stamp"),
        "table_row_change": table_row_change("delete", "tickets", "7", None, "2026-11-25"),
    }
    for event_type, event in events.items():
        jsonschema.validate(json.loads(encode(event)), released_schemas(event_type)[-1])


def test_idempotency_keys_name_the_change_not_the_delivery() -> None:
    first = document_change("upsert", "documents/a.md", "v1", "stamp")
    again = document_change("upsert", "documents/a.md", "v1", "stamp")
    later = document_change("upsert", "documents/a.md", "v2", "stamp2")
    assert first.idempotency_key == again.idempotency_key != later.idempotency_key
    assert first.event_time <= again.event_time


def test_fields_a_reader_does_not_know_are_ignored() -> None:
    payload = json.loads(encode(table_row_change("upsert", "t", "1", "r1", "w")))
    payload |= {"row_owner": "someone"}
    assert decode(TableRowChange, json.dumps(payload).encode()).row_version == "r1"


@pytest.mark.parametrize(("model", "version"), [(TableRowChange, 2), (DocumentChange, 99)])
def test_a_version_newer_than_the_reader_knows_is_malformed(model: type, version: int) -> None:
    """Not read as the newest version known: it may mean something else."""
    event = (
        table_row_change("upsert", "t", "1", "r1", "w")
        if model is TableRowChange
        else document_change("upsert", "documents/a.md", "v1", "stamp")
    )
    payload = json.loads(encode(event)) | {"schema_version": version}
    with pytest.raises(MalformedEvent, match=f"unknown schema_version {version}"):
        decode(model, json.dumps(payload).encode())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b'{"op": "upsert"}', "idempotency_key: Field required"),
        (b'{"op": "rename", "source_key": "k", "idempotency_key": "i", "event_time": '
         b'"2026-01-01T00:00:00Z", "source_position": "p"}', "op:"),
    ],
)  # fmt: skip
def test_malformed_payloads_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode(DocumentChange, payload)
