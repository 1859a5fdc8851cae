"""Dagster definitions over rag_core: the control plane of the indexing pipeline."""
