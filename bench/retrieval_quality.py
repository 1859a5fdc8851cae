"""Retrieval quality of dense, keyword and hybrid search (and hybrid + rerank when a reranker
is configured) on a labeled set derived from real documents.

The set: every PostgreSQL reference page `sql-*.html` (Debian's postgresql-doc-15) states its
purpose in one line ("VACUUM — garbage-collect and optionally analyze a database"); the purpose,
without the command name, is the query and that page is the only relevant document. The line is
removed from the indexed copy of the page, so no query is a verbatim quote of its answer. The
set is written to eval_sets/postgresql_sql_purpose.jsonl.

    python bench/retrieval_quality.py [--quick] [--docs DIR]

Prints a table, then one JSON line with the figures.
"""

import argparse
import html
import json
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

from rich.console import Console
from rich.table import Table

from rag_assets.ingest import ingest_sources, local_instance
from rag_core import services
from rag_core.domain.documents import add_sources
from rag_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EVAL_SET = ROOT / "eval_sets" / "postgresql_sql_purpose.jsonl"
PURPOSE = re.compile(r'class="refnamediv">.*?<p>(.*?)</p>', re.S)
NAME_BLOCK = re.compile(r'<div class="refnamediv">.*?</div>', re.S)
MODES = ["vector", "keyword", "hybrid"]
DEPTH = 10


def postgresql_docs(cache: Path) -> Path:
    """The HTML folder of Debian's postgresql-doc-15, fetched once with apt-get download."""
    folder = cache / "usr/share/doc/postgresql-doc-15/html"
    if not folder.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "postgresql-doc-15"], cwd=cache, check=True)
        [deb] = cache.glob("postgresql-doc-15_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    return folder


def labeled_set(pages: list[Path]) -> list[dict[str, str]]:
    queries = []
    for page in pages:
        match = PURPOSE.search(page.read_text(errors="replace"))
        if match:
            line = html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))
            purpose = line.split("—", 1)[-1].strip()
            queries.append({"query": purpose, "gold": page.name})
    return queries


def without_purpose_lines(pages: list[Path], target: Path) -> list[Path]:
    target.mkdir()
    for page in pages:
        (target / page.name).write_text(NAME_BLOCK.sub("", page.read_text(errors="replace")))
    return [target / page.name for page in pages]


def scores(ranked_docs: list[str], gold: str) -> dict[str, float]:
    rank = ranked_docs.index(gold) + 1 if gold in ranked_docs else None
    return {
        "recall@1": float(rank == 1),
        "recall@5": float(rank is not None and rank <= 5),
        "mrr": 1.0 / rank if rank else 0.0,
        "ndcg@10": 1.0 / math.log2(rank + 1) if rank and rank <= DEPTH else 0.0,
    }


def evaluate(settings: Settings, queries: list[dict[str, str]], mode: str) -> dict[str, float]:
    retriever = services.retriever(settings)
    totals: dict[str, float] = {}
    for item in queries:
        hits = retriever.search(item["query"], 40, mode=mode)  # type: ignore[arg-type]
        docs = list(dict.fromkeys(hit.source_uri.rsplit("/", 1)[1] for hit in hits))[:DEPTH]
        for name, value in scores(docs, item["gold"]).items():
            totals[name] = totals.get(name, 0.0) + value
    return {name: round(value / len(queries), 3) for name, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 pages, about a minute")
    parser.add_argument("--docs", type=Path, help="postgresql-doc-15 html folder")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rag-bench")
    args = parser.parse_args()

    folder = args.docs or postgresql_docs(args.cache / "postgresql-doc-15")
    pages = sorted(folder.glob("sql-*.html"))[: 40 if args.quick else None]
    queries = labeled_set(pages)
    EVAL_SET.parent.mkdir(exist_ok=True)
    EVAL_SET.write_text(
        "".join(json.dumps(q) + "\n" for q in labeled_set(sorted(folder.glob("sql-*.html"))))
    )

    with tempfile.TemporaryDirectory(prefix="bench-quality-") as home:
        settings = Settings(home=Path(home))
        corpus = without_purpose_lines(pages, Path(home) / "pages")
        keys = add_sources(services.object_store(settings), corpus)
        ingest_sources(settings, local_instance(settings), keys)
        chunks = services.chunk_index(settings).stats().chunks
        results = {mode: evaluate(settings, queries, mode) for mode in MODES}
        reranker = services.retriever(settings).reranker.name
        if reranker != "none":
            results[f"hybrid+{reranker}"] = evaluate(settings, queries, "hybrid")

    table = Table(
        title=f"retrieval quality: {len(queries)} queries over {len(pages)} pages, {chunks} chunks"
    )
    table.add_column("mode")
    for metric in ("recall@1", "recall@5", "mrr", "ndcg@10"):
        table.add_column(metric, justify="right")
    for mode, figures in results.items():
        table.add_row(mode, *(f"{value:.3f}" for value in figures.values()))
    Console().print(table)
    if reranker == "none":
        Console().print(
            "hybrid+rerank: not measured (no reranker configured; none installable here)"
        )
    figures = {"queries": len(queries), "chunks": chunks, "results": results}
    print(json.dumps({"benchmark": "retrieval_quality", "quick": args.quick, **figures}))


if __name__ == "__main__":
    main()
