import os
from pathlib import Path

import pytest
import redis

from rag_core import services
from rag_core.cache import cache_key, normalize_question
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
    settings = rag_home.model_copy(update={"cache_url": REDIS_URL})
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
