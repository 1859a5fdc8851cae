"""Request and response shapes shared by the REST API and `ragctl --json`."""

from datetime import datetime

from pydantic import BaseModel, Field

MAX_QUERY_CHARS = 2000
MAX_TOP_K = 50


class SearchFilters(BaseModel):
    doc_ids: list[str] | None = Field(default=None, max_length=100)
    source_prefix: str | None = Field(
        default=None, max_length=1000, description="Only sources whose URI starts with this."
    )


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    filters: SearchFilters | None = None


class ChunkReference(BaseModel):
    """Where a retrieved chunk comes from, and how well it matched."""

    chunk_id: str
    doc_id: str
    version: str
    source_uri: str
    title: str
    section: str
    page: int | None
    score: float = Field(description="Cosine similarity between query and chunk.")


class Hit(ChunkReference):
    text: str


class SearchResponse(BaseModel):
    hits: list[Hit]


class QueryRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    filters: SearchFilters | None = None


class Citation(ChunkReference):
    n: int = Field(description="The [n] marker used in the answer.")
    snippet: str


class QueryResponse(BaseModel):
    answer: str
    citations: list[Citation]
    generator: str = Field(description="Model that wrote the answer, or `extractive`.")


class IndexStatus(BaseModel):
    documents: int
    versions: int
    chunks: int
    index_version: int
    failed_documents: int = Field(description="Live versions whose parsing failed.")
    checked_at: datetime
