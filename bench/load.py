"""Overload: throughput, latency and memory of one API process from 1 to 64 concurrent clients,
without admission control (baseline) and with it (candidate), in the same run.

Ingests the sample corpus into a temporary RAG_HOME (`ragctl ingest`), then, for each variant,
starts the API on loopback (uvicorn, one process, as `ragctl serve` runs it) and drives three
workloads for a fixed time per client count: `/v1/search`, `/v1/query` answered from the
response cache, and `/v1/query` with questions never asked before (each one retrieves and has
the extractive answerer embed the hits' sentences). Clients are asyncio tasks in this process,
each on its own keep-alive connection; they share the machine's cores with the server. A client
refused with 503 backs off 100 ms, not the full `Retry-After`, to keep the server under
pressure. Rate limits are lifted (every caller is the one dev identity).

Baseline: `RAG_MAX_IN_FLIGHT=0` (no admission control) and `RAG_INDEX_VERSION_TTL_SECONDS=0`
(the cache key's index version read on every query, as before). `--baseline-src DIR` runs the
baseline server from another source tree instead, e.g. the code before a change:
`git archive HEAD | tar -x -C DIR`.

    python bench/load.py [--quick] [--seconds S] [--baseline-src DIR]

Prints a table, then one JSON line with the figures.
"""

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from harness import QUICK_CORPUS, SAMPLE, arguments, console, finish, table, temp_dir

from rag_core.domain.stats import percentile
from rag_core.settings import Settings
from rag_serving.local_api import LocalApiServer

CLIENTS = (1, 8, 32, 64)
BACKOFF_SECONDS = 0.1
QUESTIONS = [
    "Which port does the server listen on?",
    "How do I create a new database named mydb?",
    "What does VACUUM FULL do?",
    "How are JSON values indexed?",
    "How do I dump a database to a file?",
    "Which index types are there?",
    "How do I install a package with pip?",
    "How does pip authenticate to a private index?",
    "How do I make installs repeatable?",
    "What is a rootless build?",
    "How does a package manager frontend lock the database?",
    "How do I start the mosquitto broker?",
]
NO_RATE_LIMIT = {"RAG_RATE_LIMIT_PER_MINUTE": "100000000", "RAG_RATE_LIMIT_BURST": "1000000"}
VARIANTS = {
    "baseline": {"RAG_MAX_IN_FLIGHT": "0", "RAG_INDEX_VERSION_TTL_SECONDS": "0"},
    "candidate": {},
}

Request = tuple[str, dict[str, object]]
_unique = itertools.count()


def search(n: int) -> Request:
    return "/v1/search", {"query": QUESTIONS[n % len(QUESTIONS)], "top_k": 5}


def cached_query(n: int) -> Request:
    return "/v1/query", {"question": QUESTIONS[n % len(QUESTIONS)]}


def uncached_query(n: int) -> Request:
    return "/v1/query", {"question": f"{QUESTIONS[n % len(QUESTIONS)]} (#{next(_unique)})"}


WORKLOADS: dict[str, Callable[[int], Request]] = {
    "search": search,
    "query, cached": cached_query,
    "query, uncached": uncached_query,
}


class ApiServer(LocalApiServer):
    def __init__(self, home: Path, overrides: dict[str, str], source: Path | None):
        env = {**NO_RATE_LIMIT, **overrides} | ({"PYTHONPATH": str(source)} if source else {})
        super().__init__(
            home,
            log_path=home.parent / "api.log",
            env=env,
            uvicorn_args=["--log-level", "warning", "--no-access-log"],
        )

    def memory_mb(self, field_name: str) -> float:
        """VmRSS (resident now) or VmHWM (peak resident) of the server process, in MB."""
        assert self._process is not None
        status = Path(f"/proc/{self._process.pid}/status").read_text()
        kilobytes = next(
            line.split()[1] for line in status.splitlines() if line.startswith(field_name)
        )
        return int(kilobytes) / 1024


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the API's
    JSON responses. The clients share the server's cores, so they must cost next to nothing:
    httpx spent more CPU per cached request than the server did."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> "Connection":
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, path: str, body: dict[str, object]) -> int:
        """The response's status; its body is read and dropped."""
        payload = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n")  # fmt: skip
        self.writer.write(head.encode() + payload)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Step:
    clients: int
    seconds: float
    ok_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


def milliseconds(latencies: list[float], share: float) -> float:
    """A percentile of latencies in seconds, in milliseconds; NaN when none succeeded."""
    return round(1000 * percentile(latencies, share), 1) if latencies else float("nan")


async def drive(
    server: ApiServer, workload: Callable[[int], Request], clients: int, seconds: float
) -> Step:
    """`clients` closed-loop clients for `seconds`; latencies of the 200s, other outcomes
    counted by status, the server's resident memory sampled every 100 ms."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    peak_rss = 0.0
    deadline = time.perf_counter() + seconds

    async def client(first: int) -> None:
        http = await Connection.open(server.url)
        try:
            for n in itertools.count(first, clients):
                if time.perf_counter() >= deadline:
                    return
                path, body = workload(n)
                started = time.perf_counter()
                try:
                    outcome = str(await http.post(path, body))
                except (OSError, asyncio.IncompleteReadError) as error:
                    outcome = type(error).__name__
                    http.close()
                    http = await Connection.open(server.url)
                outcomes[outcome] += 1
                if outcome == "200":
                    latencies.append(time.perf_counter() - started)
                else:
                    await asyncio.sleep(BACKOFF_SECONDS)
        finally:
            http.close()

    async def sample_memory() -> None:
        nonlocal peak_rss
        while time.perf_counter() < deadline:
            peak_rss = max(peak_rss, server.memory_mb("VmRSS"))
            await asyncio.sleep(0.1)

    started = time.perf_counter()
    await asyncio.gather(sample_memory(), *(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    return Step(
        clients=clients,
        seconds=round(elapsed, 2),
        ok_per_second=round(outcomes.pop("200", 0) / elapsed, 1),
        p50_ms=milliseconds(latencies, 0.50),
        p95_ms=milliseconds(latencies, 0.95),
        p99_ms=milliseconds(latencies, 0.99),
        errors=dict(outcomes),
        peak_rss_mb=round(peak_rss),
    )


def prime_cache(server: ApiServer) -> None:
    """Answer every fixed question once, so `query, cached` only reads the cache."""
    for n in range(len(QUESTIONS)):
        path, body = cached_query(n)
        httpx.post(f"{server.url}{path}", json=body, timeout=120).raise_for_status()


def measure(home: Path, overrides: dict[str, str], source: Path | None, seconds: float) -> dict:
    with ApiServer(home, overrides, source) as server:
        prime_cache(server)
        steps = {
            name: [asyncio.run(drive(server, workload, clients, seconds)) for clients in CLIENTS]
            for name, workload in WORKLOADS.items()
        }
        return {"steps": steps, "peak_rss_mb": round(server.memory_mb("VmHWM"))}


def ingest_sample(quick: bool, workdir: Path) -> Path:
    home = workdir / "rag"
    corpus = QUICK_CORPUS if quick else [SAMPLE]
    subprocess.run(
        [str(Path(sys.executable).parent / "ragctl"), "ingest", *map(str, corpus)],
        env=os.environ | {"RAG_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return home


def report(results: dict[str, dict]) -> None:
    rows = []
    for name in WORKLOADS:
        for position, clients in enumerate(CLIENTS):
            for variant, result in results.items():
                step: Step = result["steps"][name][position]
                errors = ", ".join(f"{k}: {v}" for k, v in sorted(step.errors.items())) or "-"
                rows.append((name, str(clients), variant, f"{step.ok_per_second:.1f}",
                             f"{step.p50_ms:.0f}", f"{step.p95_ms:.0f}", f"{step.p99_ms:.0f}",
                             errors, f"{step.peak_rss_mb:.0f}"))  # fmt: skip
    columns = ("workload", "clients", "variant", "ok/s", "p50 ms", "p95 ms", "p99 ms", "errors",
               "peak RSS MB")  # fmt: skip
    title = "one API process under load (ok/s: 200 responses per second)"
    console.print(table(title, columns, rows, left={"workload", "variant"}))


def main() -> None:
    parser = arguments(__doc__, quick="14 documents, 1.5 s per step")
    parser.add_argument("--seconds", type=float, help="per workload and client count (10)")
    parser.add_argument("--baseline-src", type=Path, help="source tree the baseline runs from")
    args = parser.parse_args()
    seconds = args.seconds or (1.5 if args.quick else 10.0)

    with temp_dir("load") as workdir:
        home = ingest_sample(args.quick, workdir)
        results = {
            variant: measure(home, overrides, args.baseline_src if variant == "baseline" else None,
                             seconds)
            for variant, overrides in VARIANTS.items()
        }  # fmt: skip
    report(results)
    candidate = Settings()
    finish(
        "load",
        args.quick,
        {
            "seconds_per_step": seconds,
            "baseline_src": str(args.baseline_src) if args.baseline_src else None,
            "candidate": {
                "max_in_flight": candidate.max_in_flight,
                "max_queued": candidate.max_queued,
                "queue_wait_seconds": candidate.queue_wait_seconds,
            },
            "results": {
                variant: {
                    "peak_rss_mb": result["peak_rss_mb"],
                    "steps": {k: [asdict(s) for s in v] for k, v in result["steps"].items()},
                }
                for variant, result in results.items()
            },
        },
    )


if __name__ == "__main__":
    main()
