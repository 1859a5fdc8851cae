"""Request and response shapes shared by the REST API and `ragctl --json`."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_QUERY_CHARS = 2000
MAX_TOP_K = 50


def _not_blank(text: str) -> str:
    """Whitespace alone asks nothing: refuse it rather than answer an invented question."""
    if not text.strip():
        raise PydanticCustomError("blank_string", "String should hold more than whitespace")
    return text


QueryText = Annotated[
    str, Field(min_length=1, max_length=MAX_QUERY_CHARS), AfterValidator(_not_blank)
]


class SearchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc_ids: list[str] | None = Field(default=None, max_length=100)
    source_prefix: str | None = Field(
        default=None, max_length=1000, description="Only sources whose URI starts with this."
    )
    ingested_after: datetime | None = Field(default=None, description="Inclusive lower bound.")
    ingested_before: datetime | None = Field(default=None, description="Exclusive upper bound.")


SearchMode = Literal["hybrid", "vector", "keyword"]


class SearchRequest(BaseModel):
    query: QueryText
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    filters: SearchFilters | None = None
    mode: SearchMode | None = Field(default=None, description="Default: RAG_RETRIEVAL_MODE.")


class ChunkReference(BaseModel):
    """Where a retrieved chunk comes from, and how well it matched."""

    chunk_id: str
    doc_id: str
    version: str
    source_uri: str
    title: str
    section: str
    page: int | None
    score: float = Field(description="Rank score: fused (RRF) or the reranker's.")
    vector_score: float | None = Field(description="Cosine similarity to the query.")
    keyword_score: float | None = Field(description="BM25 score, when the keyword search hit.")


class Hit(ChunkReference):
    text: str


class SearchResponse(BaseModel):
    hits: list[Hit]


class QueryRequest(BaseModel):
    question: QueryText
    top_k: int = Field(
        default=5,
        ge=1,
        le=MAX_TOP_K,
        description="Passages the answer is written from. Default: the cost profile's "
        "(RAG_QUERY_TOP_K; 5 in the default profile).",
    )
    filters: SearchFilters | None = None
    stream: bool = Field(
        default=False,
        description="Answer as Server-Sent Events: `token` events, then one `done` event "
        "carrying the full response.",
    )

    def with_default_top_k(self, top_k: int) -> "QueryRequest":
        """This request, with `top_k` as its passage count unless it names its own."""
        if "top_k" in self.model_fields_set:
            return self
        return self.model_copy(update={"top_k": top_k})


class Citation(ChunkReference):
    n: int = Field(description="The [n] marker used in the answer.")
    snippet: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = Field(default=0.0, description="Cost of generation, in `currency`.")
    currency: str = "GBP"


CacheHit = Literal["exact", "semantic"]


class QueryResponse(BaseModel):
    """An answer. How a cached one was found is in `cache_hit`, beside `cached` rather than in
    it (as `cached: "semantic"`): `cached` stays a bool for every client that reads it as one
    (the evaluation results store it in a BOOLEAN column, typed clients validate it as bool,
    traces and metrics label by it), and keeps meaning what it meant: served from the cache,
    generated at no cost now."""

    answer: str
    citations: list[Citation]
    generator: str = Field(description="Model that wrote the answer, or `extractive`.")
    usage: Usage = Field(default_factory=Usage)
    cached: bool = Field(default=False, description="True when served from the response cache.")
    cache_hit: CacheHit | None = Field(
        default=None,
        description="How the cached answer was found: `exact` (the same question, up to case, "
        "spacing and closing marks) or `semantic` (a question close to a cached one, with "
        "RAG_SEMANTIC_CACHE on); None when generated afresh.",
    )


class IndexStatus(BaseModel):
    documents: int
    versions: int
    chunks: int
    index_version: int
    failed_documents: int = Field(description="Live versions whose parsing failed.")
    profile: str = Field(description="The cost profile answering queries (RAG_PROFILE).")
    checked_at: datetime


class DependencyStatus(BaseModel):
    ok: bool
    required: bool = Field(description="Whether the API cannot serve without it.")
    detail: str


class ReadinessReport(BaseModel):
    status: Literal["ready", "degraded", "unavailable"] = Field(
        description="`unavailable` (503) when a required dependency is down, `degraded` when "
        "only optional ones are (answers go on without them)."
    )
    dependencies: dict[str, DependencyStatus]
    checked_at: datetime


MAX_DOCUMENTS_PAGE = 500
ParseStatus = Literal["pending", "parsed", "failed"]


class DocumentVersionView(BaseModel):
    version: str
    discovered_at: datetime
    size: int | None = Field(description="Bytes; unknown for a version with no manifest left.")
    chunks: int = Field(description="Chunks of this version in the index.")
    parse_status: ParseStatus = Field(description="`pending` until the version is parsed.")
    failure_reason: str | None = Field(description="Why parsing failed, when it did.")


class DocumentAccess(BaseModel):
    acl: list[str] = Field(description="Groups that may read it; everyone when empty.")
    subjects: list[str] = Field(description="People it is about.")


class DocumentSummary(BaseModel):
    """A document as a person recognizes it: its source and title beside its opaque id."""

    doc_id: str
    source_key: str | None = Field(description="Key in the object store; None once it is gone.")
    source_uri: str
    title: str | None = Field(description="From the index; None until a version is indexed.")
    chunks: int = Field(description="Chunks of every version in the index.")
    latest_version: str
    discovered_at: datetime = Field(description="When the latest version was discovered.")


class DocumentDetails(DocumentSummary):
    versions: list[DocumentVersionView] = Field(description="Newest first.")
    access: DocumentAccess


class DocumentList(BaseModel):
    documents: list[DocumentSummary]
    total: int = Field(description="Documents matching, the caller may read, before paging.")
