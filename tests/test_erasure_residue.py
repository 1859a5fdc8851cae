"""Erasure leaves no byte of erased content in any file the platform owns, and never reaches
outside the object store's `documents/` for a key it was handed."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_erasure import BADGES, PHRASE, QUESTION, SUBJECT, files_holding, forget, index_with_badges

from rag_assets.ingest import local_instance
from rag_core import services
from rag_core.adapters.cache import build_response_cache
from rag_core.domain.documents import DocumentVersion
from rag_core.domain.ids import content_hash, doc_id_for, version_for
from rag_core.domain.layout import SYNC_STATE_KEY, Artifact, artifact_key, tombstone_key
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureScope
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings
from rag_serving.main import create_app

FILE_NAME = BADGES.rsplit("/", 1)[1]


@pytest.mark.slow
def test_no_file_under_rag_home_holds_an_erased_subject(rag_home: Settings) -> None:
    """An answer quoting the document is cached by the running API, the sync bookmark names
    the file; erased by subject through the API, nothing of it is in any file's bytes: not
    in the response cache's SQLite file nor its write-ahead log, not in the bookmark."""
    settings = rag_home
    index_with_badges(settings)
    store = services.object_store(settings)
    sync_object_store(store, lambda events: None)
    assert FILE_NAME.encode() in store.get(SYNC_STATE_KEY)

    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/query", json={"question": QUESTION})
        assert answer.status_code == 200 and PHRASE in answer.text
        assert files_holding(settings.cache_dir, PHRASE.encode())

        accepted = client.post("/v1/erasure-requests", json={"subject": SUBJECT})
        assert accepted.status_code == 202
        request = client.get(f"/v1/erasure-requests/{accepted.json()['request_id']}").json()
        assert request["status"] == "completed", request
        assert request["verification"]["bytes_on_disk"] and request["erased"]["bookmark_entries"]

        # While the API (and its connections to the cache) still runs.
        for needle in (PHRASE, SUBJECT, FILE_NAME):
            assert files_holding(settings.home, needle.encode()) == [], needle
        assert PHRASE not in client.post("/v1/query", json={"question": QUESTION}).text


def test_verification_reads_the_bytes_of_the_cache_and_the_bookmark(rag_home: Settings) -> None:
    """An entry the erasure did not delete, or a bookmark still naming the source, fails it
    even when no lookup by key would find them."""
    instance, doc_id = index_with_badges(rag_home)
    store = services.object_store(rag_home)
    done = forget(rag_home, instance, ErasureScope(doc_ids=[doc_id]))
    assert done.status == "completed" and done.verification["bytes_on_disk"]
    request = done.model_copy(update={"target": erasure.ErasureTarget(doc_ids=[doc_id])})
    assert erasure.residue(rag_home, store, [doc_id]) == []

    store.put(SYNC_STATE_KEY, f'{{"sources": {{"{BADGES}": {{}}}}}}'.encode())
    assert erasure.residue(rag_home, store, [BADGES]) == [SYNC_STATE_KEY]
    store.delete(SYNC_STATE_KEY)
    cache = build_response_cache(rag_home)
    cache.set("rag:query:left", f"cites {doc_id.upper()}")
    [left] = erasure.residue(rag_home, store, [doc_id])
    assert Path(left).parent == rag_home.cache_dir / "responses"
    checks = erasure.verify(rag_home, store, services.chunk_index(rag_home), cache, request)
    assert checks["bytes_on_disk"] is False


def test_a_hostile_source_key_in_a_manifest_is_never_deleted(rag_home: Settings) -> None:
    """A manifest written before keys were checked names `documents/../../outside/…`:
    the document's own artifacts are erased, the file outside the store is not touched."""
    store = services.object_store(rag_home)
    outside = rag_home.home / "outside" / "secret.txt"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(b"someone else's file")
    key = "documents/../../outside/secret.txt"
    manifest = DocumentVersion(
        doc_id=doc_id_for(store.uri_for(key)),
        version=version_for(outside.read_bytes()),
        source_key=key,
        source_uri=store.uri_for(key),
        size=outside.stat().st_size,
        discovered_at=datetime.now(UTC),
    )
    manifest_key = artifact_key(Artifact.MANIFEST, manifest.doc_id, manifest.version)
    store.put(manifest_key, manifest.model_dump_json().encode())

    request = forget(rag_home, local_instance(rag_home), ErasureScope(doc_ids=[manifest.doc_id]))

    assert request.status == "completed" and request.matched_documents == 1
    assert outside.read_bytes() == b"someone else's file"
    assert not store.exists(tombstone_key(content_hash(outside.read_bytes())))
    assert not store.exists(manifest_key)
