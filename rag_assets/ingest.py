"""Bulk ingestion in one Dagster run: what `ragctl ingest` and benchmarks call.

New versions become partitions, then a single run materializes them all, recorded in the
same instance the Dagster UI reads, so the runs show there like any other.
"""

from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._utils.error import SerializableErrorInfo

from rag_assets.definitions import build_defs
from rag_assets.documents import PARTITIONS_NAME, ingest_documents
from rag_assets.resources import RagResource
from rag_core.adapters import warehouse
from rag_core.domain.documents import discover
from rag_core.flows.pipeline import retire_documents
from rag_core.services import chunk_index, object_store
from rag_core.settings import Settings

DEFAULT_INSTANCE_CONFIG = """\
# Embedded instance: SQLite under this folder; the README shows PostgreSQL for production.
telemetry:
  enabled: false
"""


def local_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance under DAGSTER_HOME, created with the embedded defaults when absent."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DEFAULT_INSTANCE_CONFIG)
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def register_versions(instance: dg.DagsterInstance, keys: Sequence[str]) -> list[str]:
    """Add partitions for keys the instance lacks; returns the added keys in order."""
    known = set(instance.get_dynamic_partitions(PARTITIONS_NAME))
    new_keys = list(dict.fromkeys(key for key in keys if key not in known))
    if new_keys:
        instance.add_dynamic_partitions(PARTITIONS_NAME, new_keys)
    return new_keys


def _root_cause(error: SerializableErrorInfo) -> str:
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


class IndexingRunFailed(RuntimeError):
    """The indexing run failed; the message carries the failed steps' errors."""


def materialize_versions(
    settings: Settings, instance: dg.DagsterInstance, keys: Sequence[str]
) -> None:
    """Run the indexing job once over `keys`, which must be contiguous in partition order
    (as freshly registered keys are)."""
    if not keys:
        return
    job = build_defs(RagResource.for_settings(settings)).resolve_job_def(ingest_documents.name)
    result = job.execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
        raise_on_error=False,
        # Events go to the instance either way; keep the console for the caller's own output.
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        errors = [
            f"{event.step_key}: {_root_cause(event.step_failure_data.error)}"
            for event in result.get_step_failure_events()
            if event.step_failure_data.error
        ]
        raise IndexingRunFailed(f"indexing run {result.run_id} failed: " + "; ".join(errors))


def ingest_sources(
    settings: Settings, instance: dg.DagsterInstance, source_keys: Sequence[str] | None = None
) -> list[str]:
    """Discover versions of the given sources (all when None), index the new ones in one run,
    and return their partition keys."""
    versions = discover(object_store(settings), source_keys)
    new_keys = register_versions(instance, [v.partition_key for v in versions])
    materialize_versions(settings, instance, new_keys)
    return new_keys


def backfill_index(settings: Settings, instance: dg.DagsterInstance) -> list[str]:
    """Rebuild the index from the sources as they are now: render the warehouse's rows into
    documents, retire documents whose source is gone, and run every current version through
    every asset in one run (artifacts are rewritten; rows already right stay untouched).
    Returns the partition keys rebuilt."""
    store = object_store(settings)
    if warehouse.configured(settings):
        warehouse.sync_documents(store, settings)
    current = discover(store)
    current_docs = {version.doc_id for version in current}
    stale = sorted({obj.key.split("/")[1] for obj in store.list("manifests")} - current_docs)
    retire_documents(store, chunk_index(settings), stale)
    keys = [version.partition_key for version in current]
    register_versions(instance, keys)
    for key in set(instance.get_dynamic_partitions(PARTITIONS_NAME)) - set(keys):
        instance.delete_dynamic_partition(PARTITIONS_NAME, key)
    ordered = instance.get_dynamic_partitions(PARTITIONS_NAME)
    materialize_versions(settings, instance, ordered)
    return list(ordered)
