import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from rag_core import services
from rag_core.adapters.cache import (
    DiskResponseCache,
    ResponseCache,
    build_response_cache,
    cache_key,
    entries_naming,
    normalize_question,
)
from rag_core.domain.schemas import QueryRequest
from rag_core.settings import Settings

from conftest import REDIS_URL, ingest, require_redis


def test_cache_keys_are_stable_and_sensitive() -> None:
    key = cache_key("query", question="q", top_k=5, filters=None)
    assert key == cache_key("query", filters=None, top_k=5, question="q")
    assert key != cache_key("query", question="q", top_k=6, filters=None)
    assert normalize_question("  Where IS\tthe  Car park? ") == "where is the car park?"


def test_replicas_share_answers_through_redis(rag_home: Settings, tmp_path: Path) -> None:
    require_redis()
    (tmp_path / "lab.md").write_text("# Lab\n\nThe laboratory is open to staff on weekdays only.\n")
    settings = rag_home.model_copy(update={"cache_url": SecretStr(REDIS_URL)})
    ingest(settings, tmp_path / "lab.md")
    request = QueryRequest(question="When is the laboratory open?")

    first_replica, second_replica = (
        services.query_service(settings),
        services.query_service(settings),
    )
    first = first_replica.query(request)
    shared = second_replica.query(request)

    assert (first.cached, shared.cached) == (False, True)
    assert shared.answer == first.answer and "weekdays" in first.answer


@pytest.fixture(params=["diskcache", "redis"])
def response_cache(rag_home: Settings, request: pytest.FixtureRequest) -> ResponseCache:
    settings = rag_home
    if request.param == "redis":
        require_redis()
        settings = rag_home.model_copy(update={"cache_url": SecretStr(REDIS_URL)})
    return build_response_cache(settings)


def test_forgetting_chunks_deletes_every_answer_built_from_them(
    response_cache: ResponseCache,
) -> None:
    cache = response_cache
    run = uuid.uuid4().hex
    first, second, other = (f"{run}:{name}" for name in ("first", "second", "other"))
    cache.set(first, "quotes chunk 1 and 2", [f"{run}-1", f"{run}-2"])
    cache.set(second, "quotes chunk 2", [f"{run}-2"])
    cache.set(other, "quotes chunk 3", [f"{run}-3"])

    assert cache.referencing([f"{run}-2"]) == 2
    assert cache.forget([f"{run}-2"]) == 2
    assert cache.get(first) is None and cache.get(second) is None
    assert cache.get(other) == "quotes chunk 3"
    assert cache.referencing([f"{run}-1", f"{run}-2"]) == 0
    assert cache.forget([f"{run}-2"]) == 0  # forgetting again finds nothing


def test_entries_citing_a_document_are_found_by_reading_them(
    response_cache: ResponseCache,
) -> None:
    cache = response_cache
    run = uuid.uuid4().hex
    citing = f"rag:query:{run}:citing"
    cache.set(citing, f'{{"citations": [{{"doc_id": "{run}-doc", "chunk_id": "c"}}]}}')
    cache.set(f"rag:query:{run}:other", '{"citations": []}', [f"{run}-doc"])

    assert entries_naming(cache, [f"{run}-doc"]) == [citing]  # the filing is not read
    assert cache.delete([citing]) == 1 and entries_naming(cache, [f"{run}-doc"]) == []


def _bytes_written() -> int:
    """Bytes this process has handed to write(2) so far (Linux's per-process I/O counters)."""
    counters = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(counters["wchar"])


def test_filing_an_answer_costs_the_same_however_many_answers_cite_its_chunk(
    rag_home: Settings,
) -> None:
    """Every answer cites the same chunk; storing one more must not rewrite the others'
    filing (it did: a list per chunk, rewritten whole, so writes grew with the answers)."""
    cache = DiskResponseCache(rag_home)
    stored = 0

    def store_one() -> None:
        nonlocal stored
        cache.set(cache_key("query", number=stored), "an answer", ["chunk-1", f"chunk-{stored}"])
        stored += 1

    def written_per_set(total: int, measured: int = 25) -> float:
        while stored < total - measured:
            store_one()
        before = _bytes_written()
        for _ in range(measured):
            store_one()
        return (_bytes_written() - before) / measured

    at_100, at_2000 = written_per_set(100), written_per_set(2000)

    assert at_2000 < 2 * at_100, (at_100, at_2000)
    assert cache.referencing(["chunk-1"]) == 2000
    assert cache.forget(["chunk-1"]) == 2000 and cache.referencing(["chunk-1", "chunk-7"]) == 0


def test_forgotten_answers_leave_no_byte_in_the_cache_files(rag_home: Settings) -> None:
    """Not in the database's pages nor in its write-ahead log (`cache.db-wal`)."""
    cache = build_response_cache(rag_home)
    for number in range(50):
        cache.set(f"rag:query:{number}", f"answer {number} about the amber ledger", [f"c{number}"])
    cache.set("rag:query:kept", "the teal ledger stays", ["kept"])
    cache.set("rag:query:flushed", "the umber ledger goes", [])
    folder = rag_home.cache_dir / "responses"
    assert any(b"amber ledger" in path.read_bytes() for path in folder.rglob("*.db*"))

    assert cache.forget([f"c{number}" for number in range(50)]) == 50
    assert cache.delete(["rag:query:flushed"]) == 1

    files = [path for path in folder.rglob("*") if path.is_file()]
    assert not [path.name for path in files if b"amber ledger" in path.read_bytes()]
    assert not [path.name for path in files if b"umber ledger" in path.read_bytes()]
    assert any(b"teal ledger" in path.read_bytes() for path in files)
    assert cache.get("rag:query:kept") == "the teal ledger stays"
