"""Erasure: time from a right-to-be-forgotten request to its verified completion, on an index
of at least 50k chunks.

The index is bench/query.py's: the PostgreSQL reference pages (Debian's postgresql-doc-15),
ingested for real, then repeated under distinct ids to the target size; it is built once
under the cache folder and reused. Erasure changes what it touches, so every run works on a
copy of the whole folder (LanceDB index, object store, Dagster instance) in a temp folder.
The erased documents are real pages, with their source, manifests, artifacts and Dagster
partitions, not the id-only copies. Before timing, the response cache is filled with answers
built from those pages, so that erasure has cached answers to forget.

Each request erases one document by id, through the in-process executor
(`rag_assets.orchestration.execute`), and is timed from `submit` to the returned completed
request, verification and audit record included. Baseline in the same run, just before each request:
`ChunkIndex.purge_history` with nothing deleted (compaction, index upkeep, version cleanup).

    python bench/rtbf.py [--quick] [--requests N] [--chunks N]

Prints a table, then one JSON line with the figures.
"""

import shutil
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import EVAL_SET, arguments, console, finish, postgresql_docs, spread, table, temp_dir
from lancedb.table import LanceTable
from query import build_index

import rag_assets.erasure as erasure_job
from rag_assets.ingest import local_instance
from rag_assets.orchestration import execute
from rag_core import services
from rag_core.adapters import audit
from rag_core.adapters.catalog import known_versions
from rag_core.adapters.index import ChunkIndex
from rag_core.domain.chunk_store import DocumentSelector
from rag_core.domain.schemas import QueryRequest, SearchFilters
from rag_core.domain.stats import percentile
from rag_core.evaluation.labeled_sets import load_set
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureRequest, ErasureScope
from rag_core.settings import Settings

TARGET_P95_S = 30.0
# Steps timed inside a request, by wrapping the functions the executor calls; nested ones
# (delete and purge run inside the index stage) are subtracted from their parent below.
STEPS: list[tuple[Any, str, str]] = [
    (erasure, "resolve", "resolve"),
    (erasure, "distinctive_phrases", "phrases"),
    (erasure, "save", "save request"),
    (erasure.Eraser, "stage", "stage"),
    (ChunkIndex, "delete_documents", "index: delete rows"),
    (ChunkIndex, "purge_history", "index: purge history"),
    (LanceTable, "compact_files", "purge: compact"),
    (LanceTable, "optimize", "purge: optimize"),
    (erasure_job, "forget_partitions", "dagster partitions"),
    (erasure, "verify", "verify"),
    (audit, "append", "audit record"),
]


@contextmanager
def step_timer() -> Iterator[dict[str, float]]:
    """Seconds spent in each of STEPS (stages by name) while the block runs."""
    seconds: dict[str, float] = {}
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in STEPS]

    def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = f"stage: {args[1]}" if label == "stage" else label
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started

        return wrapper

    # Timing from this module would surface lancedb's deprecation notice of compact_files.
    warnings.filterwarnings("ignore", message="compact_files is deprecated")
    for (owner, name, label), (_, _, function) in zip(STEPS, originals, strict=True):
        setattr(owner, name, timed(function, label))
    try:
        yield seconds
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def breakdown(seconds: dict[str, float], total: float) -> dict[str, float]:
    """Non-overlapping steps of one request, in the order they run."""
    delete, purge = seconds.get("index: delete rows", 0.0), seconds.get("index: purge history", 0.0)
    compact, optimize = seconds.get("purge: compact", 0.0), seconds.get("purge: optimize", 0.0)
    other_stages = sum(
        v for k, v in seconds.items() if k.startswith("stage: ") and "index" not in k
    )
    steps = {
        "resolve": seconds.get("resolve", 0.0),
        "phrases": seconds.get("phrases", 0.0),
        "index: delete rows": delete,
        "index: purge: rewrite files with deleted rows": compact,
        "index: purge: index upkeep, drop old versions": optimize,
        "index: purge: rest (tags)": purge - compact - optimize,
        "index: chunk count, cache forget": seconds.get("stage: index", 0.0) - delete - purge,
        "object store (artifacts, sources, tombstones)": other_stages,
        "dagster partitions": seconds.get("dagster partitions", 0.0),
        "verify": seconds.get("verify", 0.0),
        "audit record": seconds.get("audit record", 0.0),
        "save request": seconds.get("save request", 0.0),
    }
    steps["other"] = total - sum(steps.values())
    return steps


def working_copy(cached: Path, workdir: Path) -> Settings:
    """The cached index folder copied into `workdir`, with an empty response cache."""
    home = workdir / "home"
    shutil.copytree(cached, home)
    settings = Settings(home=home)
    shutil.rmtree(settings.cache_dir, ignore_errors=True)
    return settings


def real_documents(settings: Settings, count: int) -> list[dict[str, str]]:
    """`count` ingested pages (not copies), spread over the fixed query set: doc_id, page and
    the page's purpose line as a question."""
    rows = services.chunk_index(settings).rows(columns=["doc_id", "source_uri"])
    by_page = {
        row["source_uri"].rsplit("/", 1)[1]: row["doc_id"]
        for row in rows
        if "#copy" not in row["source_uri"]
    }
    store = services.object_store(settings)
    items = [
        {"page": page, "question": question.question}
        for question in load_set(EVAL_SET)
        for page in question.sources
    ]
    items = [i for i in items if i["page"] in by_page and known_versions(store, by_page[i["page"]])]
    picked = [items[n * len(items) // count] for n in range(count)]
    return [{"doc_id": by_page[i["page"]], **i} for i in picked]


def warm_cache(settings: Settings, documents: list[dict[str, str]]) -> int:
    """Answer each page's question twice: restricted to the page (its answer is built from the
    page's chunks) and over the whole index. Returns the answers cached."""
    service = services.query_service(settings)
    service.retriever.search("warm up", 5)  # loads the embedding model, not timed anyway
    for document in documents:
        only = SearchFilters(doc_ids=[document["doc_id"]])
        service.query(QueryRequest(question=document["question"], filters=only))
        service.query(QueryRequest(question=document["question"]))
    return 2 * len(documents)


def erase(settings: Settings, instance: Any, doc_id: str) -> ErasureRequest:
    """One request, as `ragctl forget`, the REST API and the rtbf job carry it out."""
    scope = ErasureScope(doc_ids=[doc_id])
    request = erasure.submit(services.object_store(settings), scope, "bench@example.com")
    return execute(settings, instance, request.request_id)


def check(settings: Settings, request: ErasureRequest, doc_id: str) -> None:
    """The request erased a real document, its rows and its cached answers (not timed)."""
    index = services.chunk_index(settings)
    assert request.status == "completed" and all(request.verification.values()), request
    assert request.matched_documents == 1, request
    assert request.erased.get("index_rows", 0) >= 1, request.erased
    assert request.erased.get("objects:manifests", 0) >= 1, request.erased
    assert request.erased.get("cached_answers", 0) >= 1, request.erased
    assert not index.documents_matching(DocumentSelector(doc_ids=(doc_id,)))
    assert not index.versions_holding([doc_id])


def run(cached: Path, workdir: Path, count: int) -> dict[str, Any]:
    settings = working_copy(cached, workdir)
    instance = local_instance(settings)
    index = ChunkIndex(settings)  # the backend measured, storage report included
    chunks_before = index.row_count()
    history_versions = len(index.storage().versions)
    documents = real_documents(settings, count)
    warmed = warm_cache(settings, documents)

    # The build left table versions behind (as any index does for a week by default); the
    # first purge drops them. Timed on its own so the requests below are alike.
    started = time.perf_counter()
    index.purge_history(untag=False)
    first_purge_s = time.perf_counter() - started

    totals, baselines, requests, steps = [], [], [], []
    for document in documents:
        started = time.perf_counter()
        index.purge_history(untag=False)
        baselines.append(time.perf_counter() - started)
        with step_timer() as seconds:
            started = time.perf_counter()
            request = erase(settings, instance, document["doc_id"])
            totals.append(time.perf_counter() - started)
        check(settings, request, document["doc_id"])
        requests.append(request)
        steps.append(breakdown(seconds, totals[-1]))
    after = index.storage()
    return {
        "chunks": chunks_before,
        "chunks_after": index.row_count(),
        "fragments_after": after.fragments,
        "unindexed_after": after.unindexed_rows,
        "history_versions": history_versions,
        "first_purge_s": first_purge_s,
        "warmed_answers": warmed,
        "documents": documents,
        "totals": totals,
        "baselines": baselines,
        "chunks_erased": [r.erased.get("index_rows", 0) for r in requests],
        "answers_forgotten": [r.erased.get("cached_answers", 0) for r in requests],
        "objects_erased": [
            sum(v for k, v in r.erased.items() if k.startswith("objects:")) for r in requests
        ],
        "steps": steps,
    }


def main() -> None:
    parser = arguments(__doc__, quick="10k chunks, 3 requests", cache=True)
    parser.add_argument("--requests", type=int, help="erasure requests (default 10, quick 3)")
    parser.add_argument("--chunks", type=int, help="index size (default 50,000, quick 10,000)")
    args = parser.parse_args()
    target = args.chunks or (10_000 if args.quick else 50_000)
    count = args.requests or (3 if args.quick else 10)

    docs = postgresql_docs(args.cache / "postgresql-doc-15")
    cached = build_index(args.cache / f"query-index-{target}", docs, target).home
    with temp_dir("rtbf") as workdir:
        result = run(cached, workdir, count)

    totals: list[float] = result["totals"]
    baselines: list[float] = result["baselines"]
    chunks_erased: list[int] = result["chunks_erased"]
    title = f"erasure, request → verified, seconds, over {result['chunks']:,} chunks"
    rows = [
        ("request, 1 document", *spread(totals, 2), str(len(totals)), str(sum(chunks_erased))),
        ("baseline: empty purge", *spread(baselines, 2), "0", "0"),
    ]
    console.print(
        table(
            f"{title} ({'quick' if args.quick else 'full'})",
            ("path", "n", "p50", "p95", "max", "documents", "chunks erased"),
            rows,
            left={"path"},
        )
    )

    steps: list[dict[str, float]] = result["steps"]
    means = {name: statistics.mean(s[name] for s in steps) for name in steps[0]}
    mean_total = statistics.mean(totals)
    console.print(
        table(
            "where a request's time goes (mean seconds)",
            ("step", "s", "share"),
            [(name, f"{value:.3f}", f"{value / mean_total:.0%}") for name, value in means.items()],
            left={"step"},
        )
    )
    ratios = [t / b for t, b in zip(totals, baselines, strict=True)]
    console.print(
        f"request / baseline purge (same run, paired): median {statistics.median(ratios):.1f}x; "
        f"first purge of the build's {result['history_versions']} table versions: "
        f"{result['first_purge_s']:.2f} s (not in the requests)"
    )
    console.print(
        f"per request: {statistics.mean(chunks_erased):.1f} chunks, "
        f"{statistics.mean(result['objects_erased']):.1f} objects, "
        f"{statistics.mean(result['answers_forgotten']):.1f} cached answers forgotten "
        f"(of {result['warmed_answers']} warmed); index after: {result['chunks_after']:,} "
        f"chunks in {result['fragments_after']} fragment(s), rows outside each index: "
        f"{result['unindexed_after']}"
    )
    finish(
        "rtbf",
        args.quick,
        {
            "p50_s": round(percentile(totals, 0.5), 3),
            "p95_s": round(percentile(totals, 0.95), 3),
            "max_s": round(max(totals), 3),
            "chunks": result["chunks"],
            "requests": len(totals),
            "documents_erased": len(totals),
            "chunks_erased": sum(chunks_erased),
            "cached_answers_forgotten": sum(result["answers_forgotten"]),
            "baseline_purge_p50_s": round(percentile(baselines, 0.5), 3),
            "request_over_baseline_median": round(statistics.median(ratios), 2),
            "first_purge_s": round(result["first_purge_s"], 3),
            "step_means_s": {name: round(value, 3) for name, value in means.items()},
            "target_p95_s": TARGET_P95_S,
        },
    )


if __name__ == "__main__":
    main()
