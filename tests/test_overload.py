"""What keeps one API process cheap under load: a cache hit opens no table, the extractive
answerer makes one bounded model call per answer, the model runs one inference at a time, and
`ragctl serve --workers N` gives each worker its share of the cores."""

import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from rag_core import services
from rag_core.adapters.answering import MAX_CANDIDATES, ExtractiveAnswerer
from rag_core.adapters.embedding import Embedder
from rag_core.adapters.index import ChunkIndex
from rag_core.domain.chunk_store import ChunkStore, chunk_schema
from rag_core.domain.schemas import Hit, QueryRequest
from rag_core.settings import Settings
from rag_serving.cli import app

from conftest import ingest


def test_a_cache_hit_does_not_open_the_table(
    sample_index: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A TTL longer than the first (model-loading) query; the default is 1 s.
    settings = sample_index.model_copy(
        update={"cache_dir": tmp_path / "cache", "index_version_ttl_seconds": 60}
    )
    service = services.query_service(settings)
    request = QueryRequest(question="What does VACUUM FULL do?")
    assert service.query(request).cached is False
    opened = []
    original = ChunkIndex._table
    monkeypatch.setattr(ChunkIndex, "_table", lambda index: opened.append(1) or original(index))
    assert service.query(request).cached is True
    assert opened == []


def _add_a_row(index: ChunkStore) -> None:
    """A new table version, the cheap way: one existing row again under a new id."""
    row = index.rows()[0]
    row["chunk_id"] = "another-" + row["chunk_id"]
    index.upsert(pa.Table.from_pylist([row], schema=chunk_schema(len(row["vector"]))))


def test_the_version_in_cache_keys_is_at_most_its_ttl_old(
    rag_home: Settings, tmp_path: Path
) -> None:
    (tmp_path / "a.md").write_text("# Parking\n\nVisitors park on level two of the garage.\n")
    ingest(rag_home, tmp_path / "a.md")
    index = services.chunk_index(rag_home)
    before = index.recent_version(max_age=0.5)
    _add_a_row(index)
    assert index.recent_version(max_age=0.5) == before  # read less than 0.5 s ago
    time.sleep(0.5)
    assert index.recent_version(max_age=0.5) == index.table_version() > before


class CountingEmbedder:
    """The real model, with every call and its size recorded."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.calls: list[int] = []

    def embed(self, texts: list[str]) -> Any:
        self.calls.append(len(texts))
        return self.embedder.embed(texts)

    def embed_query(self, text: str) -> Any:
        self.calls.append(1)
        return self.embedder._embed_one(text)  # as if not cached yet


def _hit(n: int, text: str) -> Hit:
    return Hit(chunk_id=f"c{n}", doc_id=f"d{n}", version="v", source_uri=f"file:///{n}.md",
               title=f"Doc {n}", section="", page=None, score=1.0 / (n + 1), vector_score=0.5,
               keyword_score=None, text=text)  # fmt: skip


def test_the_extractive_answerer_makes_one_bounded_model_call_per_answer(
    sample_index: Settings,
) -> None:
    embedder = CountingEmbedder(services.embedder(sample_index))
    answerer = ExtractiveAnswerer(embedder)  # type: ignore[arg-type]
    long_text = " ".join(f"Sentence number {i} is about the harbour cranes." for i in range(40))
    hits = [_hit(n, long_text) for n in range(5)]  # 200 sentences
    generation = answerer.generate("What are the harbour cranes about?", hits)
    assert "[1]" in generation.answer
    assert embedder.calls == [MAX_CANDIDATES + 1]  # the question and the first 64 sentences


def test_the_model_runs_one_inference_at_a_time(sample_index: Settings) -> None:
    embedder = services.embedder(sample_index)
    running, most = 0, 0
    lock = threading.Lock()
    encode = embedder._model.encode

    def slow_encode(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        try:
            return encode(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    embedder._model.encode = slow_encode  # type: ignore[method-assign]
    try:
        threads = [threading.Thread(target=embedder.embed, args=([f"text {n}"],)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        del embedder._model.encode
    assert most == 1


def test_serve_runs_workers_each_with_its_share_of_the_cores(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setenv("RAG_INFERENCE_THREADS", "unset below; restored after the test")
    monkeypatch.delenv("RAG_INFERENCE_THREADS")
    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: started.update(options))
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert started["workers"] == 2 and started["factory"] is True
    assert os.environ["RAG_INFERENCE_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
