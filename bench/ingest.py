"""Ingestion throughput: end-to-end chunks/s against the embedding model alone, same run.

End to end is `ragctl ingest` minus process start-up: copy into the object store, discover,
register partitions, and one Dagster run through raw → parsed → chunks → embeddings → index,
until the chunks are queryable. The baseline embeds the very same chunk texts with the same
loaded model, before and after, so machine noise hits both sides alike. The model and the
parser are loaded before timing starts (their one-off start-up is reported on its own).

    python bench/ingest.py [--quick] [--corpus PATH ...] [--repeat N]

Prints a table, then one JSON line with the figures.
"""

import statistics
import time
from pathlib import Path

from harness import (
    QUICK_CORPUS,
    SAMPLE,
    arguments,
    console,
    finish,
    ingest,
    table,
    temp_settings,
)

from rag_assets.ingest import local_instance
from rag_core import services
from rag_core.adapters.catalog import plan_sources
from rag_core.domain.parsing import warm_up_parser
from rag_core.settings import Settings

TARGET_RATIO = 0.7


def warm_up(settings: Settings, corpus: list[Path]) -> float:
    """Load the model and the parsers the corpus needs: one-off costs of a process."""
    started = time.perf_counter()
    services.embedder(settings).embed(["warm up"])
    warm_up_parser(file.name for file, _ in plan_sources(corpus))
    return time.perf_counter() - started


def embed_rate(settings: Settings, texts: list[str]) -> float:
    started = time.perf_counter()
    services.embedder(settings).embed(texts)
    return len(texts) / (time.perf_counter() - started)


def stage_seconds(instance, run_id: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {
        stats.step_key: round(stats.end_time - stats.start_time, 2)
        for stats in instance.get_run_step_stats(run_id)
        if stats.end_time and stats.start_time
    }


def run_once(corpus: list[Path], settings: Settings) -> dict:
    startup_s = warm_up(settings, corpus)
    instance = local_instance(settings)

    started = time.perf_counter()
    keys = ingest(settings, corpus, instance)
    end_to_end_s = time.perf_counter() - started

    texts = [row["text"] for row in services.chunk_index(settings).rows(columns=["text"])]
    baseline = statistics.mean([embed_rate(settings, texts), embed_rate(settings, texts)])
    run_id = instance.get_runs(limit=1)[0].run_id
    return {
        "documents": len(keys),
        "chunks": len(texts),
        "startup_s": round(startup_s, 2),
        "end_to_end_s": round(end_to_end_s, 2),
        "end_to_end_chunks_per_s": round(len(texts) / end_to_end_s, 2),
        "embedding_chunks_per_s": round(baseline, 2),
        "stages_s": stage_seconds(instance, run_id),
    }


def main() -> None:
    parser = arguments(__doc__, quick="small corpus, about a minute")
    parser.add_argument("--corpus", type=Path, nargs="+", help="files or folders to ingest")
    parser.add_argument("--repeat", type=int, default=None, help="runs (default 3, quick 1)")
    args = parser.parse_args()
    corpus = args.corpus or (QUICK_CORPUS if args.quick else [SAMPLE])
    repeat = args.repeat or (1 if args.quick else 3)

    runs = []
    for _ in range(repeat):
        with temp_settings("ingest") as settings:
            runs.append(run_once(corpus, settings))
    ratios = [r["end_to_end_chunks_per_s"] / r["embedding_chunks_per_s"] for r in runs]
    best = runs[ratios.index(statistics.median(ratios))] if repeat % 2 else runs[0]

    rows = [
        (str(number), str(run["documents"]), str(run["chunks"]), f"{run['end_to_end_s']:.2f}",
         f"{run['end_to_end_chunks_per_s']:.1f}", f"{run['embedding_chunks_per_s']:.1f}",
         f"{ratio:.2f}")
        for number, (run, ratio) in enumerate(zip(runs, ratios, strict=True), start=1)
    ]  # fmt: skip
    columns = ("run", "docs", "chunks", "end-to-end s", "e2e chunks/s", "embed-only chunks/s",
               "ratio")  # fmt: skip
    title = f"ingest benchmark ({'quick' if args.quick else 'full'}, {repeat} runs)"
    console.print(table(title, columns, rows))
    console.print("stage seconds (median run):", best["stages_s"])
    console.print(f"one-off model and parser start-up: {best['startup_s']:.1f} s (not timed)")
    finish(
        "ingest",
        args.quick,
        {
            "runs": repeat,
            "documents": best["documents"],
            "chunks": best["chunks"],
            "end_to_end_chunks_per_s": best["end_to_end_chunks_per_s"],
            "embedding_chunks_per_s": best["embedding_chunks_per_s"],
            "ratio": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "target_ratio": TARGET_RATIO,
        },
    )


if __name__ == "__main__":
    main()
