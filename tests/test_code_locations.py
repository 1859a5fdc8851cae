"""Production's two Dagster code locations (rag_assets.locations, docker/dagster-workspace.yaml):
`indexing`, and `governance`, which alone serves erasure so that Dagster runs its runs in the
container that has the erasure role. Erasure still walks the indexing assets' lineage."""

from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from test_orchestration import INSTANCE_CONFIG

from rag_assets import locations
from rag_assets.documents import ASSET_STAGES
from rag_assets.erasure import LINEAGE
from rag_assets.ingest import local_instance
from rag_core import services
from rag_core.adapters.local_servers import LocalDagsterWebserver
from rag_core.domain.layout import Stage
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureScope
from rag_core.flows.orchestration import (
    ERASURE_ASSET,
    ERASURE_JOB,
    INDEXING_JOB,
    SubmittedOrchestrator,
)
from rag_core.settings import Settings

# docker/dagster-workspace.yaml's locations, loaded from the module instead of gRPC servers.
WORKSPACE = """\
load_from:
  - python_module:
      module_name: rag_assets.locations
      attribute: indexing
      location_name: rag
  - python_module:
      module_name: rag_assets.locations
      attribute: governance
      location_name: rag-governance
"""
_SERVED = """query Served {
  repositoriesOrError { ... on RepositoryConnection {
    nodes { location { name } jobs { name } assetNodes { assetKey { path } } } } } }"""


def served(webserver: LocalDagsterWebserver) -> dict[str, dict[str, set[str]]]:
    """The jobs and assets of each location, by location name."""
    response = httpx.post(f"{webserver.url}/graphql", json={"query": _SERVED}, timeout=10)
    nodes: list[dict[str, Any]] = response.json()["data"]["repositoriesOrError"]["nodes"]
    return {
        node["location"]["name"]: {
            "jobs": {job["name"] for job in node["jobs"]},
            "assets": {"/".join(asset["assetKey"]["path"]) for asset in node["assetNodes"]},
        }
        for node in nodes
    }


def test_governance_serves_erasure_alone_along_the_indexing_lineage(rag_home: Settings) -> None:
    indexing, governance = locations.indexing(), locations.governance()
    indexing_assets = indexing.resolve_all_asset_keys()
    assert set(ASSET_STAGES) <= set(indexing_assets)
    assert dg.AssetKey(ERASURE_ASSET) not in indexing_assets
    assert ERASURE_JOB not in {job.name for job in indexing.resolve_all_job_defs()}
    assert LINEAGE not in (indexing.resources or {})
    assert governance.resolve_all_asset_keys() == [dg.AssetKey(ERASURE_ASSET)]
    assert governance.resolve_job_def(ERASURE_JOB).name == ERASURE_JOB
    lineage = (governance.resources or {})[LINEAGE]
    with dg.build_resources({LINEAGE: lineage}) as resources:
        # Every stage of the pipeline, serving end first, though none of its assets is here.
        assert getattr(resources, LINEAGE)() == tuple(reversed(Stage))


@pytest.mark.slow
def test_the_api_launches_erasure_in_the_governance_location(
    rag_home: Settings, tmp_path: Path
) -> None:
    """Both production locations on one webserver: `rtbf` is found in governance only, and
    the API's orchestrator launches it there, where the run erases and verifies."""
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(WORKSPACE)
    rag_home.dagster_home.mkdir(parents=True)
    (rag_home.dagster_home / "dagster.yaml").write_text(INSTANCE_CONFIG)
    store = services.object_store(rag_home)
    request = erasure.submit(store, ErasureScope(subject="nobody@example.com"), "tester")

    with LocalDagsterWebserver(
        rag_home,
        workspace=workspace,
        probe_jobs=[INDEXING_JOB, ERASURE_JOB],
        log_path=tmp_path / "webserver.log",
    ) as webserver:
        locations_served = served(webserver)
        assert ERASURE_JOB in locations_served["rag-governance"]["jobs"]
        assert ERASURE_JOB not in locations_served["rag"]["jobs"]
        assert locations_served["rag-governance"]["assets"] == {ERASURE_ASSET}
        assert ERASURE_ASSET not in locations_served["rag"]["assets"]
        assert webserver.client.find_job(ERASURE_JOB).location == "rag-governance"
        assert webserver.client.find_job(INDEXING_JOB).location == "rag"

        settings = rag_home.model_copy(update={"orchestrator": "dagster"})
        done = SubmittedOrchestrator(settings, webserver.client).erase(request.request_id)

    assert done.status == "completed" and all(done.verification.values()), done
    with local_instance(rag_home) as instance:
        [run] = [record.dagster_run for record in instance.get_run_records()]
        assert run.job_name == ERASURE_JOB
        assert run.remote_job_origin is not None
        assert run.remote_job_origin.location_name == "rag-governance"
