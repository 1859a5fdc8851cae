"""Plain-Python domain of the RAG platform: settings, storage, parsing, chunking, models, retrieval.

Nothing here imports Dagster or FastAPI; both sit on top of this package.
"""
