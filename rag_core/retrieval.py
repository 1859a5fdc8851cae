"""Vector retrieval with metadata filters pushed down into the LanceDB query."""

from rag_core.embedding import Embedder
from rag_core.index import ChunkIndex, sql_in, sql_string
from rag_core.schemas import Hit, SearchFilters


def filter_expression(filters: SearchFilters | None) -> str | None:
    """SQL predicate for LanceDB's prefilter, or None when nothing is filtered."""
    if filters is None:
        return None
    clauses = []
    if filters.doc_ids is not None:
        clauses.append(sql_in("doc_id", filters.doc_ids) if filters.doc_ids else "FALSE")
    if filters.source_prefix:
        clauses.append(f"starts_with(source_uri, {sql_string(filters.source_prefix)})")
    return " AND ".join(clauses) or None


class Retriever:
    def __init__(self, index: ChunkIndex, embedder: Embedder):
        self.index = index
        self.embedder = embedder

    def search(self, query: str, top_k: int, filters: SearchFilters | None = None) -> list[Hit]:
        vector = self.embedder.embed([query])[0]
        rows = self.index.search(vector, top_k, filter_expression(filters))
        return [
            Hit(
                chunk_id=row["chunk_id"],
                doc_id=row["doc_id"],
                version=row["version"],
                source_uri=row["source_uri"],
                title=row["title"],
                section=row["section"],
                page=row["page"],
                score=round(1.0 - float(row["_distance"]), 6),
                text=row["text"],
            )
            for row in rows
        ]
