"""The streaming worker's record in Dagster: each version it indexes shows as materialized
partitions of every document asset (runless events; only `index` for an access change),
retired versions lose their partitions, and each batch reports the freshness check. The
index checks follow too, once the stream pauses (`StreamedIndexChecks`), so the latest
materialization of `index` is checked as a run's would be. Dagster stays the control plane,
without a run's start-up on the path from event to queryable."""

import time
from typing import Any

import dagster as dg

from rag_assets.documents import PARTITIONS_NAME, document_assets, index, index_checks
from rag_assets.events import freshness_result
from rag_assets.ingest import register_versions
from rag_core.domain.chunk_store import ChunkStore
from rag_core.domain.ids import partition_key
from rag_core.flows.documents import document_url
from rag_core.flows.streaming import BatchOutcome
from rag_core.telemetry import INDEX_CHECK_PASSED

# How long a stream that never pauses goes without its index checks.
CHECK_INTERVAL_SECONDS = 30.0


def report_check(instance: dg.DagsterInstance, result: dg.AssetCheckResult) -> None:
    """Record a check result of `index` computed outside a run, and show it in the worker's
    `rag_index_check_passed` gauge, where Prometheus reads it."""
    assert result.check_name is not None
    INDEX_CHECK_PASSED.labels(result.check_name).set(int(result.passed))
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=index.key,
            check_name=result.check_name,
            passed=result.passed,
            metadata=result.metadata,
            severity=result.severity,
            description=result.description,
        )
    )


class StreamedIndexChecks:
    """The `index` asset's checks on the streaming path. A batch that changed the table owes
    an evaluation, made on an idle poll: on a large table the checks read every row's ids
    (0.3 s for 200,000 chunks), which the batch's commit should not wait for. A stream that
    never pauses is checked in a batch once the evaluation is `interval_seconds` due.

    The idle poll waits for the clock to pass the second of the batch's materializations:
    SQLite storage stamps a runless evaluation to the second, and the UI takes one stamped
    no later than the latest materialization for a check of an earlier one ("Not Evaluated")."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        chunk_index: ChunkStore,
        dimension: int,
        interval_seconds: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.instance = instance
        self.chunk_index = chunk_index
        self.dimension = dimension
        self.interval_seconds = interval_seconds
        self._chunk_counts: dict[tuple[str, str], int] = {}
        self._due_since: float | None = None
        self._changed_at = 0.0  # wall clock, as the instance stamps events

    def after_batch(self, outcome: BatchOutcome) -> None:
        if outcome.indexed or outcome.retired:
            self._chunk_counts |= outcome.chunk_counts
            self._changed_at = time.time()
            if self._due_since is None:
                self._due_since = time.monotonic()
        due_since = self._due_since
        if due_since is not None and time.monotonic() - due_since >= self.interval_seconds:
            self.evaluate()

    def when_idle(self) -> None:
        if self._due_since is not None and int(time.time()) > self._changed_at:
            self.evaluate()

    def evaluate(self) -> None:
        live = self.chunk_index.live_versions()
        for result in index_checks(
            self.instance, self.chunk_index, self._chunk_counts, self.dimension, live
        ):
            report_check(self.instance, result)
        self._chunk_counts, self._due_since = {}, None


class InstanceRecorder:
    """Records each batch in the instance; with `checks`, the index checks too (without,
    they are left to the indexing runs); with `api_url`, each materialization links to its
    document's lookup route, as the indexing runs' do."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        sla_seconds: float,
        checks: StreamedIndexChecks | None = None,
        api_url: str | None = None,
    ):
        self.instance = instance
        self.sla_seconds = sla_seconds
        self.checks = checks
        self.api_url = api_url

    def __call__(self, outcome: BatchOutcome) -> None:
        lags = {(r.doc_id, r.version): r.lag_seconds for r in outcome.freshness}
        register_versions(self.instance, [m.partition_key for m in outcome.indexed])
        for manifest in outcome.indexed:
            lag = lags.get((manifest.doc_id, manifest.version))
            metadata: dict[str, Any] = {
                "indexed_by": "streaming worker",
                "chunks": outcome.chunk_counts.get((manifest.doc_id, manifest.version), 0),
                "bytes": manifest.size,
            }
            if lag is not None:
                metadata["freshness_lag_seconds"] = round(lag, 3)
            if self.api_url:
                link = document_url(self.api_url, manifest.doc_id)
                metadata["document"] = dg.MetadataValue.url(link)
            # An access-only change touched the index rows alone; upstream stays as it was.
            assets = [index] if manifest in outcome.access_only else document_assets
            for asset in assets:
                self.instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        asset_key=asset.key, partition=manifest.partition_key, metadata=metadata
                    )
                )
        known = set(self.instance.get_dynamic_partitions(PARTITIONS_NAME))
        for key in (partition_key(*pair) for pair in outcome.retired):
            if key in known:
                self.instance.delete_dynamic_partition(PARTITIONS_NAME, key)
        if lags:
            report_check(self.instance, freshness_result(self.sla_seconds, list(lags.values())))
        if self.checks:
            self.checks.after_batch(outcome)

    def when_idle(self) -> None:
        """The worker's quiet moment (`rag_core.flows.streaming.IdleWork`)."""
        if self.checks:
            self.checks.when_idle()
