"""The code location: every domain's definitions merged, with the environment's resources."""

import dagster as dg

from rag_assets import documents, erasure, events, warehouse
from rag_assets.resources import RagResource


def build_defs(rag: RagResource) -> dg.Definitions:
    return dg.Definitions.merge(
        documents.defs,
        erasure.defs,
        events.defs,
        warehouse.defs,
        dg.Definitions(resources={"rag": rag}),
    )


defs = build_defs(RagResource())
