"""The code location: every domain's definitions merged, with the environment's resources.

Built once. A job run in process (`run_in_process`) gets the caller's settings as its `rag`
resource instead of the environment's.
"""

import warnings
from functools import cache
from typing import Any

import dagster as dg

from rag_assets import documents, erasure, evaluation, events, warehouse
from rag_assets.resources import RagResource
from rag_core.domain.layout import Stage
from rag_core.settings import Settings

# No sensor here has owners: Dagster itself passes `owners=[]` when it copies a sensor to bind
# resources to its jobs, on every load of the location, and warns that the parameter is beta.
warnings.filterwarnings(
    "ignore",
    category=dg.BetaWarning,
    message=r"Parameter `owners` of initializer `SensorDefinition.__init__` is currently in beta",
)


def build_defs(rag: RagResource) -> dg.Definitions:
    """The code location on `rag`. The erasure asset gets its lineage from the location's own
    assets, read when a run first needs it: by then every asset is in."""

    def lineage() -> tuple[Stage, ...]:
        return erasure.lineage_stages(location.resolve_all_asset_specs())

    location = dg.Definitions.merge(
        documents.defs,
        erasure.defs,
        evaluation.defs,
        events.events_defs(rag.settings()),
        warehouse.warehouse_defs(rag.settings()),
        dg.Definitions(
            resources={
                "rag": rag,
                erasure.LINEAGE: dg.ResourceDefinition.hardcoded_resource(lineage),
            }
        ),
    )
    return location


@dg.definitions
@cache
def defs() -> dg.Definitions:
    """The code location on the environment's settings, built when Dagster first loads it,
    not on import: the warehouse's dbt manifest may need parsing first."""
    return build_defs(RagResource.from_environment())


def run_in_process(
    job_name: str, settings: Settings, instance: dg.DagsterInstance, **options: Any
) -> dg.ExecuteInProcessResult:
    """Execute one of the location's jobs in this process, on the caller's settings."""
    job = defs().resolve_job_def(job_name)
    resources = {"rag": RagResource.for_settings(settings)}
    return job.execute_in_process(instance=instance, resources=resources, **options)
