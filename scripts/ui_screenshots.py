"""Screenshots of the Dagster UI pages a person operates the platform from, taken with
headless Chromium on a temporary platform built as `make run` builds one: the sample corpus
ingested in a run, the warehouse's models built and their rows announced in runs (`ragctl
warehouse build`, then `ragctl dev` starting), then one change streamed through the warm
worker (runless materializations, with the index checks), and the nightly evaluation of the
last two days (extractive answers), so its events page plots two points.

    .venv/bin/python scripts/ui_screenshots.py [OUT_DIR]     # default .rag/screenshots

Needs the `chromium` binary (Debian: `apt-get install chromium`). Everything runs on
loopback in a temporary folder, removed at the end; only the PNGs stay.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from rag_assets.definitions import run_in_process
from rag_assets.evaluation import JOB_NAME as EVALUATION_JOB
from rag_assets.evaluation import nightly
from rag_assets.ingest import local_instance
from rag_assets.orchestration import InProcessOrchestrator
from rag_core import services
from rag_core.adapters.catalog import add_sources, put_source
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.local_servers import LocalDagsterWebserver, TansuBroker
from rag_core.domain.documents import SourceMetadata
from rag_core.flows.orchestration import CODE_LOCATION_MODULE, INDEXING_JOB
from rag_core.flows.streaming import StreamingIndexer
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings, get_settings
from rag_core.sources.warehouse_sample import load_sample

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = REPO / "sample_corpus"
STREAMED_SOURCE = "documents/handbook/visitor-parking.md"
STREAMED_TEXT = b"# Visitor parking\n\nVisitors park in the blue garage on level three.\n"
WINDOW = "1600,1000"
# Milliseconds of page time Chromium grants the UI to load its data before the screenshot.
PAGE_TIME_BUDGET_MS = 20000


def pages(streamed_partition: str) -> dict[str, str]:
    """File name → path in the UI: the pages a person looks at first, on the streamed
    version's partition and an index check it was checked by."""
    return {
        "index-partitions": f"assets/index?view=partitions&partition={streamed_partition}",
        "index-checks": "assets/index?view=checks&checkDetail=rows_match_live_chunks",
        "warehouse-model": "assets/support_ticket_documents",
        "warehouse-row-events": "assets/warehouse_row_events",
        "index-partition-metadata": f"assets/index?view=events&partition={streamed_partition}",
        "runs": "runs",
        "evaluation-events": "assets/evaluation?view=events",
        "evaluation-checks": "assets/evaluation?view=checks",
    }


def build_platform(settings: Settings) -> str:
    """What `make run` leaves before `ragctl dev` starts its servers, plus a change the
    streaming worker indexed; returns that version's partition key."""
    orchestrator = InProcessOrchestrator(settings)
    print("ingesting the sample corpus in one run", flush=True)
    orchestrator.index_sources(add_sources(services.object_store(settings), [SAMPLE_CORPUS]))
    print("building the warehouse's models in one run", flush=True)
    load_sample(settings)
    orchestrator.build_warehouse()
    print("announcing the warehouse's rows in one run, as `ragctl dev` does", flush=True)
    orchestrator.announce_warehouse_rows()
    print("streaming one change through the worker", flush=True)
    streamed = stream_one_change(settings, orchestrator)
    print("evaluating the last two nights", flush=True)
    with local_instance(settings) as instance:
        for night in nightly.get_partition_keys()[-2:]:
            run_in_process(EVALUATION_JOB, settings, instance, partition_key=night)
    return streamed


def stream_one_change(settings: Settings, orchestrator: InProcessOrchestrator) -> str:
    """Put a source, announce it, let the worker index it, then pause (the worker evaluates
    the index checks in the pause). Returns the version's partition key."""
    store = services.object_store(settings)
    with StreamingIndexer(settings, orchestrator.streaming_recorder()) as worker:
        put_source(store, STREAMED_SOURCE, STREAMED_TEXT, SourceMetadata())
        sync_object_store(store, EventPublisher(settings).document_changes)
        deadline = time.monotonic() + 120
        while (outcome := worker.poll_once(timeout=1.0)) is None or not outcome.indexed:
            if time.monotonic() > deadline:
                raise SystemExit("the streaming worker indexed nothing in two minutes")
        pause_ends = time.monotonic() + 2.0
        while time.monotonic() < pause_ends:
            worker.poll_once(timeout=0.2)
    return outcome.indexed[0].partition_key


def screenshot(chromium: str, url: str, path: Path, profile: Path) -> None:
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={profile}", f"--window-size={WINDOW}",
         f"--virtual-time-budget={PAGE_TIME_BUDGET_MS}", f"--screenshot={path}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path(".rag/screenshots"))
    out_dir: Path = parser.parse_args().out_dir
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH (Debian: apt-get install chromium)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rag-ui-") as scratch:
        home = Path(scratch) / "rag"
        with TansuBroker(log_path=Path(scratch) / "tansu.log") as broker:
            os.environ |= {
                "RAG_HOME": str(home),
                "RAG_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "HF_HUB_OFFLINE": "1",
            }
            get_settings.cache_clear()
            settings = get_settings()
            streamed_partition = build_platform(settings)
            log = Path(scratch) / "webserver.log"
            print("starting the Dagster webserver", flush=True)
            with LocalDagsterWebserver(
                settings, code_location=CODE_LOCATION_MODULE, probe_job=INDEXING_JOB, log_path=log
            ) as webserver:
                for name, page in pages(streamed_partition).items():
                    path = out_dir / f"{name}.png"
                    screenshot(chromium, f"{webserver.url}/{page}", path, Path(scratch) / "chrome")
                    print(f"{path}  ({webserver.url}/{page})", flush=True)


if __name__ == "__main__":
    main()
