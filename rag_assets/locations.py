"""The production code locations, one per `dagster code-server` (docker/dagster-workspace.yaml):

    dagster code-server start -m rag_assets.locations -a indexing    # the `dagster-code` service
    dagster code-server start -m rag_assets.locations -a governance  # `dagster-erasure`

Dagster runs each run in its location's container (the default run launcher), so with its
role on ECS: the indexing location's may not delete object versions; the governance
location, the `rtbf` job alone, runs with the erasure role, which may. The two share no
asset, job or sensor, so the webserver finds each job in exactly one of them. Local use
keeps every domain in one location (`rag_assets.definitions`).
"""

import dagster as dg

from rag_assets.definitions import Location, build_defs
from rag_assets.resources import RagResource


@dg.definitions
def indexing() -> dg.Definitions:
    """Every domain but erasure, on the environment's settings."""
    return build_defs(RagResource.from_environment(), {Location.INDEXING})


@dg.definitions
def governance() -> dg.Definitions:
    """Erasure, on the environment's settings; its lineage still spans the indexing assets."""
    return build_defs(RagResource.from_environment(), {Location.GOVERNANCE})
