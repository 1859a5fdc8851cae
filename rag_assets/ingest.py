"""Bulk ingestion in one Dagster run: what the in-process orchestrator and benchmarks call.

New versions become partitions, then a single run materializes them all, recorded in the
same instance the Dagster UI reads, so the runs show there like any other.
"""

from collections.abc import Sequence

import dagster as dg

from rag_assets.definitions import run_in_process
from rag_assets.documents import PARTITIONS_NAME
from rag_core.adapters.catalog import discover
from rag_core.flows.orchestration import (
    INDEXING_JOB,
    RunFailed,
    partition_range_tags,
    sources_as_they_are,
)
from rag_core.services import object_store
from rag_core.settings import Settings

DEFAULT_INSTANCE_CONFIG = """\
# Embedded instance: SQLite under this folder; the README shows PostgreSQL for production.
telemetry:
  enabled: false
# No "Join the Dagster community" pop-up over the UI of a new instance.
nux:
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


# Events go to the instance either way; keep the console for the caller's own output.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """The root error of each failed step, which says more than the errors wrapping it."""
    errors = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            errors.append(f"{event.step_key}: {error.message.strip()}")
    return errors


class IndexingRunFailed(RunFailed):
    """The indexing run failed; the message carries the failed steps' errors."""


def materialize_versions(
    settings: Settings, instance: dg.DagsterInstance, keys: Sequence[str]
) -> None:
    """Run the indexing job once over `keys`, which must be contiguous in partition order
    (as freshly registered keys are)."""
    if not keys:
        return
    result = run_in_process(
        INDEXING_JOB,
        settings,
        instance,
        tags=partition_range_tags(keys),
        raise_on_error=False,
        run_config=QUIET_CONSOLE,
    )
    if not result.success:
        errors = "; ".join(step_errors(result))
        raise IndexingRunFailed(f"indexing run {result.run_id} failed: {errors}")


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
    """Rebuild the index from the sources as they are now: every current version through
    every asset in one run (artifacts are rewritten; rows already right stay untouched), the
    partitions of versions no longer current dropped. Returns the partition keys rebuilt."""
    keys = sources_as_they_are(settings)
    register_versions(instance, keys)
    for key in set(instance.get_dynamic_partitions(PARTITIONS_NAME)) - set(keys):
        instance.delete_dynamic_partition(PARTITIONS_NAME, key)
    ordered = instance.get_dynamic_partitions(PARTITIONS_NAME)
    materialize_versions(settings, instance, ordered)
    return list(ordered)
