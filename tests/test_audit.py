import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from rag_core import services
from rag_core.adapters.audit import (
    APPEND_ATTEMPTS,
    AuditConflictError,
    AuditRecord,
    append,
    head,
    parse_head,
    read_trail,
    record_hash,
    verify_trail,
)
from rag_core.adapters.objectstore import ObjectStore, StoredObject
from rag_core.domain.layout import audit_record_key
from rag_core.settings import Settings
from rag_serving.cli import app


@pytest.fixture
def store(rag_home: Settings) -> ObjectStore:
    return services.object_store(rag_home)


def erase(store: ObjectStore, request: int) -> AuditRecord:
    return append(
        store,
        actor="dpo@example.com",
        action="erasure",
        request_id=f"req-{request}",
        scope={"subject_hash": f"{request:064x}"},
        outcome={"chunks_deleted": request, "verified": True},
    )


@pytest.fixture
def trail(store: ObjectStore) -> list[AuditRecord]:
    return [erase(store, request) for request in (1, 2, 3)]


def rewrite(store: ObjectStore, sequence: int, **changes: object) -> None:
    """Edit a stored record's JSON in place, as someone with write access to the store could."""
    key = audit_record_key(sequence)
    stored = json.loads(store.get(key))
    store.put(key, json.dumps(stored | changes).encode())


def hide_key(store: ObjectStore, monkeypatch: pytest.MonkeyPatch, key: str, times: int) -> None:
    """Leave `key` out of the next `times` listings: a concurrent write not yet visible."""
    listing = store.list
    hidden = iter(range(times))

    def stale_list(prefix: str) -> list[StoredObject]:
        objects = listing(prefix)
        if next(hidden, None) is None:
            return objects
        return [obj for obj in objects if obj.key != key]

    monkeypatch.setattr(store, "list", stale_list)


def test_appends_chain_records(store: ObjectStore, trail: list[AuditRecord]) -> None:
    assert [record.sequence for record in trail] == [1, 2, 3]
    assert [record.previous_hash for record in trail] == ["", trail[0].hash, trail[1].hash]
    assert len({record.hash for record in trail}) == 3
    assert all(record.hash == record_hash(record) for record in trail)
    assert [obj.key for obj in store.list("audit")] == [
        "audit/000000000001.json",
        "audit/000000000002.json",
        "audit/000000000003.json",
    ]
    assert read_trail(store) == trail
    assert head(store) == (3, trail[2].hash)
    assert verify_trail(store) == []
    assert verify_trail(store, expected_head=(3, trail[2].hash)) == []


def test_hash_covers_every_field(trail: list[AuditRecord]) -> None:
    record = trail[1]
    for field, value in {
        "outcome": {"chunks_deleted": 0},
        "scope": {},
        "actor": "someone-else",
        "recorded_at": record.recorded_at + timedelta(seconds=1),
        "previous_hash": "",
    }.items():
        assert record_hash(record.model_copy(update={field: value})) != record.hash
    assert record_hash(record.model_copy(update={"hash": "ignored"})) == record.hash


def test_empty_trail_is_clean(store: ObjectStore) -> None:
    assert read_trail(store) == []
    assert head(store) == (0, "")
    assert verify_trail(store) == []
    assert verify_trail(store, expected_head=(0, "")) == []


def test_tampered_outcome_is_reported(store: ObjectStore, trail: list[AuditRecord]) -> None:
    rewrite(store, 2, outcome={"chunks_deleted": 0, "verified": True})

    assert verify_trail(store) == ["sequence 2: hash does not match its content (tampered)"]


def test_deleted_middle_record_is_a_gap(store: ObjectStore, trail: list[AuditRecord]) -> None:
    store.delete(audit_record_key(2))

    assert verify_trail(store) == ["sequence 2: missing"]


def test_rehashed_record_breaks_the_next_link(store: ObjectStore, trail: list[AuditRecord]) -> None:
    forged = trail[1].model_copy(update={"outcome": {"chunks_deleted": 0}})
    forged = forged.model_copy(update={"hash": record_hash(forged)})
    store.put(audit_record_key(2), forged.model_dump_json().encode())

    assert verify_trail(store) == [
        "sequence 3: previous_hash does not match the hash of sequence 2 (reordered or replaced)"
    ]


def test_renamed_record_is_reported(store: ObjectStore, trail: list[AuditRecord]) -> None:
    store.put("audit/000000000009.json", store.get(audit_record_key(3)))
    store.delete(audit_record_key(3))

    assert verify_trail(store) == [
        "sequence 3: stored under audit/000000000009.json, not audit/000000000003.json"
    ]


def test_unreadable_record_is_reported_once(store: ObjectStore, trail: list[AuditRecord]) -> None:
    store.put(audit_record_key(2), b"{not json")
    rewrite(store, 3, note="unhashed field")

    assert verify_trail(store) == [
        "sequence 2: unreadable (ValidationError)",
        "sequence 3: unreadable (ValidationError)",
    ]


def test_truncation_needs_the_expected_head(store: ObjectStore, trail: list[AuditRecord]) -> None:
    published = head(store)
    store.delete(audit_record_key(3))

    assert head(store) == (2, trail[1].hash)
    assert verify_trail(store) == []
    assert verify_trail(store, expected_head=published) == [
        "sequence 3: expected head is missing (trail truncated)"
    ]


def test_rebuilt_trail_differs_from_the_expected_head(
    store: ObjectStore, trail: list[AuditRecord]
) -> None:
    published = head(store)
    store.delete(audit_record_key(3))
    erase(store, 3)

    assert verify_trail(store) == []
    assert verify_trail(store, expected_head=published) == [
        "sequence 3: hash differs from the expected head (trail rewritten)"
    ]


def test_append_retries_after_a_concurrent_append(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = erase(store, 1)
    hide_key(store, monkeypatch, audit_record_key(2), times=1)
    concurrent = first.model_copy(
        update={"sequence": 2, "request_id": "other", "previous_hash": first.hash}
    )
    concurrent = concurrent.model_copy(update={"hash": record_hash(concurrent)})
    store.put(audit_record_key(2), concurrent.model_dump_json().encode())

    record = erase(store, 3)

    assert (record.sequence, record.previous_hash) == (3, concurrent.hash)
    assert read_trail(store)[1] == concurrent
    assert verify_trail(store) == []


def test_append_never_overwrites_and_gives_up(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    erase(store, 1)
    store.put(audit_record_key(2), b"written by someone else")
    hide_key(store, monkeypatch, audit_record_key(2), times=APPEND_ATTEMPTS + 1)  # + the dedup scan

    with pytest.raises(AuditConflictError, match=r"audit/000000000002\.json was already taken"):
        erase(store, 2)

    assert store.get(audit_record_key(2)) == b"written by someone else"
    assert not store.exists(audit_record_key(3))


def test_append_is_idempotent_per_request_and_status(store: ObjectStore) -> None:
    failed = {"status": "failed", "error_type": "OSError"}
    first = append(store, actor="a", action="erasure", request_id="r", scope={}, outcome=failed)
    again = append(store, actor="a", action="erasure", request_id="r", scope={}, outcome=failed)
    done = {"status": "completed"}
    completed = append(store, actor="a", action="erasure", request_id="r", scope={}, outcome=done)

    assert again == first and completed.sequence == 2
    assert read_trail(store) == [first, completed] and verify_trail(store) == []


def test_ragctl_audit_fails_on_a_trail_shorter_than_the_expected_head(
    store: ObjectStore, trail: list[AuditRecord]
) -> None:
    sequence, digest = head(store)
    expected = f"{sequence}:{digest}"
    assert parse_head(expected) == (3, trail[2].hash) and parse_head("0:") == (0, "")
    runner = CliRunner()
    assert runner.invoke(app, ["audit", "--expect-head", expected]).exit_code == 0

    store.delete(audit_record_key(3))

    truncated = runner.invoke(app, ["audit", "--expect-head", expected])
    assert truncated.exit_code == 1 and "trail truncated" in truncated.output
    assert runner.invoke(app, ["audit", "--expect-head", "3"]).exit_code == 2
