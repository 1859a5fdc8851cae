"""Right to be forgotten in Dagster: the `rtbf` job (launchable from the UI with a config form)
and the one executor every entry point shares (`ragctl forget`, the REST API, the job).

The job walks the asset graph downstream from `raw_document` and erases at every asset it
finds, serving end first; an asset without an eraser fails the run before anything is
erased, so a new pipeline stage cannot silently keep erased data.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from rag_assets.documents import PARTITIONS_NAME, raw_document
from rag_assets.resources import RagResource
from rag_core import erasure, services
from rag_core.cache import build_response_cache
from rag_core.erasure import ErasureRequest, ErasureScope, ErasureTarget
from rag_core.settings import Settings


def forget_partitions(instance: dg.DagsterInstance, target: ErasureTarget) -> dict[str, bool]:
    """Drop the versions' partitions; returns the check that none is left.

    Dagster's open-source event storages cannot wipe one partition's history (SQLite and
    PostgreSQL raise NotImplementedError), so the history stays, and names nothing by
    construction: partition keys and run tags are opaque hashes, and asset metadata holds
    counts and error kinds, never file names or text."""
    erased = set(target.partitions)
    for key in erased & set(instance.get_dynamic_partitions(PARTITIONS_NAME)):
        instance.delete_dynamic_partition(PARTITIONS_NAME, key)
    left = erased & set(instance.get_dynamic_partitions(PARTITIONS_NAME))
    return {"dagster_partitions": not left}


def execute(
    settings: Settings,
    instance: dg.DagsterInstance,
    request_id: str,
    stage_order: tuple[str, ...] = tuple(reversed(erasure.STAGE_ORDER)),
) -> ErasureRequest:
    return erasure.run(
        settings,
        services.object_store(settings),
        services.chunk_index(settings),
        build_response_cache(settings),
        request_id,
        stage_order=stage_order,
        on_erased=lambda target: forget_partitions(instance, target),
    )


def lineage_stages(graph: Any) -> tuple[str, ...]:
    """Assets downstream of raw_document (itself included) in Dagster's asset graph,
    serving end first."""
    order: list[dg.AssetKey] = []
    frontier = [raw_document.key]
    while frontier:
        key = frontier.pop(0)
        if key in order:
            continue
        order.append(key)
        frontier += sorted(graph.get(key).child_keys)
    names = [key.to_user_string() for key in order]
    missing = [name for name in names if name not in erasure.STAGE_ARTIFACTS]
    if missing:
        raise RuntimeError(f"no eraser for downstream assets: {', '.join(missing)}")
    return tuple(reversed(names))


class ErasureConfig(dg.Config):
    doc_ids: list[str] = Field(default_factory=list)
    source_prefix: str | None = None
    subject: str | None = None
    requested_by: str = "dagster"
    untag_versions: bool = False
    resume_request_id: str | None = None


@dg.op
def erase(context: dg.OpExecutionContext, config: ErasureConfig, rag: RagResource) -> None:
    """Resolve the request, erase along the lineage, verify, audit."""
    settings = rag.settings()
    store = rag.store()
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
    from rag_assets.definitions import build_defs  # the code location this job belongs to

    stages = lineage_stages(build_defs(rag).resolve_asset_graph())
    request = execute(settings, context.instance, request_id, stages)
    context.log.info(
        f"erasure {request_id}: {request.matched_documents} documents, erased {request.erased}"
    )


@dg.job(description="Right to be forgotten: erase, verify and audit one request.")
def rtbf() -> None:
    erase()


defs = dg.Definitions(jobs=[rtbf])
