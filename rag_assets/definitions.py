"""The code location: every domain's definitions merged, with the environment's resources,
for local use (`ragctl dev`, workspace.yaml, tests). Production splits the domains into two
code locations (`rag_assets.locations`), so that erasure's runs execute apart, with the one
role allowed to delete object versions.

Built once. A job run in process (`run_in_process`) gets the caller's settings as its `rag`
resource instead of the environment's.
"""

import warnings
from collections.abc import Callable, Collection
from enum import StrEnum
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


class Location(StrEnum):
    """The production code locations, each serving its own domains."""

    INDEXING = "indexing"  # documents, evaluation, events, warehouse
    GOVERNANCE = "governance"  # erasure: the `rtbf` job


def _domains(
    location: Location, settings: Settings, lineage: Callable[[], tuple[Stage, ...]]
) -> list[dg.Definitions]:
    """What one production location serves; erasure gets `lineage` as a resource."""
    if location is Location.INDEXING:
        return [
            documents.defs,
            evaluation.defs,
            events.events_defs(settings),
            warehouse.warehouse_defs(settings),
        ]
    return [
        erasure.defs,
        dg.Definitions(
            resources={erasure.LINEAGE: dg.ResourceDefinition.hardcoded_resource(lineage)}
        ),
    ]


def build_defs(rag: RagResource, serving: Collection[Location] = tuple(Location)) -> dg.Definitions:
    """The code location on `rag` serving the domains of `serving` (all of them by default).
    Erasure's lineage comes from every domain's assets, served here or not, read when a run
    first needs it: by then every asset is in."""

    def lineage() -> tuple[Stage, ...]:
        everything = location if set(serving) == set(Location) else build_defs(rag)
        return erasure.lineage_stages(everything.resolve_all_asset_specs())

    settings = rag.settings()
    location = dg.Definitions.merge(
        *(defs for served in serving for defs in _domains(served, settings, lineage)),
        dg.Definitions(resources={"rag": rag}),
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
