import os
import uuid
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from rag_core import services
from rag_core.cache import (
    ResponseCache,
    build_response_cache,
    cache_key,
    entries_naming,
    normalize_question,
)
from rag_core.schemas import QueryRequest
from rag_core.settings import Settings

from conftest import ingest

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("no Redis server on 127.0.0.1:6379")


def test_cache_keys_are_stable_and_sensitive() -> None:
    key = cache_key("query", question="q", top_k=5, filters=None)
    assert key == cache_key("query", filters=None, top_k=5, question="q")
    assert key != cache_key("query", question="q", top_k=6, filters=None)
    assert normalize_question("  Where IS\tthe  Car park? ") == "where is the car park?"


def test_replicas_share_answers_through_redis(rag_home: Settings, tmp_path: Path) -> None:
    _redis_or_skip()
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
        _redis_or_skip()
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
