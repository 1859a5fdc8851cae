"""Response cache: cost of storing one answer on disk as more and more cached answers cite the
same chunks (the usual case: popular documents are in many answers).

Fills a fresh diskcache-backed `DiskResponseCache` with answers that all cite the same five
chunks and, at each step, times a batch of further `set` calls and counts the bytes the
process wrote for them (`wchar` in /proc/self/io, Linux). A filing that rewrote a list per
chunk made both grow with the number of answers; one row per (chunk, answer) keeps them
flat. Then times `forget` of the shared chunks (every answer at once), scrub included.

    python bench/cache.py [--quick]

Prints a table, then one JSON line with the figures.
"""

import json
import time
from pathlib import Path

from harness import MACHINE, arguments, console, finish, table, temp_settings

from rag_core.adapters.cache import DiskResponseCache

SHARED_CHUNKS = [f"chunk-{number}" for number in range(5)]
ANSWER = json.dumps({"answer": "x" * 600, "citations": [{"chunk_id": c} for c in SHARED_CHUNKS]})
MEASURED = 100


def bytes_written() -> int:
    counters = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(counters["wchar"])


def measure(steps: list[int]) -> list[dict[str, float]]:
    with temp_settings("cache") as settings:
        cache = DiskResponseCache(settings)
        stored, rows = 0, []
        for step in steps:
            while stored < step:
                cache.set(f"rag:query:{stored}", ANSWER, SHARED_CHUNKS)
                stored += 1
            before_bytes, started = bytes_written(), time.perf_counter()
            for _ in range(MEASURED):
                cache.set(f"rag:query:{stored}", ANSWER, SHARED_CHUNKS)
                stored += 1
            elapsed = time.perf_counter() - started
            rows.append({
                "answers": step,
                "ms_per_set": 1000 * elapsed / MEASURED,
                "kb_written_per_set": (bytes_written() - before_bytes) / MEASURED / 1024,
            })  # fmt: skip
        started = time.perf_counter()
        forgotten = cache.forget(SHARED_CHUNKS)
        rows[-1] |= {"forget_s": time.perf_counter() - started, "forgotten": forgotten}
    return rows


def main() -> None:
    args = arguments(__doc__, quick="up to 6,000 answers").parse_args()
    steps = [100, 1000, 6000] if args.quick else [100, 1000, 6000, 20000]
    rows = measure(steps)

    console.print(
        table(
            f"DiskResponseCache.set, answers citing the same chunks ({MACHINE})",
            ("answers already cached", "ms per set", "KB written per set"),
            [
                (f"{r['answers']:,}", f"{r['ms_per_set']:.2f}", f"{r['kb_written_per_set']:.1f}")
                for r in rows
            ],
        )
    )
    last = rows[-1]
    console.print(f"forget of the shared chunks: {last['forgotten']:,} answers in "
                  f"{last['forget_s']:.2f} s")  # fmt: skip
    finish(
        "cache",
        args.quick,
        {
            "ms_per_set": {row["answers"]: round(row["ms_per_set"], 3) for row in rows},
            "kb_written_per_set": {
                row["answers"]: round(row["kb_written_per_set"], 1) for row in rows
            },
            "forget_s": round(last["forget_s"], 3),
            "forgotten": last["forgotten"],
        },
    )


if __name__ == "__main__":
    main()
