"""Semantic cache: how often a reworded question is served the cached answer (hits), and how
often a different question that shares its words is (false hits), by similarity threshold.

The pairs (eval_sets/paraphrases/sample_corpus_qa.jsonl) are built from the labeled questions
of eval_sets/sample_corpus_qa.jsonl: each pairs a labeled question with a rewording that needs
the same answer (`same_answer: true`) or with a near miss, a question with many of the same
words that needs another answer (`same_answer: false`). All are embedded with the embedder the
platform uses (RAG_EMBEDDING_MODEL), then, for each threshold from 0.85 to 0.99:

- pairwise: the share of rewordings at or above it from their question (hits), and the share
  of near misses (false hits);
- warm cache: every labeled question of the pairs is in one bucket of a real `SemanticCache`
  on a disk store, and each rewording is looked up: served its own question's answer, another
  question's (a wrong answer), or nothing.

Then times lookups in that full bucket at the default threshold (RAG_SEMANTIC_CACHE_SIMILARITY).

    python bench/semantic_cache.py [--quick]

Prints tables, then one JSON line with the figures.
"""

import json
import time
from dataclasses import dataclass

import numpy as np
from harness import MACHINE, ROOT, arguments, console, finish, spread, table, temp_settings

from rag_core import services
from rag_core.adapters.cache import DiskResponseCache
from rag_core.adapters.semantic_cache import SemanticCache
from rag_core.domain.schemas import ChunkReference
from rag_core.evaluation.labeled_sets import load_set
from rag_core.settings import Settings

LABELED = ROOT / "eval_sets" / "sample_corpus_qa.jsonl"
PAIRS = ROOT / "eval_sets" / "paraphrases" / "sample_corpus_qa.jsonl"
THRESHOLDS = [round(0.85 + step / 100, 2) for step in range(15)]
BUCKET = "rag:semantic:bench"
QUICK_PAIRS = 15  # of each kind
COLUMNS = (
    "threshold",
    "rewordings hit",
    "near misses hit (false)",
    "warm: own answer",
    "warm: another's answer",
)


@dataclass(frozen=True)
class Pair:
    id: str
    question: str
    paraphrase: str
    same_answer: bool


def load_pairs(quick: bool) -> list[Pair]:
    """The pairs, each question checked against the labeled set it is built from."""
    labeled = {question.question for question in load_set(LABELED)}
    pairs = [Pair(**json.loads(line)) for line in PAIRS.read_text().splitlines() if line.strip()]
    unknown = [pair.id for pair in pairs if pair.question not in labeled]
    if unknown:
        raise SystemExit(f"{PAIRS.name}: not a question of {LABELED.name}: {unknown}")
    if quick:
        same = [pair for pair in pairs if pair.same_answer][:QUICK_PAIRS]
        pairs = same + [pair for pair in pairs if not pair.same_answer][:QUICK_PAIRS]
    return pairs


def share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def warm_cache(
    settings: Settings, pairs: list[Pair], vectors: dict[str, np.ndarray]
) -> tuple[dict[float, dict[str, float]], list[float]]:
    """Every pair's question in one bucket; each rewording looked up at every threshold.
    Returns the shares served their own answer and another's, by threshold, and the lookup
    times (ms) at the default threshold."""
    store = DiskResponseCache(settings)
    questions = sorted({pair.question for pair in pairs})
    filler = SemanticCache(store, settings.semantic_cache_similarity, settings.cache_ttl_seconds)
    no_context: list[ChunkReference] = []
    for number, question in enumerate(questions):
        key = f"rag:query:bench-{number}"
        store.set(key, json.dumps({"question": question}))
        filler.remember(BUCKET, vectors[question], key, no_context)

    reworded = [pair for pair in pairs if pair.same_answer]
    results: dict[float, dict[str, float]] = {}
    for threshold in THRESHOLDS:
        cache = SemanticCache(store, threshold, settings.cache_ttl_seconds)
        served = [cache.find(BUCKET, vectors[pair.paraphrase]) for pair in reworded]
        asked = [None if answer is None else json.loads(answer)["question"] for answer in served]
        outcomes = list(zip(asked, (pair.question for pair in reworded), strict=True))
        results[threshold] = {
            "own": share([question == own for question, own in outcomes]),
            "other": share([question not in (None, own) for question, own in outcomes]),
        }
    timings = []
    for pair in pairs:
        started = time.perf_counter()
        filler.find(BUCKET, vectors[pair.paraphrase])
        timings.append(1000 * (time.perf_counter() - started))
    return results, timings


def main() -> None:
    args = arguments(__doc__, quick=f"the first {QUICK_PAIRS} pairs of each kind").parse_args()
    pairs = load_pairs(args.quick)
    with temp_settings("semantic-cache") as settings:
        embedder = services.embedder(settings)
        texts = sorted({text for pair in pairs for text in (pair.question, pair.paraphrase)})
        vectors = dict(zip(texts, embedder.embed(texts), strict=True))
        warm, timings = warm_cache(settings, pairs, vectors)
        bucket_size = len({pair.question for pair in pairs})

    cosine = {pair.id: float(vectors[pair.question] @ vectors[pair.paraphrase]) for pair in pairs}
    same = [cosine[pair.id] for pair in pairs if pair.same_answer]
    near = [cosine[pair.id] for pair in pairs if not pair.same_answer]
    rows = {
        threshold: {
            "hit_rate": share([value >= threshold for value in same]),
            "false_hit_rate": share([value >= threshold for value in near]),
            "warm_own": warm[threshold]["own"],
            "warm_other": warm[threshold]["other"],
        }
        for threshold in THRESHOLDS
    }
    console.print(
        table(
            f"Semantic cache by threshold: {len(same)} rewordings, {len(near)} near misses, "
            f"{settings.embedding_model} ({MACHINE})",
            COLUMNS,
            [
                (f"{threshold:.2f}", *(f"{100 * value:.0f}%" for value in row.values()))
                for threshold, row in rows.items()
            ],
        )
    )
    console.print(
        table(
            "Cosine of each pair",
            ("pairs", "n", "p50", "p95", "max", "min"),
            [
                ("rewordings", *spread(same, 3), f"{min(same):.3f}"),
                ("near misses", *spread(near, 3), f"{min(near):.3f}"),
            ],
            left={"pairs"},
        )
    )
    console.print(
        f"lookup in a bucket of {bucket_size} questions at "
        f"{settings.semantic_cache_similarity}: p50 {np.median(timings):.2f} ms, "
        f"max {max(timings):.2f} ms"
    )
    finish(
        "semantic_cache",
        args.quick,
        {
            "embedding_model": settings.embedding_model,
            "rewordings": len(same),
            "near_misses": len(near),
            "by_threshold": {
                f"{threshold:.2f}": {name: round(value, 3) for name, value in row.items()}
                for threshold, row in rows.items()
            },
            "lookup_ms_p50": round(float(np.median(timings)), 3),
            "bucket_questions": bucket_size,
        },
    )


if __name__ == "__main__":
    main()
