"""Query latency: retrieval, retrieval + rerank, full answer and cached answer, p50 and p95.

The index holds real chunks of the PostgreSQL reference pages (Debian's postgresql-doc-15),
repeated under distinct ids to reach the target size; it is built once under the cache folder
and reused. Queries are the fixed set in eval_sets/postgresql_sql_purpose.jsonl.

    python bench/query.py [--quick] [--chunks N] [--llm]

`--llm` also times streamed answers by the local model (started and stopped here) to 40
questions: time to first token and to the whole answer, as the profile writes them and with a
400-token context and 128-token answers.
Prints a table, then one JSON line with the figures.
"""

import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from harness import EVAL_SET, arguments, console, finish, ingest, postgresql_docs, table

from rag_core import services
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import assemble_local_model
from rag_core.adapters.processes import free_port
from rag_core.domain.chunk_store import chunk_schema
from rag_core.domain.schemas import QueryRequest
from rag_core.domain.stats import percentile
from rag_core.evaluation.labeled_sets import load_set
from rag_core.settings import Settings

LLM_QUESTIONS = 40
FAST_BUDGET, FAST_MAX_TOKENS = 400, 128


def _copy_id(value: str, copy: int) -> str:
    return hashlib.sha256(f"{value}:{copy}".encode()).hexdigest()[:32]


def build_index(home: Path, docs: Path, target_chunks: int) -> Settings:
    """Index the reference pages, then add copies of their rows under new ids up to the target."""
    settings = Settings(home=home)
    index = services.chunk_index(settings)
    if index.stats().chunks >= target_chunks:
        index.optimize()
        return settings
    if index.table_version() == 0:
        ingest(settings, sorted(docs.glob("sql-*.html")))
    original = [row for row in index.rows() if "#copy" not in row["source_uri"]]
    schema = chunk_schema(len(original[0]["vector"]))
    copy = index.row_count() // len(original)
    while index.row_count() < target_chunks:
        rows = [
            {
                **row,
                "chunk_id": _copy_id(row["chunk_id"], copy),
                "doc_id": _copy_id(row["doc_id"], copy),
                "source_uri": f"{row['source_uri']}#copy{copy}",
            }
            for row in original
        ]
        index.upsert(pa.Table.from_pylist(rows, schema=schema))
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
    return {
        "n": len(durations),
        "p50_ms": round(percentile(durations, 0.5), 2),
        "p95_ms": round(percentile(durations, 0.95), 2),
    }


def row(path: str, figures: dict[str, float]) -> tuple[str, ...]:
    """A table row; the first-token and token cells only for streamed model answers."""
    streamed = "ttft_p50_ms" in figures
    return (
        path,
        str(figures["n"]),
        f"{figures['p50_ms']:.1f}",
        f"{figures['p95_ms']:.1f}",
        f"{figures['ttft_p50_ms']:.1f}" if streamed else "",
        f"{figures['ttft_p95_ms']:.1f}" if streamed else "",
        f"{figures['prompt_tokens_mean']:.0f}/{figures['completion_tokens_mean']:.0f}"
        if streamed
        else "",
    )


def main() -> None:
    parser = arguments(__doc__, quick="10k chunks, 40 queries", cache=True)
    parser.add_argument("--chunks", type=int, help="index size (default 50,000)")
    parser.add_argument("--llm", action="store_true", help="also time answers by the local model")
    args = parser.parse_args()
    target = args.chunks or (10_000 if args.quick else 50_000)

    docs = postgresql_docs(args.cache / "postgresql-doc-15")
    settings = build_index(args.cache / f"query-index-{target}", docs, target)
    # A fresh response cache per run: answers cached by an earlier run would time the cache.
    settings = settings.model_copy(update={"cache_dir": Path(tempfile.mkdtemp(prefix="bench-"))})
    queries = [labeled.question for labeled in load_set(EVAL_SET)]
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
        results.update(time_local_model(settings, queries[:LLM_QUESTIONS]))

    console.print(
        table(
            f"query latency over {services.chunk_index(settings).stats().chunks:,} chunks",
            ("path", "queries", "p50 ms", "p95 ms", "first token p50", "p95", "tokens in/out"),
            [row(path, figures) for path, figures in results.items()],
            left={"path"},
        )
    )
    if reranker == "none":
        console.print("retrieval + rerank: not measured (no reranker configured)")
    finish("query", args.quick, {"chunks": target, "results": results})


def time_local_model(settings: Settings, purposes: list[str]) -> dict[str, Any]:
    """Streamed answers by the local model as the profile writes them, and with a context
    budget and a shorter answer (faster, at a measured cost in quality: docs/benchmarks.md),
    on the same server in the same run. Each question is a purpose of the reference pages
    asked as a question ("How do I abort the current transaction?"); a first one warms the
    server (its reading of the prompt's fixed start)."""
    questions = [f"How do I {purpose}?" for purpose in purposes]
    model = assemble_local_model(settings.home / "models")
    with LocalLLMServer(model, free_port()) as server:
        profile = settings.model_copy(update={"llm_base_url": server.base_url})
        budgeted = profile.model_copy(
            update={"context_budget_tokens": FAST_BUDGET, "llm_max_tokens": FAST_MAX_TOKENS}
        )
        streamed(profile, ["How do I warm up?"])
        return {
            f"answer ({describe(profile)})": streamed(profile, questions),
            f"answer ({describe(budgeted)})": streamed(budgeted, questions),
        }


def describe(settings: Settings) -> str:
    context = settings.context_budget_tokens
    passages = "whole passages" if context is None else f"{context}-token context"
    return f"{passages}, {settings.llm_max_tokens}-token answers"


def streamed(settings: Settings, questions: list[str]) -> dict[str, float]:
    """Time to first token and to the whole answer of each question, streamed through the
    query service (retrieval included), with the tokens each took."""
    service = services.query_service(settings)
    first, whole, responses = [], [], []
    for question in questions:
        started = time.perf_counter()
        first_after = None
        for item in service.stream(QueryRequest(question=question), use_cache=False):
            if isinstance(item, str):
                first_after = first_after or time.perf_counter() - started
            else:
                responses.append(item)
        whole.append((time.perf_counter() - started) * 1000)
        first.append((first_after or 0.0) * 1000)
    return {
        **summary(whole),
        "ttft_p50_ms": round(percentile(first, 0.5), 2),
        "ttft_p95_ms": round(percentile(first, 0.95), 2),
        "prompt_tokens_mean": statistics.mean(r.usage.prompt_tokens for r in responses),
        "completion_tokens_mean": statistics.mean(r.usage.completion_tokens for r in responses),
    }


if __name__ == "__main__":
    main()
