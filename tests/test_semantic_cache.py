"""The semantic cache: off by default; on, a reworded question is served the cached answer,
marked `cache_hit: "semantic"`, but only under the same access groups, filters and index
version; an answer forgotten by erasure is never served from it, on disk and on Redis."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import redis
from pydantic import SecretStr

from rag_assets.ingest import ingest_sources, local_instance
from rag_assets.orchestration import execute
from rag_core import services
from rag_core.adapters.cache import DiskResponseCache, build_cache_store, entries_naming
from rag_core.adapters.catalog import put_source
from rag_core.adapters.semantic_cache import BUCKET_QUESTIONS, SemanticCache
from rag_core.domain.documents import SourceMetadata
from rag_core.domain.schemas import Citation, QueryRequest, QueryResponse, SearchFilters
from rag_core.evaluation.labeled_sets import load_set
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureScope
from rag_core.flows.querying import QueryService
from rag_core.settings import Settings

from conftest import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parents[1]
HARBOUR = "documents/harbour.md"
HARBOUR_TEXT = (
    b"# Harbour gate\n\nThe harbour gate code is 4417. It changes every Monday, and staff "
    b"collect the new code from the quay office before the morning shift.\n"
)
FERRY = "documents/ferry.md"
FERRY_TEXT = (
    b"# Ferry timetable\n\nThe first ferry to the island leaves the pier at 06:40 on "
    b"weekdays and at 08:15 on Sundays; the last one returns at 22:10.\n"
)
QUESTION = "What is the code of the harbour gate?"
REWORDED = "What's the harbour gate's code?"
ALSO_REWORDED = "Tell me the harbour gate code."
NEAR_MISS = "When does the harbour gate code change?"
# A database of this module's own, emptied before each test: the copies of the index share
# their document and chunk ids, so one test's entries would be filed beside another's.
SEMANTIC_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/11"
STAFF, GUESTS = frozenset({"staff"}), frozenset({"guests"})


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The harbour page (staff only) and the ferry timetable (everyone), indexed once."""
    settings = Settings(home=tmp_path_factory.mktemp("semantic") / "rag")
    store = services.object_store(settings)
    put_source(store, HARBOUR, HARBOUR_TEXT, SourceMetadata(acl=["staff"]))
    put_source(store, FERRY, FERRY_TEXT)
    ingest_sources(settings, local_instance(settings))
    return settings


@pytest.fixture(params=["diskcache", "redis"])
def settings(indexed: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """A copy of the index of its own (a test may change it) with the semantic cache on, on
    disk or on Redis."""
    home = tmp_path / "rag"
    shutil.copytree(indexed.home, home, ignore=shutil.ignore_patterns("cache"))
    update: dict[str, object] = {"semantic_cache": True}
    if request.param == "redis":
        require_redis()
        redis.Redis.from_url(SEMANTIC_REDIS_URL).flushdb()
        update["cache_url"] = SecretStr(SEMANTIC_REDIS_URL)
    return Settings(home=home).model_copy(update=update)


def ask(
    service: QueryService,
    question: str,
    groups: frozenset[str] | None = STAFF,
    filters: SearchFilters | None = None,
) -> QueryResponse:
    return service.query(QueryRequest(question=question, filters=filters), groups)


def cited(response: QueryResponse, title: str) -> Citation:
    return next(citation for citation in response.citations if citation.title == title)


def similarity(settings: Settings, first: str, second: str) -> float:
    embedder = services.embedder(settings)
    return float(embedder.embed_query(first) @ embedder.embed_query(second))


def test_the_rewording_is_close_enough_and_the_threshold_is_above_near_misses(
    indexed: Settings,
) -> None:
    """The premise of the tests below, on the platform's embedder and default threshold."""
    threshold = indexed.semantic_cache_similarity
    assert similarity(indexed, QUESTION, REWORDED) >= threshold
    assert similarity(indexed, QUESTION, ALSO_REWORDED) >= threshold
    assert similarity(indexed, QUESTION, NEAR_MISS) < threshold


def test_off_by_default(indexed: Settings, tmp_path: Path) -> None:
    settings = indexed.model_copy(update={"cache_dir": tmp_path / "cache"})
    assert not Settings().semantic_cache
    service = services.query_service(settings)
    assert service.semantic is None
    first = ask(service, QUESTION)
    assert (first.cached, first.cache_hit) == (False, None) and "4417" in first.answer
    assert ask(service, REWORDED).cached is False
    again = ask(service, QUESTION)
    assert (again.cached, again.cache_hit) == (True, "exact")


def test_a_reworded_question_is_served_the_cached_answer(settings: Settings) -> None:
    service = services.query_service(settings)
    first = ask(service, QUESTION)
    assert (first.cached, first.cache_hit) == (False, None) and "4417" in first.answer

    reworded = ask(service, REWORDED)
    assert (reworded.cached, reworded.cache_hit) == (True, "semantic")
    assert reworded.answer == first.answer and reworded.citations == first.citations
    assert ask(service, QUESTION).cache_hit == "exact"
    streamed = list(service.stream(QueryRequest(question=ALSO_REWORDED), STAFF))
    assert isinstance(done := streamed[-1], QueryResponse) and done.cache_hit == "semantic"
    # Another replica (a service of its own on the same store) is served it too.
    assert ask(services.query_service(settings), REWORDED).cache_hit == "semantic"

    assert not ask(service, NEAR_MISS).cached
    unrelated = ask(service, "When does the first ferry leave the pier?")
    assert not unrelated.cached and "06:40" in unrelated.answer


def test_another_groups_question_never_hits(settings: Settings) -> None:
    service = services.query_service(settings)
    assert "4417" in ask(service, QUESTION, STAFF).answer

    guest = ask(service, REWORDED, GUESTS)
    assert not guest.cached and "4417" not in guest.answer
    # The guests' bucket holds their own answer only: the staff's is never in it.
    again = ask(service, QUESTION, GUESTS)
    assert again.cache_hit == "semantic" and again.answer == guest.answer
    assert ask(service, REWORDED, STAFF).cache_hit == "semantic"


def test_other_filters_miss(settings: Settings) -> None:
    service = services.query_service(settings)
    source = cited(ask(service, QUESTION), "Harbour gate").source_uri
    filtered = ask(service, REWORDED, filters=SearchFilters(source_prefix=source))
    assert not filtered.cached and "4417" in filtered.answer  # the same page, asked otherwise
    assert ask(service, REWORDED).cache_hit == "semantic"


def test_an_index_change_misses(settings: Settings) -> None:
    settings = settings.model_copy(update={"index_version_ttl_seconds": 0.0})
    service = services.query_service(settings)
    ask(service, QUESTION)
    ferry = cited(ask(service, "When does the first ferry leave the pier?"), "Ferry timetable")
    services.chunk_index(settings).delete_documents([ferry.doc_id])

    after = ask(service, REWORDED)
    assert not after.cached and "4417" in after.answer


def test_forgetting_the_chunks_removes_the_semantic_entries(settings: Settings) -> None:
    """What erasure does to the cache: `forget` the erased chunks, then delete the entries
    naming the erased documents. Neither the answer nor the bucket pointing at it is left,
    and the reworded question is answered afresh."""
    service = services.query_service(settings)
    first = ask(service, QUESTION)
    chunk_ids = [citation.chunk_id for citation in first.citations]
    doc_ids = {citation.doc_id for citation in first.citations}
    assert ask(service, REWORDED).cache_hit == "semantic"
    store = build_cache_store(settings)
    named = entries_naming(store, doc_ids)
    assert {key.split(":")[1] for key in named} == {"query", "semantic"}

    assert store.forget(chunk_ids) == 2
    assert store.referencing(chunk_ids) == 0 and entries_naming(store, doc_ids) == []
    assert not ask(service, REWORDED).cached


def test_a_bucket_never_serves_an_answer_deleted_without_it(settings: Settings) -> None:
    """An answer deleted alone (found by the subject's name, say) leaves its bucket pointing
    at nothing: the reworded question misses rather than being served anything else."""
    service = services.query_service(settings)
    ask(service, QUESTION)
    store = build_cache_store(settings)
    [answer_key] = [key for key, _ in store.entries() if key.startswith("rag:query:")]
    assert store.delete([answer_key]) == 1
    assert [key for key, _ in store.entries() if key.startswith("rag:semantic:")]

    reworded = ask(service, REWORDED)
    assert not reworded.cached and "4417" in reworded.answer


def unit(*components: float) -> np.ndarray:
    vector = np.zeros(384, dtype=np.float32)
    vector[: len(components)] = components
    return vector / np.linalg.norm(vector)


def test_the_most_similar_live_answer_is_served(tmp_path: Path) -> None:
    """Ranked by similarity; an answer no longer cached is passed over for the next; below
    the threshold nothing is; a bucket keeps its latest questions."""
    store = DiskResponseCache(Settings(home=tmp_path / "rag"))
    cache = SemanticCache(store, similarity=0.9, ttl_seconds=60)
    for name, vector in {"close": unit(1, 0.2), "closest": unit(1, 0.1), "far": unit(0, 1)}.items():
        store.set(f"rag:query:{name}", name)
        cache.remember("rag:semantic:b", vector, f"rag:query:{name}", [])

    assert cache.find("rag:semantic:b", unit(1, 0.05)) == "closest"
    store.delete(["rag:query:closest"])
    assert cache.find("rag:semantic:b", unit(1, 0.05)) == "close"
    assert cache.find("rag:semantic:b", unit(1, 1)) is None  # 0.83 from `close`, 0.71 from `far`
    assert cache.find("rag:semantic:other", unit(1, 0.2)) is None

    for number in range(BUCKET_QUESTIONS):
        cache.remember("rag:semantic:b", unit(0, 0, 1), f"rag:query:{number}", [])
    bucket = json.loads(store.get("rag:semantic:b") or "{}")["questions"]
    assert len(bucket) == BUCKET_QUESTIONS and bucket[0]["key"] == "rag:query:0"


def test_expired_questions_are_not_served(tmp_path: Path) -> None:
    store = DiskResponseCache(Settings(home=tmp_path / "rag"))
    store.set("rag:query:a", "answer")
    SemanticCache(store, 0.9, ttl_seconds=-1).remember("rag:semantic:b", unit(1), "rag:query:a", [])
    assert SemanticCache(store, 0.9, ttl_seconds=60).find("rag:semantic:b", unit(1)) is None


def test_the_paraphrase_pairs_are_built_from_the_labeled_questions() -> None:
    """The benchmark's input: ≥ 30 rewordings and ≥ 20 near misses of labeled questions."""
    labeled = {
        question.question for question in load_set(ROOT / "eval_sets/sample_corpus_qa.jsonl")
    }
    lines = (ROOT / "eval_sets/paraphrases/sample_corpus_qa.jsonl").read_text().splitlines()
    pairs = [json.loads(line) for line in lines if line.strip()]
    assert all(set(pair) == {"id", "question", "paraphrase", "same_answer"} for pair in pairs)
    assert len({pair["id"] for pair in pairs}) == len(pairs)
    assert all(pair["question"] in labeled and pair["paraphrase"] not in labeled for pair in pairs)
    assert sum(pair["same_answer"] for pair in pairs) >= 30
    assert sum(not pair["same_answer"] for pair in pairs) >= 20


@pytest.mark.slow
def test_erasure_removes_semantically_cached_answers(settings: Settings) -> None:
    """A full erasure of the harbour page with its answer cached and reworded: the answer
    and its bucket are erased (counted), verification holds (no byte of either left in the
    cache files), and the reworded question no longer finds it."""
    service = services.query_service(settings)
    first = ask(service, QUESTION)
    assert ask(service, REWORDED).cache_hit == "semantic"
    doc_id = cited(first, "Harbour gate").doc_id

    request = erasure.submit(
        services.object_store(settings), ErasureScope(doc_ids=[doc_id]), "dpo@example.com"
    )
    done = execute(settings, local_instance(settings), request.request_id)

    assert done.status == "completed" and all(done.verification.values()), done.verification
    assert done.erased["cached_answers"] == 2  # the answer and its bucket
    assert entries_naming(build_cache_store(settings), [doc_id]) == []
    after = ask(services.query_service(settings), REWORDED)
    assert not after.cached and "4417" not in after.answer
