"""Right to be forgotten in Dagster: the `rtbf` job (launchable from the UI with a config form)
materializes `erasure_request`, which erases one request along the lineage, and its blocking
asset check `absence_verified` proves the absence; the request completes only when that
check passes. Every entry point (`ragctl forget`, the REST API) runs this job, through the
orchestration port (in process, or submitted to a running Dagster).

The asset walks the code location's asset graph downstream from `raw_document` (the lineage
the code location provides as the `erasure_lineage` resource) and erases at every asset it
finds, serving end first; an asset without an eraser fails the run and the request before
anything is erased, so a new pipeline stage cannot silently keep erased data.

The check receives the asset's value from memory (the job runs in one process): the phrases
searched for were read from the erased documents, and must never reach Dagster's storage.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from rag_assets.documents import ASSET_STAGES, PARTITIONS_NAME, raw_document
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.adapters.cache import build_response_cache
from rag_core.domain.layout import Stage
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureScope, ErasureTarget
from rag_core.flows.orchestration import (
    ERASURE_ASSET,
    ERASURE_JOB,
    RunFailed,
    failing_the_request,
    requested_erasure,
)

ERASURE_MEMORY = "erasure_memory"
LINEAGE = "erasure_lineage"  # the stages to erase, serving end first (definitions.py)


@dataclass(frozen=True)
class ErasedRequest:
    request_id: str
    phrases: list[str]


def forget_partitions(instance: dg.DagsterInstance, target: ErasureTarget) -> None:
    """Drop the versions' partitions. Their past materialization events stay in Dagster's
    event log, which it cannot erase per partition; they hold opaque ids and counts only
    (docs/erasure.md)."""
    erased = set(target.partitions)
    for key in erased & set(instance.get_dynamic_partitions(PARTITIONS_NAME)):
        instance.delete_dynamic_partition(PARTITIONS_NAME, key)


def partitions_left(instance: dg.DagsterInstance, target: ErasureTarget) -> bool:
    return bool(set(target.partitions) & set(instance.get_dynamic_partitions(PARTITIONS_NAME)))


def lineage_stages(specs: Iterable[dg.AssetSpec]) -> tuple[Stage, ...]:
    """The stages of the assets downstream of raw_document (itself included) among a code
    location's assets, serving end first."""
    children: dict[dg.AssetKey, list[dg.AssetKey]] = defaultdict(list)
    for spec in specs:
        for dep in spec.deps:
            children[dep.asset_key].append(spec.key)
    order: list[dg.AssetKey] = []
    frontier = [raw_document.key]
    while frontier:
        key = frontier.pop(0)
        if key in order:
            continue
        order.append(key)
        frontier += sorted(children[key])
    missing = [key.to_user_string() for key in order if key not in ASSET_STAGES]
    if missing:
        raise RuntimeError(f"no eraser for downstream assets: {', '.join(missing)}")
    return tuple(ASSET_STAGES[key] for key in reversed(order))


class ErasureConfig(dg.Config):
    doc_ids: list[str] = Field(default_factory=list)
    source_prefix: str | None = None
    subject: str | None = None
    requested_by: str = "dagster"
    untag_versions: bool = False
    resume_request_id: str | None = None


@dg.asset(name=ERASURE_ASSET, io_manager_key=ERASURE_MEMORY, group_name="governance")
def erasure_request(
    context: dg.AssetExecutionContext,
    config: ErasureConfig,
    rag: RagResource,
    erasure_lineage: dg.ResourceParam[Callable[[], tuple[Stage, ...]]],
) -> dg.Output[ErasedRequest]:
    """One right-to-be-forgotten request, erased along the lineage (new, or resumed by id).
    Its metadata holds the request id and counts, never what was erased."""
    settings, store = rag.settings(), rag.store()
    request_id = (
        config.resume_request_id
        or erasure.submit(
            store,
            ErasureScope(
                doc_ids=config.doc_ids, source_prefix=config.source_prefix, subject=config.subject
            ),
            config.requested_by,
            untag_versions=config.untag_versions,
        ).request_id
    )
    with failing_the_request(store, request_id):  # a lineage without an eraser, say
        request, phrases = erasure.erase(
            settings,
            store,
            services.chunk_index(settings),
            build_response_cache(settings),
            request_id,
            stage_order=erasure_lineage(),
            on_erased=lambda target: forget_partitions(context.instance, target),
        )
    metadata: dict[str, Any] = {
        "request_id": request_id,
        "matched_documents": request.matched_documents,
    }
    metadata |= {f"erased/{place}": count for place, count in request.erased.items()}
    return dg.Output(ErasedRequest(request_id, phrases), metadata=metadata)


@dg.asset_check(asset=erasure_request, blocking=True)
def absence_verified(
    context: dg.AssetCheckExecutionContext, rag: RagResource, erasure_request: ErasedRequest
) -> dg.AssetCheckResult:
    """Nothing of the erased documents is left in any index version, artifact, source,
    cache entry, warehouse table or Dagster partition, no byte of their ids, source keys or
    subject in the local cache files or the producers' bookmarks, and a search for their
    phrases finds none of them. Completes the request when it passes, fails it otherwise."""
    settings, store = rag.settings(), rag.store()
    request = erasure.load(store, erasure_request.request_id)
    assert request is not None and request.target is not None
    if request.status != "completed":
        checks = erasure.verify(
            settings,
            store,
            services.chunk_index(settings),
            build_response_cache(settings),
            request,
            erasure_request.phrases,
        )
        checks["dagster_partitions"] = not partitions_left(context.instance, request.target)
        erasure.conclude(store, request, checks)
    metadata: dict[str, Any] = {"request_id": request.request_id, **request.verification}
    return dg.AssetCheckResult(passed=request.status == "completed", metadata=metadata)


rtbf = dg.define_asset_job(
    ERASURE_JOB,
    selection=dg.AssetSelection.assets(erasure_request),
    executor_def=dg.in_process_executor,
    description="Right to be forgotten: erase one request, verify by asset check, audit.",
)


@dg.run_failure_sensor(monitored_jobs=[rtbf], default_status=dg.DefaultSensorStatus.RUNNING)
def erasure_run_failures(context: dg.RunFailureSensorContext, rag: RagResource) -> None:
    """A submitted erasure whose run failed before its asset took the request up (the run
    could not start, its process died) would leave the request `pending` for ever: fail it,
    with the run's reason, so its status and the audit trail say so. Once taken up, the
    erasure records its own failures."""
    request_id = requested_erasure(context.dagster_run.run_config)
    store = rag.store()
    request = erasure.load(store, request_id) if request_id else None
    if request is not None and request.status == "pending":
        reason = context.failure_event.message or f"run {context.dagster_run.run_id} failed"
        erasure.fail(store, request, RunFailed(reason))
        context.log.info("erasure request %s failed with its run", request_id)


defs = dg.Definitions(
    assets=[erasure_request],
    asset_checks=[absence_verified],
    jobs=[rtbf],
    sensors=[erasure_run_failures],
    resources={ERASURE_MEMORY: dg.InMemoryIOManager()},
)
