"""Evaluation sweep: the harness's headline metrics for a small grid of chunking, fusion,
candidate, context-size and reranker settings, on two labeled sets, against today's defaults.

- `sample`: eval_sets/sample_corpus_qa.jsonl over `sample_corpus/` and the sample warehouse's
  ticket documents, answered in this process by the extractive answerer (deterministic, no
  model server): recall@1, recall@5, MRR@10, nDCG@10, context recall, fact recall, abstention
  accuracy, as `ragctl eval run` scores them (`rag_core.evaluation.runner.evaluate`).
- `postgresql`: eval_sets/postgresql_sql_purpose.jsonl over the PostgreSQL reference pages with
  their purpose lines removed, as bench/retrieval_quality.py indexes them: retrieval metrics
  only, by the same definitions (`rag_core.evaluation.metrics`).

    python bench/eval_sweep.py [--quick] [--postgresql-docs DIR]

Each chunking (size, overlap) is indexed once per set in a temporary home; the other knobs
are applied to those indexes with `Settings.model_copy`. The first row is the baseline, today's
defaults (rag_core/settings.py), measured in the same run. `cross-encoder` reranking is swept
only when RAG_RERANKER_MODEL names a model folder on disk (none ships with the platform).

The answerer's sentence embeddings are remembered per text across configurations, so the grid
costs the model once per distinct sentence; the figures are those of the uncached path (the
full run checks the baseline against `services.query_service`, the path `ragctl eval run`
takes, and reports its answer latency). The latency column is therefore the search alone:
p50 of the PostgreSQL set's depth-10 searches (question embeddings cached, as in the API),
which is what chunking, candidates, fusion and reranking change. Prints one table per set,
then one JSON line.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from time import perf_counter
from typing import Any, cast

import numpy as np
from harness import (
    ROOT,
    SAMPLE,
    arguments,
    console,
    finish,
    postgresql_docs,
    table,
    temp_dir,
)
from retrieval_quality import LabeledSet, indexed_copies, postgresql_set

from rag_core import services
from rag_core.adapters.answering import ExtractiveAnswerer
from rag_core.adapters.cache import build_response_cache
from rag_core.adapters.catalog import add_sources
from rag_core.adapters.embedding import Embedder
from rag_core.adapters.reranking import build_reranker
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.domain.schemas import Hit, QueryRequest
from rag_core.evaluation.labeled_sets import LabeledQuestion, load_set
from rag_core.evaluation.metrics import (
    RETRIEVAL_DEPTH,
    document_ranking,
    percentile,
    retrieval_scores,
)
from rag_core.evaluation.runner import InProcessAnswers, evaluate
from rag_core.flows.querying import QueryService
from rag_core.flows.retrieval import Retriever
from rag_core.settings import Settings
from rag_core.sources.warehouse import sync_documents
from rag_core.sources.warehouse_sample import load_sample

SAMPLE_SET = ROOT / "eval_sets" / "sample_corpus_qa.jsonl"
POSTGRESQL_SET = ROOT / "eval_sets" / "postgresql_sql_purpose.jsonl"
# The number of passages a query gives the answerer when it does not say (`QueryRequest`).
REQUEST_TOP_K: int = QueryRequest.model_fields["top_k"].default
DEFAULTS = Settings.model_fields


@dataclass(frozen=True)
class Knobs:
    """One configuration. Chunking needs its own index; the rest apply to any index."""

    chunk_size: int = DEFAULTS["chunk_size"].default
    chunk_overlap: int = DEFAULTS["chunk_overlap"].default
    candidates: int = DEFAULTS["candidates"].default
    vector_weight: float = DEFAULTS["vector_weight"].default
    keyword_weight: float = DEFAULTS["keyword_weight"].default
    rrf_k: int = DEFAULTS["rrf_k"].default
    top_k: int = REQUEST_TOP_K
    reranker: str = DEFAULTS["reranker"].default

    @property
    def chunking(self) -> tuple[int, int]:
        return self.chunk_size, self.chunk_overlap

    def label(self) -> str:
        return (
            f"{self.chunk_size}/{self.chunk_overlap} c{self.candidates} "
            f"w{self.vector_weight:g}:{self.keyword_weight:g} k{self.rrf_k} "
            f"top{self.top_k}{'' if self.reranker == 'none' else ' ' + self.reranker}"
        )

    def applied(self, settings: Settings) -> Settings:
        """`settings` (indexed with this chunking) with the knobs that need no re-indexing."""
        update = asdict(self)
        for name in ("chunk_size", "chunk_overlap", "top_k"):
            del update[name]
        return settings.model_copy(update=update)


BASELINE = Knobs()
# (chunk size, overlap): the default, smaller and larger chunks, the default size without
# overlap. --quick: the default and smaller chunks.
CHUNKINGS = [BASELINE.chunking, (600, 100), (1600, 250), (1000, 0)]
QUICK_CHUNKINGS = [BASELINE.chunking, (600, 100)]
# Fusion (vector weight, keyword weight, rrf_k) crossed with the candidates per ranking.
FUSIONS = [(1.0, 1.0, 60), (1.0, 1.0, 20), (2.0, 1.0, 60), (1.0, 2.0, 60)]
CANDIDATES = [20, 40, 80]
QUICK_FUSIONS = [(1.0, 1.0, 60), (1.0, 2.0, 60)]
QUICK_CANDIDATES = [40]
TOP_KS = [3, 8]  # besides the default, with the default retrieval knobs
QUICK_SAMPLE_STRIDE = 3  # --quick asks every third question of the sample set
QUICK_POSTGRESQL_PAGES = 60
WIDE = 150  # the tables' width, whatever the terminal's


def grid(chunking: tuple[int, int], quick: bool, rerank: bool) -> list[Knobs]:
    """The configurations on one chunking: fusion by candidates at the default context size,
    the other context sizes, then the cross-encoder on the default knobs when there is one."""
    size, overlap = chunking
    base = replace(BASELINE, chunk_size=size, chunk_overlap=overlap)
    configurations = [
        replace(base, candidates=candidates, vector_weight=v, keyword_weight=k, rrf_k=rrf_k)
        for v, k, rrf_k in (QUICK_FUSIONS if quick else FUSIONS)
        for candidates in (QUICK_CANDIDATES if quick else CANDIDATES)
    ]
    configurations += [replace(base, top_k=top_k) for top_k in ([] if quick else TOP_KS)]
    if rerank:
        configurations.append(replace(base, reranker="cross-encoder"))
    return configurations


class RememberedEmbeddings:
    """The embedder with every text's vector remembered: the sweep asks the answerer about
    the same sentences under many configurations, and the model gives a text one vector."""

    def __init__(self, inner: Embedder):
        self.inner = inner
        self.embed_query = inner.embed_query
        self._vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.inner.embed(missing), strict=True))
        if not texts:
            return self.inner.embed([])
        return np.stack([self._vectors[text] for text in texts])


class ContextOf(Retriever):
    """A retriever that gives the answerer `top_k` passages: the runner's questions ask for
    the request's default, and only the answerer's searches do (its rankings ask for
    `RETRIEVAL_DEPTH`)."""

    def __init__(self, retriever: Retriever, top_k: int):
        super().__init__(
            retriever.index, retriever.embedder, retriever.settings, retriever.reranker
        )
        self.top_k = top_k

    def search(self, query: str, top_k: int, *args: Any, **kwargs: Any) -> list[Hit]:
        return super().search(
            query, self.top_k if top_k == REQUEST_TOP_K else top_k, *args, **kwargs
        )


def sweep_service(settings: Settings, embedder: RememberedEmbeddings, top_k: int) -> QueryService:
    """What `services.query_service` builds without an LLM, on the remembered embeddings."""
    model = cast(Embedder, embedder)  # all the retriever and the answerer call: embed, embed_query
    retriever = Retriever(services.chunk_index(settings), model, settings, build_reranker(settings))
    return QueryService(
        ContextOf(retriever, top_k), ExtractiveAnswerer(model), build_response_cache(settings)
    )


def retrieval_only(
    retriever: Retriever, questions: list[LabeledQuestion]
) -> dict[str, float | None]:
    """The harness's retrieval scores of depth-10 searches, and their p50 latency (after one
    untimed search)."""
    scores, latencies = [], []
    retriever.search(questions[0].question, RETRIEVAL_DEPTH)  # opens the table and its indexes
    for question in questions:
        started = perf_counter()
        hits = retriever.search(question.question, RETRIEVAL_DEPTH)
        latencies.append(perf_counter() - started)
        ranked = retrieval_scores(question, document_ranking([hit.source_uri for hit in hits]))
        if ranked is not None:
            scores.append(ranked)
    figures: dict[str, float | None] = {
        name: round(float(np.mean([getattr(score, name) for score in scores])), 3)
        for name in ("recall_at_1", "recall_at_5", "mrr_at_10", "ndcg_at_10")
    }
    return {**figures, "search_p50_ms": round(1000 * (percentile(latencies, 50) or 0.0), 1)}


def sample_figures(
    settings: Settings,
    embedder: RememberedEmbeddings,
    questions: list[LabeledQuestion],
    knobs: Knobs,
) -> dict[str, float | None]:
    service = sweep_service(knobs.applied(settings), embedder, knobs.top_k)
    figures = evaluate(questions, InProcessAnswers(service)).aggregates
    return {name: _rounded(getattr(figures, name)) for name in SAMPLE_METRICS}


SAMPLE_METRICS = ("recall_at_1", "recall_at_5", "mrr_at_10", "ndcg_at_10", "context_recall",
                  "fact_recall", "abstention_accuracy")  # fmt: skip
POSTGRESQL_METRICS = ("recall_at_1", "recall_at_5", "mrr_at_10", "ndcg_at_10")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def ingested(settings: Settings, keys: list[str]) -> int:
    """Index these object-store keys in one Dagster run; the index's chunk count."""
    from rag_assets.ingest import ingest_sources, local_instance  # Dagster only when needed

    ingest_sources(settings, local_instance(settings), keys)
    return services.chunk_index(settings).stats().chunks


@contextmanager
def sample_index(chunking: tuple[int, int], warehouse: Path) -> Iterator[tuple[Settings, int]]:
    """The sample corpus and the built sample warehouse's documents, indexed with this
    chunking in a temporary home; its settings and chunk count."""
    with temp_dir("sweep-sample") as home:
        size, overlap = chunking
        settings = Settings(
            home=home, warehouse_path=warehouse, chunk_size=size, chunk_overlap=overlap
        )
        store = services.object_store(settings)
        keys = add_sources(store, [SAMPLE]) + sync_documents(store, settings)
        yield settings, ingested(settings, keys)


@contextmanager
def postgresql_index(
    chunking: tuple[int, int], labeled: LabeledSet, pages: list[Path]
) -> Iterator[tuple[Settings, int]]:
    """The PostgreSQL pages, purposes removed (bench/retrieval_quality.py), indexed likewise."""
    with temp_dir("sweep-postgresql") as home:
        size, overlap = chunking
        settings = Settings(home=home, chunk_size=size, chunk_overlap=overlap)
        copies, _ = indexed_copies(labeled, pages, home / "pages")
        store = services.object_store(settings)
        yield settings, ingested(settings, add_sources(store, copies))


@contextmanager
def built_warehouse() -> Iterator[Path]:
    """The sample warehouse, loaded and built by dbt once for every sample index."""
    with temp_dir("sweep-warehouse") as home:
        settings = Settings(home=home)
        load_sample(settings)
        build_models(settings)
        yield settings.warehouse_path


def cross_encoder_configured() -> bool:
    """Whether RAG_RERANKER_MODEL names a model folder (none ships; nothing is downloaded)."""
    return Path(Settings().reranker_model or "/nonexistent").expanduser().is_dir()


def reference_run(settings: Settings, questions: list[LabeledQuestion]) -> dict[str, Any]:
    """The baseline as `ragctl eval run` asks it (`services.query_service`, nothing
    remembered): its figures, which the sweep's baseline row must equal, and its latency."""
    figures = evaluate(questions, InProcessAnswers(services.query_service(settings))).aggregates
    return {
        **{name: _rounded(getattr(figures, name)) for name in SAMPLE_METRICS},
        "answer_p50_ms": round(1000 * (figures.latency_p50_seconds or 0.0), 1),
        "answer_p95_ms": round(1000 * (figures.latency_p95_seconds or 0.0), 1),
    }


def sweep(args: Any) -> dict[str, Any]:
    quick: bool = args.quick
    rerank = cross_encoder_configured()
    sample_questions = load_set(SAMPLE_SET)[:: QUICK_SAMPLE_STRIDE if quick else 1]
    labeled = postgresql_set(
        args.postgresql_docs or postgresql_docs(args.cache / "postgresql-doc-15")
    )
    pages = labeled.pages[: QUICK_POSTGRESQL_PAGES if quick else None]
    indexed = {page.name for page in pages}
    postgresql_questions = [
        question
        for question in load_set(POSTGRESQL_SET)
        if any(source in indexed for source in question.sources)
    ]
    embedder = RememberedEmbeddings(services.embedder(Settings()))
    rows: dict[str, dict[str, Any]] = {}
    chunks: dict[str, dict[str, int]] = {}
    reference = None
    started = perf_counter()
    with built_warehouse() as warehouse:
        for chunking in QUICK_CHUNKINGS if quick else CHUNKINGS:
            with (
                sample_index(chunking, warehouse) as (sample, sample_chunks),
                postgresql_index(chunking, labeled, pages) as (postgresql, postgresql_chunks),
            ):
                chunks["/".join(map(str, chunking))] = {
                    "sample": sample_chunks, "postgresql": postgresql_chunks}  # fmt: skip
                for knobs in grid(chunking, quick, rerank):
                    rows[knobs.label()] = {
                        "knobs": asdict(knobs),
                        "sample": sample_figures(sample, embedder, sample_questions, knobs),
                        "postgresql": retrieval_only(
                            services.retriever(knobs.applied(postgresql)), postgresql_questions
                        ),
                    }
                    console.print(
                        f"{perf_counter() - started:.0f} s {knobs.label()}: {rows[knobs.label()]}"
                    )
                if chunking == BASELINE.chunking and not quick:
                    reference = reference_run(sample, sample_questions)
    return {
        "sample_questions": len(sample_questions),
        "postgresql_questions": len(postgresql_questions),
        "postgresql_pages": len(pages),
        "chunks": chunks,
        "cross_encoder": rerank,
        "baseline": BASELINE.label(),
        "rows": rows,
        "reference": reference,
        "seconds": round(perf_counter() - started),
    }


def uplifts(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per set, the best configuration by its primary metric and its gain over the baseline:
    fact recall (then MRR@10) on the sample set, where answers are scored; MRR@10 on the
    PostgreSQL set. And the configuration whose smaller gain of the two is largest."""
    primaries = {"sample": ("fact_recall", "mrr_at_10"), "postgresql": ("mrr_at_10", "ndcg_at_10")}
    baseline = rows[BASELINE.label()]

    def gain(label: str, name: str) -> float:
        return round(sum(rows[label][name][m] - baseline[name][m] for m in primaries[name][:1]), 3)

    best = {
        name: max(rows, key=lambda label: tuple(rows[label][name][m] for m in metrics))
        for name, metrics in primaries.items()
    }
    both = max(rows, key=lambda label: min(gain(label, name) for name in primaries))
    return {
        **{
            name: {"winner": label, "metric": primaries[name][0], "uplift": gain(label, name)}
            for name, label in best.items()
        },
        "both": {"winner": both, **{name: gain(both, name) for name in primaries}},
    }


def report(figures: dict[str, Any]) -> None:
    rows = figures["rows"]
    for name, columns, title in (
        ("sample", SAMPLE_METRICS, f"sample QA: {figures['sample_questions']} questions"),
        ("postgresql", (*POSTGRESQL_METRICS, "search_p50_ms"),
         f"PostgreSQL purposes: {figures['postgresql_questions']} questions over "
         f"{figures['postgresql_pages']} pages"),
    ):  # fmt: skip
        console.print(
            table(
                title,
                ("configuration", *columns),
                [(label, *(_cell(row[name][c]) for c in columns)) for label, row in rows.items()],
                left={"configuration"},
            ),
            width=WIDE,
        )
    if not figures["cross_encoder"]:
        console.print("cross-encoder: not swept (RAG_RERANKER_MODEL names no model folder)")
    reference = figures["reference"]
    if reference:
        same = all(reference[m] == rows[BASELINE.label()]["sample"][m] for m in SAMPLE_METRICS)
        console.print(f"baseline via services.query_service ({'same' if same else 'DIFFERENT'} "
                      f"figures): {reference}")  # fmt: skip
    console.print(f"winners: {figures['winners']}")


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = arguments(
        __doc__,
        quick="2 chunkings, 2 fusions, every 3rd sample question, 60 PostgreSQL pages",
        cache=True,
    )
    parser.add_argument("--postgresql-docs", type=Path, help="postgresql-doc-15 html folder")
    args = parser.parse_args()
    figures = sweep(args)
    figures["winners"] = uplifts(figures["rows"])
    report(figures)
    finish("eval_sweep", args.quick, figures)


if __name__ == "__main__":
    main()
