"""The orchestration port: what the CLI and the API ask of the orchestrator (index these
sources, backfill the index, carry out an erasure request, build the warehouse's models and
announce their row changes), so neither imports it.

Two implementations, chosen by `RAG_ORCHESTRATOR`:
- `in_process` (the embedded default, `ragctl` and tests): runs execute in the caller's
  process, recorded in the instance under DAGSTER_HOME. It lives with the code location
  (`rag_assets.orchestration`) and is loaded by name, so a caller imports Dagster only when
  it first asks for a run.
- `dagster` (production): runs are launched on the Dagster webserver at `RAG_DAGSTER_URL`
  through its GraphQL API: queued in its instance, shown in its UI, carried on whatever
  becomes of the caller (an API restart included).

Either way a failed erasure fails its request, with the reason, and the failure is raised.
"""

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from rag_core.adapters.catalog import all_manifests, discover
from rag_core.adapters.dagster_webserver import DagsterWebserver, JobAddress
from rag_core.adapters.objectstore import ObjectStore
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureRequest
from rag_core.flows.pipeline import retire_documents
from rag_core.services import chunk_index, object_store
from rag_core.settings import Settings
from rag_core.sources import SOURCES

if TYPE_CHECKING:
    from rag_core.flows.streaming import BatchOutcome

# The code location and the names in it that runs are addressed by (rag_assets defines them
# from these).
CODE_LOCATION_MODULE = "rag_assets.definitions"
IN_PROCESS_ORCHESTRATOR = "rag_assets.orchestration:InProcessOrchestrator"
INDEXING_JOB = "ingest_documents"
ERASURE_JOB = "rtbf"
ERASURE_ASSET = "erasure_request"
WAREHOUSE_BUILD_JOB = "build_warehouse"
WAREHOUSE_ANNOUNCE_JOB = "announce_warehouse_rows"
VERSION_PARTITIONS = "document_versions"
# Dagster's run tags for one partition and for a range of them (no public constant has them).
PARTITION_TAG = "dagster/partition"
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


class RunFailed(RuntimeError):
    """A run the orchestrator carried out failed; the message says which and why."""


class Orchestrator(Protocol):
    """Each call returns once its run has finished, and raises what failed it. A submitted run
    can be left to finish on its own (`wait=False`); a run in process always is waited for."""

    def index_sources(
        self, source_keys: Sequence[str] | None = None, *, wait: bool = True
    ) -> list[str]:
        """Index the new versions of the given sources (all when None) in one run; returns
        their partition keys."""
        ...

    def backfill(self, *, wait: bool = True) -> list[str]:
        """Rebuild the index from the sources as they are now in one run; returns the
        partition keys rebuilt."""
        ...

    def erase(self, request_id: str, *, wait: bool = True) -> ErasureRequest:
        """Carry out (or resume) a submitted erasure request; returns it as it then stands."""
        ...

    def build_warehouse(self, *, wait: bool = True) -> str:
        """`dbt build` the warehouse's models (and run their tests) in one run, which
        materializes their assets; returns the run's id."""
        ...

    def announce_warehouse_rows(self, *, wait: bool = True) -> str:
        """Announce the row changes of the warehouse's models since the last announcement
        on Kafka, in one run, which materializes `warehouse_row_events`; returns its id."""
        ...

    def streaming_recorder(self) -> Callable[["BatchOutcome"], None]:
        """How the streaming worker records what it indexed in the orchestrator."""
        ...

    def prepare_instance(self) -> None:
        """Create the instance's storage before its servers start and race to migrate it."""
        ...


def orchestrator_for(settings: Settings) -> Orchestrator:
    if settings.orchestrator == "dagster":
        return SubmittedOrchestrator(settings, DagsterWebserver(settings.dagster_url))
    return _in_process(settings)


def _in_process(settings: Settings) -> Orchestrator:
    module, _, name = IN_PROCESS_ORCHESTRATOR.partition(":")
    orchestrator: Orchestrator = getattr(importlib.import_module(module), name)(settings)
    return orchestrator


@contextmanager
def failing_the_request(store: ObjectStore, request_id: str) -> Iterator[None]:
    """A run that fails before the erasure takes the request up (it cannot be launched, or
    cannot start) fails the request, with the reason. Once taken up, the erasure records its
    own failures, and a crash between its checkpoints leaves the request running, to resume."""
    try:
        yield
    except Exception as failure:
        request = erasure.load(store, request_id)
        if request is not None and request.status == "pending":
            erasure.fail(store, request, failure)
        raise


def erasure_run_config(request_id: str) -> dict[str, Any]:
    """Run config of the erasure job that carries out a submitted request."""
    return {"ops": {ERASURE_ASSET: {"config": {"resume_request_id": request_id}}}}


def requested_erasure(run_config: Mapping[str, Any]) -> str | None:
    """The request id an erasure run was launched to carry out (`erasure_run_config`), if
    its config names one."""
    config = run_config.get("ops", {}).get(ERASURE_ASSET, {}).get("config", {})
    request_id = config.get("resume_request_id")
    return request_id if isinstance(request_id, str) else None


def partition_range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags of one run over `keys`, which must be contiguous in partition order."""
    return {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}


def sources_as_they_are(settings: Settings) -> list[str]:
    """Bring the store in line with the sources before a backfill: render every connected
    source's records into documents and retire documents whose source is gone. Returns the
    partition keys of every current version."""
    store = object_store(settings)
    for source in SOURCES:
        if source.configured(settings):
            source.sync_documents(store, settings)
    current = discover(store)
    stale = {manifest.doc_id for manifest in all_manifests(store)} - {v.doc_id for v in current}
    retire_documents(store, chunk_index(settings), sorted(stale))
    return [version.partition_key for version in current]


class SubmittedOrchestrator:
    """Runs launched on a running Dagster webserver. The streaming worker and `ragctl dev` run
    beside the instance and record in it themselves, as in process."""

    def __init__(self, settings: Settings, webserver: DagsterWebserver) -> None:
        self.settings = settings
        self.webserver = webserver

    def index_sources(
        self, source_keys: Sequence[str] | None = None, *, wait: bool = True
    ) -> list[str]:
        versions = discover(object_store(self.settings), source_keys)
        job = self.webserver.find_job(INDEXING_JOB)
        new_keys = self.webserver.add_partitions(
            job, VERSION_PARTITIONS, [version.partition_key for version in versions]
        )
        self._index(job, new_keys, wait)
        return new_keys

    def backfill(self, *, wait: bool = True) -> list[str]:
        current = sources_as_they_are(self.settings)
        job = self.webserver.find_job(INDEXING_JOB)
        self.webserver.add_partitions(job, VERSION_PARTITIONS, current)
        stale = set(self.webserver.partition_keys(job)) - set(current)
        self.webserver.delete_partitions(job, VERSION_PARTITIONS, sorted(stale))
        ordered = self.webserver.partition_keys(job)
        self._index(job, ordered, wait)
        return ordered

    def _index(self, job: JobAddress, keys: Sequence[str], wait: bool) -> None:
        if not keys:
            return
        run_id = self.webserver.launch_run(job, tags=partition_range_tags(keys))
        if wait and (status := self.webserver.wait_for_run(run_id)) != "SUCCESS":
            raise RunFailed(f"indexing run {run_id} ended {status}; its events are in the UI")

    def erase(self, request_id: str, *, wait: bool = True) -> ErasureRequest:
        store = object_store(self.settings)
        with failing_the_request(store, request_id):
            job = self.webserver.find_job(ERASURE_JOB)
            run_id = self.webserver.launch_run(job, erasure_run_config(request_id))
            if wait:
                self._erasure_finished(store, request_id, run_id)
        request = erasure.load(store, request_id)
        assert request is not None
        return request

    def _erasure_finished(self, store: ObjectStore, request_id: str, run_id: str) -> None:
        """Raise the request's own reason when its run failed, else the run's end."""
        status = self.webserver.wait_for_run(run_id)
        if status != "SUCCESS":
            request = erasure.load(store, request_id)
            reason = request.error if request and request.status == "failed" else None
            raise RunFailed(reason or f"erasure run {run_id} ended {status}")

    def build_warehouse(self, *, wait: bool = True) -> str:
        return self._warehouse_run(WAREHOUSE_BUILD_JOB, wait)

    def announce_warehouse_rows(self, *, wait: bool = True) -> str:
        return self._warehouse_run(WAREHOUSE_ANNOUNCE_JOB, wait)

    def _warehouse_run(self, job_name: str, wait: bool) -> str:
        run_id = self.webserver.launch_run(self.webserver.find_job(job_name))
        if wait and (status := self.webserver.wait_for_run(run_id)) != "SUCCESS":
            raise RunFailed(f"{job_name} run {run_id} ended {status}; its events are in the UI")
        return run_id

    def streaming_recorder(self) -> Callable[["BatchOutcome"], None]:
        return _in_process(self.settings).streaming_recorder()

    def prepare_instance(self) -> None:
        _in_process(self.settings).prepare_instance()
