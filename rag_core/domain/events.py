"""Change events, the platform's contracts on Kafka (see docs/events.md).

Each event type is a pydantic model; every released version of its JSON Schema is committed
under `event_schemas/` and a test keeps new versions compatible with old readers. Events are
notifications: consumers reconcile against the source of truth (the object store or the
warehouse), so duplicated, replayed or reordered events cannot regress the index.
"""

import hashlib
import json
from bisect import bisect_right
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag_core.domain.ids import digest
from rag_core.settings import Settings

SCHEMA_DIR = Path(__file__).parent / "event_schemas"

Operation = Literal["upsert", "delete"]


class ChangeEvent(BaseModel):
    """Fields every change event carries."""

    # Readers ignore fields they do not know, so a producer may add optional ones.
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = Field(default=1, ge=1, description="Version of this event's schema.")
    idempotency_key: str = Field(description="The same for every delivery of one change.")
    op: Operation
    event_time: datetime = Field(description="When the producer observed the change.")
    source_position: str = Field(
        description="Where in the source the change was seen (object mtime, table watermark)."
    )


class DocumentChange(ChangeEvent):
    """A file under the object store's `documents/` was put, overwritten or deleted."""

    source_key: str = Field(description="Object key, relative to the object store root.")
    version: str | None = Field(
        default=None, description="Content version the producer saw; none for deletes."
    )


class TableRowChange(ChangeEvent):
    """A row of a document-rendering warehouse model was inserted, updated or deleted."""

    table: str = Field(description="The dbt model that renders rows into documents.")
    row_key: str = Field(description="Primary key of the row, as text.")
    row_version: str | None = Field(
        default=None, description="Hash of the rendered row; none for deletes."
    )


class DeadLetter(BaseModel):
    """An event no consumer could process, kept with the reason instead of stopping the stream."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = Field(default=3, ge=1)
    idempotency_key: str | None = Field(
        default=None,
        description="Hash of the original topic, partition and offset: the same every time "
        "one message is dead-lettered, so readers can drop repeats (none before version 2).",
    )
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str = Field(
        description="The original payload decoded as UTF-8 with replacement; from version 3 "
        "only its first bytes, so that a letter always fits in a Kafka message."
    )
    reason: str
    failed_at: datetime
    value_size: int | None = Field(
        default=None, description="Size in bytes of the original payload (from version 3)."
    )
    value_sha256: str | None = Field(
        default=None, description="SHA-256 of the original payload, hex (from version 3)."
    )
    value_truncated: bool = Field(
        default=False, description="Whether `value` holds only a prefix of the payload."
    )


EVENT_MODELS: dict[str, type[BaseModel]] = {
    "document_change": DocumentChange,
    "table_row_change": TableRowChange,
    "dead_letter": DeadLetter,
}


class Topics(NamedTuple):
    documents: str
    tables: str
    dead_letter: str


def topics(settings: Settings) -> Topics:
    prefix = settings.kafka_topic_prefix
    return Topics(f"{prefix}.document-changes", f"{prefix}.table-row-changes", f"{prefix}.dlq")


def topic_event_types(settings: Settings) -> dict[str, str]:
    names = topics(settings)
    return {
        names.documents: "document_change",
        names.tables: "table_row_change",
        names.dead_letter: "dead_letter",
    }


def topic_schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    """The JSON Schema every value on each topic satisfies: the newest released schema of the
    topic's event type. Producers check it before sending, and a broker with a schema
    registry refuses what fails it."""
    return {
        topic: released_schemas(event_type)[-1]
        for topic, event_type in topic_event_types(settings).items()
    }


def idempotency_key(*parts: str | None) -> str:
    return digest(*(part or "" for part in parts), length=32)


def document_change(
    op: Operation, source_key: str, version: str | None, source_position: str
) -> DocumentChange:
    return DocumentChange(
        idempotency_key=idempotency_key("document", op, source_key, version, source_position),
        op=op,
        event_time=datetime.now(UTC),
        source_position=source_position,
        source_key=source_key,
        version=version,
    )


def table_row_change(
    op: Operation, table: str, row_key: str, row_version: str | None, source_position: str
) -> TableRowChange:
    return TableRowChange(
        idempotency_key=idempotency_key("row", op, table, row_key, row_version, source_position),
        op=op,
        event_time=datetime.now(UTC),
        source_position=source_position,
        table=table,
        row_key=row_key,
        row_version=row_version,
    )


class MalformedEvent(ValueError):
    """An event that can never be processed, whatever is retried: not a valid event of its
    topic, or about something this deployment does not have. The message says why."""


Event = TypeVar("Event", bound=BaseModel)


def decode(model: type[Event], payload: bytes | None) -> Event:
    if not payload:
        raise MalformedEvent("empty payload")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    _check_version(model, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'event'}: {error['msg']}"
            for error in exc.errors()
        )
        raise MalformedEvent(f"not a valid {model.__name__}: {problems}") from exc


def newest_version(model: type[BaseModel]) -> int:
    """The newest schema version of `model` this code knows (its `schema_version` default,
    which tests keep equal to the number of released schemas)."""
    version: int = model.model_fields["schema_version"].default
    return version


def _check_version(model: type[BaseModel], data: Any) -> None:
    """A version newer than this code knows may mean anything (a field renamed, another
    meaning), so it is not read as the newest one known: it is malformed here."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    newest = newest_version(model)
    if type(version) is int and version > newest:
        raise MalformedEvent(
            f"unknown schema_version {version}: this consumer reads {model.__name__} "
            f"up to version {newest}"
        )


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


# What a dead letter keeps of the original message, in bytes of its JSON text: a letter stays
# far below any broker's message size limit (1 MB by default), whatever the payload was.
LETTER_VALUE_BYTES, LETTER_KEY_BYTES, LETTER_REASON_BYTES = 64 * 1024, 1024, 4096


def _json_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def json_text_prefix(data: bytes, limit: int) -> str:
    """The longest prefix of `data`, decoded as UTF-8 with replacement, whose JSON string
    takes at most `limit` bytes. The bytes are cut before decoding, and the escapes are
    counted (a control byte becomes six, an invalid one three), so binary cannot grow."""
    text = data[:limit].decode(errors="replace")
    if _json_size(text) <= limit:
        return text
    ends = list(accumulate(_json_size(char) for char in text))
    return text[: bisect_right(ends, limit)]


def dead_letter(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str
) -> DeadLetter:
    """A letter for one message, which always fits in a Kafka message: it keeps a prefix of
    the payload, its size and hash, and where the message was (topic, partition, offset)."""
    value = value or b""
    text = json_text_prefix(value, LETTER_VALUE_BYTES)
    return DeadLetter(
        idempotency_key=idempotency_key("dead_letter", topic, str(partition), str(offset)),
        topic=topic,
        partition=partition,
        offset=offset,
        key=json_text_prefix(key, LETTER_KEY_BYTES) if key is not None else None,
        value=text,
        reason=json_text_prefix(reason.encode(), LETTER_REASON_BYTES),
        failed_at=datetime.now(UTC),
        value_size=len(value),
        value_sha256=hashlib.sha256(value).hexdigest(),
        value_truncated=text != value.decode(errors="replace"),
    )


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def schema_path(event_type: str, version: int) -> Path:
    return SCHEMA_DIR / f"{event_type}.v{version}.json"


def released_schemas(event_type: str) -> list[dict[str, Any]]:
    """Committed schema versions of an event type, oldest first."""
    paths = sorted(
        SCHEMA_DIR.glob(f"{event_type}.v*.json"), key=lambda p: int(p.stem.rsplit(".v", 1)[1])
    )
    return [json.loads(path.read_text()) for path in paths]


# Annotations, and defaults (the schema_version default is the version), do not change
# what a reader accepts.
_ANNOTATIONS = {"title", "description", "examples", "default"}


def _shape(schema: Any) -> Any:
    """A property's schema without annotations."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in _ANNOTATIONS}
    if isinstance(schema, list):
        return [_shape(item) for item in schema]
    return schema


def compatibility_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why readers of `old` could not read events written with `new`, or the reverse.

    Allowed: adding optional fields and changing descriptions. Everything else (removing or
    retyping a field, a new required field, a required field made optional, forbidding
    unknown fields) breaks one side of a rolling deploy.
    """
    problems = []
    old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, schema in old_properties.items():
        if name not in new_properties:
            problems.append(f"field {name!r} removed")
        elif _shape(schema) != _shape(new_properties[name]):
            problems.append(f"field {name!r} changed type or constraints")
    problems += [f"field {name!r} became required" for name in new_required - old_required]
    problems += [f"field {name!r} is no longer required" for name in old_required - new_required]
    if new.get("additionalProperties") is False:
        problems.append("unknown fields are forbidden, so no field can ever be added")
    if _shape(old.get("$defs", {})) != _shape(new.get("$defs", {})):
        problems.append("shared definitions changed")
    return problems
