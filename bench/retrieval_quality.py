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

import html
import json
import math
import re
from pathlib import Path

from harness import (
    EVAL_SET,
    arguments,
    console,
    finish,
    ingest,
    postgresql_docs,
    table,
    temp_settings,
)

from rag_core import services
from rag_core.settings import Settings

PURPOSE = re.compile(r'class="refnamediv">.*?<p>(.*?)</p>', re.S)
NAME_BLOCK = re.compile(r'<div class="refnamediv">.*?</div>', re.S)
MODES = ["vector", "keyword", "hybrid"]
DEPTH = 10


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
    parser = arguments(__doc__, quick="40 pages, about a minute", cache=True)
    parser.add_argument("--docs", type=Path, help="postgresql-doc-15 html folder")
    args = parser.parse_args()

    folder = args.docs or postgresql_docs(args.cache / "postgresql-doc-15")
    pages = sorted(folder.glob("sql-*.html"))[: 40 if args.quick else None]
    queries = labeled_set(pages)
    EVAL_SET.parent.mkdir(exist_ok=True)
    EVAL_SET.write_text(
        "".join(json.dumps(q) + "\n" for q in labeled_set(sorted(folder.glob("sql-*.html"))))
    )

    with temp_settings("quality") as settings:
        ingest(settings, without_purpose_lines(pages, settings.home / "pages"))
        chunks = services.chunk_index(settings).stats().chunks
        results = {mode: evaluate(settings, queries, mode) for mode in MODES}
        reranker = services.retriever(settings).reranker.name
        if reranker != "none":
            results[f"hybrid+{reranker}"] = evaluate(settings, queries, "hybrid")

    console.print(
        table(
            f"retrieval quality: {len(queries)} queries over {len(pages)} pages, {chunks} chunks",
            ("mode", "recall@1", "recall@5", "mrr", "ndcg@10"),
            [
                (mode, *(f"{value:.3f}" for value in figures.values()))
                for mode, figures in results.items()
            ],
            left={"mode"},
        )
    )
    if reranker == "none":
        console.print("hybrid+rerank: not measured (no reranker configured; none installable here)")
    finish(
        "retrieval_quality",
        args.quick,
        {"queries": len(queries), "chunks": chunks, "results": results},
    )


if __name__ == "__main__":
    main()
