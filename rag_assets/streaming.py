"""The streaming worker's record in Dagster: each version it indexes shows as materialized
partitions of every document asset (runless events; only `index` for an access change),
retired versions lose their partitions, and each batch reports the freshness check. Dagster
stays the control plane, without a run's start-up on the path from event to queryable."""

import dagster as dg

from rag_assets.documents import PARTITIONS_NAME, document_assets, index
from rag_assets.events import FRESHNESS_CHECK, freshness_result
from rag_assets.ingest import register_versions
from rag_core.domain.ids import partition_key
from rag_core.flows.streaming import BatchOutcome


class InstanceRecorder:
    def __init__(self, instance: dg.DagsterInstance, sla_seconds: float):
        self.instance = instance
        self.sla_seconds = sla_seconds

    def __call__(self, outcome: BatchOutcome) -> None:
        lags = {(r.doc_id, r.version): r.lag_seconds for r in outcome.freshness}
        register_versions(self.instance, [m.partition_key for m in outcome.indexed])
        for manifest in outcome.indexed:
            lag = lags.get((manifest.doc_id, manifest.version))
            metadata = {"indexed_by": "streaming worker"} | (
                {"freshness_lag_seconds": round(lag, 3)} if lag is not None else {}
            )
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
            result = freshness_result(self.sla_seconds, list(lags.values()))
            self.instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=index.key,
                    check_name=FRESHNESS_CHECK,
                    passed=result.passed,
                    metadata=result.metadata,
                )
            )
