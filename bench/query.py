"""Query latency: retrieval, retrieval + rerank, full answer and cached answer, p50 and p95.

The index holds real chunks of the PostgreSQL reference pages (Debian's postgresql-doc-15),
repeated under distinct ids to reach the target size; it is built once under the cache folder
and reused. Queries are the fixed set in eval_sets/postgresql_sql_purpose.jsonl.

    python bench/query.py [--quick] [--chunks N] [--llm]

`--llm` also times answers by the local model (started and stopped here). Prints a table, then
one JSON line with the figures.
"""

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import pyarrow as pa
from retrieval_quality import EVAL_SET, postgresql_docs
from rich.console import Console
from rich.table import Table

from rag_assets.ingest import ingest_sources, local_instance
from rag_core import services
from rag_core.domain.documents import add_sources
from rag_core.adapters.llm import LocalLLMServer, assemble_local_model
from rag_core.adapters.processes import free_port
from rag_core.domain.schemas import QueryRequest
from rag_core.settings import Settings


def _copy_id(value: str, copy: int) -> str:
    return hashlib.sha256(f"{value}:{copy}".encode()).hexdigest()[:32]


def build_index(home: Path, docs: Path, target_chunks: int) -> Settings:
    """Index the reference pages, then add copies of their rows under new ids up to the target."""
    settings = Settings(home=home)
    index = services.chunk_index(settings)
    if index.stats().chunks >= target_chunks:
        index.optimize()
        return settings
    if index.table() is None:
        pages = sorted(docs.glob("sql-*.html"))
        keys = add_sources(services.object_store(settings), pages)
        ingest_sources(settings, local_instance(settings), keys)
    table = index.table()
    original = table.search().where("NOT contains(source_uri, '#copy')").limit(None).to_arrow()
    original = original.drop_columns([c for c in original.column_names if c.startswith("_")])
    copy = table.count_rows() // original.num_rows
    while table.count_rows() < target_chunks:
        rows = original.to_pylist()
        for row in rows:
            row["chunk_id"] = _copy_id(row["chunk_id"], copy)
            row["doc_id"] = _copy_id(row["doc_id"], copy)
            row["source_uri"] = f"{row['source_uri']}#copy{copy}"
        table.add(pa.Table.from_pylist(rows, schema=table.schema))
        copy += 1
    index.optimize()  # what the index asset does after each write
    return settings


def timed(calls: list[Callable[[], object]]) -> list[float]:
    durations = []
    for call in calls:
        started = time.perf_counter()
        call()
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def summary(durations: list[float]) -> dict[str, float]:
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(p95, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k chunks, 40 queries")
    parser.add_argument("--chunks", type=int, help="index size (default 50,000)")
    parser.add_argument("--llm", action="store_true", help="also time answers by the local model")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rag-bench")
    args = parser.parse_args()
    target = args.chunks or (10_000 if args.quick else 50_000)

    docs = postgresql_docs(args.cache / "postgresql-doc-15")
    settings = build_index(args.cache / f"query-index-{target}", docs, target)
    # A fresh response cache per run: answers cached by an earlier run would time the cache.
    settings = settings.model_copy(update={"cache_dir": Path(tempfile.mkdtemp(prefix="bench-"))})
    queries = [json.loads(line)["query"] for line in EVAL_SET.read_text().splitlines()]
    queries = queries[:40] if args.quick else queries
    retriever = services.retriever(settings)
    service = services.query_service(settings)
    retriever.search("warm up", 5)

    results: dict[str, dict[str, float]] = {}
    retriever.embedder.embed_query.cache_clear()
    reranker = retriever.reranker.name
    retrieval = "retrieval (hybrid)" if reranker == "none" else f"retrieval + {reranker}"
    results[retrieval] = summary(timed([lambda q=q: retriever.search(q, 5) for q in queries]))
    answer_calls = [lambda q=q: service.query(QueryRequest(question=q)) for q in queries]
    results[f"answer ({service.answerer.name})"] = summary(timed(answer_calls))
    results["answer, cached"] = summary(timed(answer_calls))
    if args.llm:
        results.update(time_local_model(settings, queries[:10]))

    table = Table(
        title=f"query latency over {services.chunk_index(settings).stats().chunks:,} chunks"
    )
    for column in ("path", "queries", "p50 ms", "p95 ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for path, figures in results.items():
        table.add_row(
            path, str(figures["n"]), f"{figures['p50_ms']:.1f}", f"{figures['p95_ms']:.1f}"
        )
    Console().print(table)
    if reranker == "none":
        Console().print("retrieval + rerank: not measured (no reranker configured)")
    print(
        json.dumps(
            {"benchmark": "query", "quick": args.quick, "chunks": target, "results": results}
        )
    )


def time_local_model(settings: Settings, queries: list[str]) -> dict[str, dict[str, float]]:
    model = assemble_local_model(settings.home / "models")
    port = free_port()
    with LocalLLMServer(model, port) as server:
        local = settings.model_copy(update={"llm_base_url": server.base_url})
        service = services.query_service(local)
        responses = []
        durations = timed(
            [lambda q=q: responses.append(service.query(QueryRequest(question=q))) for q in queries]
        )
    figures = summary(durations)
    figures["prompt_tokens_mean"] = statistics.mean(r.usage.prompt_tokens for r in responses)
    figures["completion_tokens_mean"] = statistics.mean(
        r.usage.completion_tokens for r in responses
    )
    return {f"answer ({service.answerer.name})": figures}


if __name__ == "__main__":
    main()
