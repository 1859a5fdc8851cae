"""The orchestration port carried out in the caller's process: the embedded default, what
`ragctl` and the tests use. Runs are recorded in the instance under DAGSTER_HOME, so the
Dagster UI shows them like any other (rag_core.flows.orchestration has the port)."""

from collections.abc import Callable, Sequence
from contextlib import redirect_stdout

import dagster as dg

from rag_assets.definitions import run_in_process
from rag_assets.ingest import (
    QUIET_CONSOLE,
    backfill_index,
    ingest_sources,
    local_instance,
    step_errors,
)
from rag_assets.streaming import InstanceRecorder, StreamedIndexChecks
from rag_core import services
from rag_core.adapters.warehouse.dbt import dbt_paths
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureRequest
from rag_core.flows.orchestration import (
    ERASURE_JOB,
    WAREHOUSE_ANNOUNCE_JOB,
    WAREHOUSE_BUILD_JOB,
    RunFailed,
    erasure_run_config,
    failing_the_request,
)
from rag_core.flows.streaming import BatchOutcome
from rag_core.settings import Settings


def execute(settings: Settings, instance: dg.DagsterInstance, request_id: str) -> ErasureRequest:
    """Run (or resume) a submitted request through the `rtbf` job; raises what failed it,
    which the request records as its reason."""
    store = services.object_store(settings)
    with failing_the_request(store, request_id):
        try:
            run_in_process(
                ERASURE_JOB, settings, instance, run_config=erasure_run_config(request_id)
            )
        except dg.DagsterError as failed_run:
            request = erasure.load(store, request_id)
            if request is not None and request.status == "failed":  # by the blocking check
                raise RuntimeError(request.error) from failed_run
            raise RuntimeError(_reason(failed_run)) from failed_run
    request = erasure.load(store, request_id)
    assert request is not None
    return request


def _reason(failed_run: dg.DagsterError) -> str:
    """Dagster's message, and the user code's own when Dagster wraps it (a resource that
    could not start)."""
    cause = failed_run.__cause__
    return f"{failed_run}: {type(cause).__name__}: {cause}" if cause else str(failed_run)


def warehouse_run(settings: Settings, instance: dg.DagsterInstance, job_name: str) -> str:
    """Run one of the warehouse's jobs (`dbt build`, the row announcement); returns the run's
    id. dbt's output, which dagster-dbt echoes on stdout, goes to `dbt/logs/build.log` under
    RAG_HOME (a failure's own errors are in the exception)."""
    _, log_dir = dbt_paths(settings)
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "build.log").open("a") as log, redirect_stdout(log):
        result = run_in_process(
            job_name, settings, instance, raise_on_error=False, run_config=QUIET_CONSOLE
        )
    if not result.success:
        errors = "; ".join(step_errors(result))
        raise RunFailed(f"{job_name} run {result.run_id} failed: {errors}")
    return result.run_id


class InProcessOrchestrator:
    """Every call runs to the end here, whatever `wait` says."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def index_sources(
        self, source_keys: Sequence[str] | None = None, *, wait: bool = True
    ) -> list[str]:
        with local_instance(self.settings) as instance:
            return ingest_sources(self.settings, instance, source_keys)

    def backfill(self, *, wait: bool = True) -> list[str]:
        with local_instance(self.settings) as instance:
            return backfill_index(self.settings, instance)

    def erase(self, request_id: str, *, wait: bool = True) -> ErasureRequest:
        with local_instance(self.settings) as instance:
            return execute(self.settings, instance, request_id)

    def build_warehouse(self, *, wait: bool = True) -> str:
        with local_instance(self.settings) as instance:
            return warehouse_run(self.settings, instance, WAREHOUSE_BUILD_JOB)

    def announce_warehouse_rows(self, *, wait: bool = True) -> str:
        with local_instance(self.settings) as instance:
            return warehouse_run(self.settings, instance, WAREHOUSE_ANNOUNCE_JOB)

    def streaming_recorder(self) -> Callable[[BatchOutcome], None]:
        instance = local_instance(self.settings)
        checks = StreamedIndexChecks(
            instance,
            services.chunk_index(self.settings),
            services.embedder(self.settings).dimension,  # the worker's model, loaded once
        )
        return InstanceRecorder(
            instance, self.settings.freshness_sla_seconds, checks, api_url=self.settings.api_url
        )

    def prepare_instance(self) -> None:
        with local_instance(self.settings) as instance:
            instance.get_runs(limit=1)
