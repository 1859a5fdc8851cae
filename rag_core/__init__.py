"""Plain-Python domain of the RAG platform: settings, storage, parsing, chunking, models, retrieval.

Nothing here imports Dagster or FastAPI; both sit on top of this package.
"""

from importlib.metadata import version

# pyproject.toml's version, as installed: what the API, the MCP servers and `ragctl` report.
__version__ = version("rag-platform")
