"""An append-only, hash-chained audit trail of right-to-be-forgotten erasures.

Each record is its own object, keyed by its sequence number (`layout.audit_record_key`),
written once and never rewritten: appending adds the next sequence number and nothing else.
Records carry only what was asked (`scope`, which callers fill with hashes rather than names,
so the trail itself never needs erasing) and what was done (`outcome`: counts erased per
store, verification results).

Every record stores the hash of the record before it and its own hash over all its other
fields, so the trail is a chain. `verify_trail` recomputes it and shows that:

- no record was edited in place, unless every later record was rewritten too;
- no record was removed, renumbered or moved under another key in the middle of the trail;
- records are in the order they were appended.

It does not prove, on its own:

- that the newest records were not deleted: a shorter chain is still a valid chain. Callers
  publish `head()` somewhere the store's writers cannot rewrite (a ticket, a log, a signed
  message) and pass it back as `verify_trail(expected_head=...)`;
- that a writer with access to the store did not rebuild the whole chain; the same published
  head is what detects that;
- that the erasures reported in `outcome` really happened: the trail records, it does not check.
"""

import json
import re
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.ids import digest
from rag_core.domain.layout import AUDIT_PREFIX, audit_record_key, audit_sequence

APPEND_ATTEMPTS = 5

HEAD_PATTERN = r"^(\d+):([0-9a-f]{64})?$"  # what `ragctl audit` prints as the head


class AuditConflictError(RuntimeError):
    """The next record's key kept being taken by another appender."""


class AuditRecord(BaseModel):
    # Unknown fields are rejected rather than ignored: the hash does not cover them, so an added
    # field would otherwise pass verification unnoticed.
    model_config = ConfigDict(frozen=True, extra="forbid")

    sequence: int = Field(ge=1)
    recorded_at: AwareDatetime
    actor: str
    action: str
    request_id: str
    scope: dict[str, Any]
    outcome: dict[str, Any]
    previous_hash: str
    hash: str


def record_hash(record: AuditRecord) -> str:
    """The hash a record must carry: sha256 over its previous_hash and the canonical JSON of
    every field but `hash` itself, which is ignored.

    The fields are dumped the way they are stored (datetimes as ISO strings), so a record
    hashes the same before it is written and after it is read back.
    """
    fields = record.model_dump(mode="json", exclude={"hash"})
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return digest(record.previous_hash, canonical, length=64)


def append(
    store: ObjectStore,
    *,
    actor: str,
    action: str,
    request_id: str,
    scope: dict[str, Any],
    outcome: dict[str, Any],
) -> AuditRecord:
    """Write the next record after the latest one and return it.

    An existing key is never overwritten: when the next key is already taken (another appender
    got there first) the latest record is read again and the next sequence tried. The object
    store offers no conditional write, so two appenders racing between the check and the write
    can still collide; run erasures one at a time and let `verify_trail` catch the rest.

    Appending is idempotent per request, action and `outcome["status"]`: when the trail
    already holds that record it is returned instead, so a run resumed after a crash between
    the append and saving the request does not record the same outcome twice.
    """
    recorded = _recorded(store, request_id, action, outcome.get("status"))
    if recorded is not None:
        return recorded
    for _ in range(APPEND_ATTEMPTS):
        latest = _latest(store)
        draft = AuditRecord(
            sequence=latest.sequence + 1 if latest else 1,
            recorded_at=datetime.now(UTC),
            actor=actor,
            action=action,
            request_id=request_id,
            scope=scope,
            outcome=outcome,
            previous_hash=latest.hash if latest else "",
            hash="",
        )
        key = audit_record_key(draft.sequence)
        if not store.exists(key):
            record = draft.model_copy(update={"hash": record_hash(draft)})
            store.put(key, record.model_dump_json().encode())
            return record
    raise AuditConflictError(
        f"audit trail: {key} was already taken after {APPEND_ATTEMPTS} attempts; "
        "another appender is writing, or the store's listing is stale"
    )


def read_trail(store: ObjectStore) -> list[AuditRecord]:
    """Every record, in sequence order; raises on an unreadable one (`verify_trail` reports)."""
    records = [_read(store, obj.key) for obj in store.list(AUDIT_PREFIX)]
    return sorted(records, key=lambda record: record.sequence)


def head(store: ObjectStore) -> tuple[int, str]:
    """The latest sequence and its hash, (0, "") when empty: what to publish outside the store
    so that a truncated trail can be detected later."""
    latest = _latest(store)
    return (latest.sequence, latest.hash) if latest else (0, "")


def length(store: ObjectStore) -> int:
    """Records in the trail, by their keys alone (a listing, nothing read)."""
    return sum(audit_sequence(obj.key) is not None for obj in store.list(AUDIT_PREFIX))


def parse_head(value: str) -> tuple[int, str]:
    """`SEQUENCE:HASH`, as `ragctl audit` prints the head, back into `head()`'s shape."""
    match = re.fullmatch(HEAD_PATTERN, value)
    if match is None:
        raise ValueError(f"expected head as SEQUENCE:HASH, got {value!r}")
    return int(match.group(1)), match.group(2) or ""


def verify_trail(store: ObjectStore, expected_head: tuple[int, str] | None = None) -> list[str]:
    """Problems found in the trail, each naming a sequence (or a key); empty when intact.

    Reports records that are unreadable, stored under a key that is not their sequence's,
    whose hash does not match their content, whose previous_hash does not match the record
    before, and gaps in the sequence. Deleting the newest records leaves a valid, shorter
    chain: only `expected_head`, a `head()` published earlier, reveals it.
    """
    problems: list[str] = []
    entries: list[tuple[int, AuditRecord | None]] = []
    for obj in store.list(AUDIT_PREFIX):
        try:
            record = _read(store, obj.key)
        except (OSError, ValidationError) as error:
            # Kept in the chain as present but unknown, so it is not also reported as missing.
            sequence = audit_sequence(obj.key)
            if sequence is not None:
                entries.append((sequence, None))
            where = obj.key if sequence is None else f"sequence {sequence}"
            problems.append(f"{where}: unreadable ({type(error).__name__})")
            continue
        problems.extend(_record_problems(obj.key, record))
        entries.append((record.sequence, record))
    problems.extend(_chain_problems(entries))
    if expected_head is not None:
        problems.extend(_head_problems(entries, expected_head))
    return problems


def _read(store: ObjectStore, key: str) -> AuditRecord:
    return AuditRecord.model_validate_json(store.get(key))


def _recorded(
    store: ObjectStore, request_id: str, action: str, status: object
) -> AuditRecord | None:
    for obj in store.list(AUDIT_PREFIX):
        try:
            record = _read(store, obj.key)
        except (OSError, ValidationError):
            continue  # verify_trail reports it
        same = (record.request_id, record.action, record.outcome.get("status"))
        if same == (request_id, action, status):
            return record
    return None


def _latest(store: ObjectStore) -> AuditRecord | None:
    """The record under the highest sequence key; zero-padding makes key order numeric."""
    keys = [obj.key for obj in store.list(AUDIT_PREFIX) if audit_sequence(obj.key) is not None]
    return _read(store, keys[-1]) if keys else None


def _record_problems(key: str, record: AuditRecord) -> list[str]:
    problems = []
    expected_key = audit_record_key(record.sequence)
    if key != expected_key:
        problems.append(f"sequence {record.sequence}: stored under {key}, not {expected_key}")
    if record.hash != record_hash(record):
        problems.append(f"sequence {record.sequence}: hash does not match its content (tampered)")
    return problems


def _chain_problems(entries: list[tuple[int, AuditRecord | None]]) -> list[str]:
    """Gaps, duplicates and broken links, walking the records in sequence order."""
    problems = []
    expected = 1
    link: str | None = ""  # the previous_hash the next record must carry; None when unknown
    for sequence, record in sorted(entries, key=itemgetter(0)):
        if sequence < expected:
            problems.append(f"sequence {sequence}: stored more than once")
            continue
        if sequence > expected:
            problems.append(_gap(expected, sequence - 1))
            link = None
        if record is not None and link is not None and record.previous_hash != link:
            problems.append(_broken_link(sequence))
        link = record.hash if record is not None else None
        expected = sequence + 1
    return problems


def _gap(first: int, last: int) -> str:
    if first == last:
        return f"sequence {first}: missing"
    return f"sequences {first}-{last}: missing"


def _broken_link(sequence: int) -> str:
    if sequence == 1:
        return "sequence 1: previous_hash is not empty although it is the first record"
    return (
        f"sequence {sequence}: previous_hash does not match the hash of sequence "
        f"{sequence - 1} (reordered or replaced)"
    )


def _head_problems(
    entries: list[tuple[int, AuditRecord | None]], expected_head: tuple[int, str]
) -> list[str]:
    sequence, expected_hash = expected_head
    if sequence == 0:
        return []
    found = [record for number, record in entries if number == sequence and record is not None]
    if not found:
        return [f"sequence {sequence}: expected head is missing (trail truncated)"]
    if all(record.hash != expected_hash for record in found):
        return [f"sequence {sequence}: hash differs from the expected head (trail rewritten)"]
    return []
