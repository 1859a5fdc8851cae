"""The orchestration port: serving never imports the orchestrator, and with
`RAG_ORCHESTRATOR=dagster` its runs are launched on a real Dagster webserver, where they show
as runs of the instance."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from fastapi.testclient import TestClient
from test_erasure import BADGES, SUBJECT

from rag_assets.ingest import local_instance
from rag_assets.orchestration import InProcessOrchestrator
from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.adapters.local_servers import LocalDagsterWebserver
from rag_core.domain.documents import SourceMetadata
from rag_core.flows.orchestration import (
    CODE_LOCATION_MODULE,
    ERASURE_JOB,
    INDEXING_JOB,
    SubmittedOrchestrator,
    orchestrator_for,
)
from rag_core.settings import Settings
from rag_serving.main import create_app

SERVING = Path(__file__).resolve().parents[1] / "rag_serving"
# Runs start as soon as they are launched, with no daemon to dequeue them.
INSTANCE_CONFIG = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""


def test_serving_imports_no_orchestrator() -> None:
    """The API and the CLI start without Dagster or the code location (a fresh interpreter,
    as `uvicorn` and `ragctl` start)."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, rag_serving.main, rag_serving.cli; "
         "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'rag_assets'}))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert loaded.strip() == "[]"


def test_serving_never_names_the_code_location() -> None:
    naming = [p for p in SERVING.rglob("*.py") if "rag_assets" in p.read_text()]
    assert naming == []


def test_the_setting_picks_the_orchestrator(tmp_path: Path) -> None:
    assert isinstance(orchestrator_for(Settings(home=tmp_path)), InProcessOrchestrator)
    submitted = orchestrator_for(Settings(home=tmp_path, orchestrator="dagster"))
    assert isinstance(submitted, SubmittedOrchestrator)
    assert submitted.webserver.url == "http://127.0.0.1:3000"


@pytest.fixture
def webserver(rag_home: Settings, tmp_path: Path) -> Iterator[LocalDagsterWebserver]:
    rag_home.dagster_home.mkdir(parents=True)
    (rag_home.dagster_home / "dagster.yaml").write_text(INSTANCE_CONFIG)
    with LocalDagsterWebserver(
        rag_home,
        code_location=CODE_LOCATION_MODULE,
        probe_jobs=[ERASURE_JOB],
        log_path=tmp_path / "webserver.log",
    ) as server:
        yield server


def _finished(client: TestClient, request_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = client.get(f"/v1/erasure-requests/{request_id}").json()
        if request["status"] in ("completed", "failed"):
            return dict(request)
        time.sleep(1)
    raise AssertionError(f"erasure request {request_id} did not finish in time")


@pytest.mark.slow
def test_indexing_and_an_erasure_over_rest_are_runs_of_the_instance(
    rag_home: Settings, webserver: LocalDagsterWebserver
) -> None:
    settings = rag_home.model_copy(
        update={"orchestrator": "dagster", "dagster_url": webserver.client.url}
    )
    store = services.object_store(settings)
    put_source(store, BADGES, b"# Badges\n\nOrla keeps the violet lanyard registry.\n",
               SourceMetadata(subjects=[SUBJECT]))  # fmt: skip

    [key] = orchestrator_for(settings).index_sources()
    assert webserver.client.partition_keys(webserver.client.find_job(INDEXING_JOB)) == [key]
    with TestClient(create_app(settings)) as client:
        accepted = client.post("/v1/erasure-requests", json={"subject": SUBJECT}).json()
        done = _finished(client, accepted["request_id"])

    assert done["status"] == "completed" and done["matched_documents"] == 1, done
    assert all(done["verification"].values())
    with local_instance(settings) as instance:
        runs = {r.dagster_run.job_name: r.dagster_run for r in instance.get_run_records()}
        assert set(runs) == {INDEXING_JOB, ERASURE_JOB}
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values())
        erasure_config = runs[ERASURE_JOB].run_config["ops"]["erasure_request"]["config"]
        assert erasure_config == {"resume_request_id": accepted["request_id"]}
        assert instance.get_dynamic_partitions("document_versions") == []
