"""Screenshots of the Dagster UI pages a person operates the platform from, and of the API's
docs, taken with headless Chromium on a temporary platform built as `make run` builds one: the
sample corpus ingested in a run, the warehouse's models built and their rows announced in
runs (`ragctl warehouse build`, then `ragctl dev` starting), then one change streamed through
the warm worker (runless materializations, with the index checks), and the nightly evaluation
of the last two days (extractive answers), so its events page plots two points. The API then serves
the same home for its `/docs` and `/redoc` pages.

    make screenshots    # or: .venv/bin/python scripts/ui_screenshots.py [OUT_DIR]

OUT_DIR defaults to docs/screenshots, where the guides link them.

Needs the `chromium` binary (Debian: `apt-get install chromium`), which Playwright (a dev
dependency) drives: no browser is downloaded. Everything runs on
loopback in a temporary folder, removed at the end; only the PNGs stay.
"""

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import ViewportSize, sync_playwright

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
from rag_serving.local_api import LocalApiServer

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = REPO / "sample_corpus"
STREAMED_SOURCE = "documents/handbook/visitor-parking.md"
STREAMED_TEXT = b"# Visitor parking\n\nVisitors park in the blue garage on level three.\n"
VIEWPORT: ViewportSize = {"width": 1600, "height": 1000}
# No network here but loopback: nothing of Chromium's own may reach out.
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--no-sandbox"]  # fmt: skip
# Milliseconds the UI gets to draw once its requests have settled.
SETTLE_MS = 1500


@dataclass(frozen=True)
class Page:
    path: str
    click: str | None = None  # the text of a button to press first (a view toggle)


API_PAGES = {"api-docs": Page("docs"), "api-redoc": Page("redoc")}


def dagster_pages(streamed_partition: str) -> dict[str, Page]:
    """File name → page of the UI: the pages a person looks at first, on the streamed
    version's partition and an index check it was checked by."""
    return {
        "asset-graph": Page(
            f"locations/__repository__@{CODE_LOCATION_MODULE}/asset-groups/documents"
        ),
        "evaluation-plots": Page("assets/evaluation", click="Plots"),
        "index-partitions": Page(f"assets/index?view=partitions&partition={streamed_partition}"),
        "index-checks": Page("assets/index?view=checks&checkDetail=rows_match_live_chunks"),
        "warehouse-model": Page("assets/support_ticket_documents"),
        "warehouse-row-events": Page("assets/warehouse_row_events"),
        "index-partition-metadata": Page(
            f"assets/index?view=events&partition={streamed_partition}"
        ),
        "runs": Page("runs"),
        "evaluation-events": Page("assets/evaluation?view=events"),
        "evaluation-checks": Page("assets/evaluation?view=checks"),
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


def take(chromium: str, sites: list[tuple[str, dict[str, Page]]], out_dir: Path) -> None:
    """Each page of each site (base URL, pages) in Debian's Chromium, driven by Playwright."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport=VIEWPORT)
        for base_url, pages in sites:
            for name, page in pages.items():
                url = f"{base_url}/{page.path}"
                tab.goto(url, wait_until="networkidle")
                if page.click:
                    tab.get_by_role("button").filter(has_text=page.click).click()
                    tab.wait_for_load_state("networkidle")
                tab.wait_for_timeout(SETTLE_MS)
                tab.screenshot(path=out_dir / f"{name}.png")
                print(f"{out_dir / name}.png  ({url})", flush=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=REPO / "docs" / "screenshots")
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
            print("starting the Dagster webserver and the API", flush=True)
            with (
                LocalDagsterWebserver(
                    settings,
                    code_location=CODE_LOCATION_MODULE,
                    probe_jobs=[INDEXING_JOB],
                    log_path=Path(scratch) / "webserver.log",
                ) as webserver,
                LocalApiServer(home, log_path=Path(scratch) / "api.log") as api,
            ):
                sites = [(webserver.url, dagster_pages(streamed_partition)), (api.url, API_PAGES)]
                take(chromium, sites, out_dir)


if __name__ == "__main__":
    main()
