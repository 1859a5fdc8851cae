"""The reader side: a FastAPI app and the `ragctl` CLI over rag_core's storage."""
