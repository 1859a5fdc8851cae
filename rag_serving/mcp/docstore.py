"""`mcp-docstore`: search, cited answers and the documents behind them, for MCP clients.

Every tool is the REST API's own call (`Retriever.search` as `POST /v1/search`,
`QueryService.stream` as `POST /v1/query`, `DocumentLookup` as `/v1/documents`) with the
caller's groups, so a document outside them is never a hit, a citation, a chunk or a
resource, and the results equal REST's for the same caller. Needs `rag:query`.
"""

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

import rag_core
from rag_core import services
from rag_core.domain.citations import SNIPPET_CHARS
from rag_core.domain.schemas import (
    MAX_TOP_K,
    ChunkReference,
    Hit,
    QueryRequest,
    QueryResponse,
    SearchFilters,
    SearchMode,
    SearchRequest,
)
from rag_core.flows.documents import ChunkText, DocumentLookup, DocumentText, SourceSummary
from rag_core.flows.querying import QueryService
from rag_core.settings import Settings
from rag_serving.auth import QUERY, Principal
from rag_serving.mcp.common import ObservedTools, caller, in_thread, parsed, require_scope
from rag_serving.routes.query import in_one_context

NAME = "docstore"
INSTRUCTIONS = """Search and cited answers over the organisation's indexed documents (manuals,
reference pages, support tickets), limited to what the caller may read.

- To answer a question, call `ask`: it retrieves the passages and writes an answer citing
  them as [n]; quote its citations rather than inventing sources.
- To find where something is written, call `search` (passages with ids and snippets), then
  `get_chunk` for a passage's full text or `get_document` (or read the resource
  `rag://documents/{doc_id}`) for the whole document.
- `list_sources` says what is indexed (folders, counts, how fresh) when you need to know
  whether the answer could be here at all."""

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
DOC_ID = Annotated[str, Field(description="A document id (32 hex digits) from a search hit.")]
TOP_K = Annotated[
    int | None, Field(description=f"How many passages, 1 to {MAX_TOP_K} (default 5).")
]
FILTERS = Annotated[
    SearchFilters | None,
    Field(description="Only these documents, sources (URI prefix) or ingestion window."),
]


class SearchHit(ChunkReference):
    """A retrieved passage, with the start of its text."""

    snippet: str = Field(description=f"The first {SNIPPET_CHARS} characters of the passage.")

    @classmethod
    def of(cls, hit: Hit) -> "SearchHit":
        return cls(snippet=hit.text[:SNIPPET_CHARS], **hit.model_dump(exclude={"text"}))


class SearchHits(BaseModel):
    hits: list[SearchHit] = Field(description="Best first.")


class IndexedSources(BaseModel):
    sources: list[SourceSummary] = Field(description="By folder of the source key.")
    documents: int
    chunks: int
    index_version: int = Field(description="Changes with every write to the index.")


def given(**fields: Any) -> dict[str, Any]:
    """The arguments the client gave, so the request model's defaults apply to the rest."""
    return {name: value for name, value in fields.items() if value is not None}


def build(
    settings: Settings, query_service: Callable[[], QueryService], local: Principal | None
) -> MCPServer:
    """The docstore server over `query_service()` (the API's, or one of its own on stdio).
    `local`: the identity of a stdio caller; None for a server behind HTTP authentication."""
    server = MCPServer(f"rag-{NAME}", instructions=INSTRUCTIONS, version=rag_core.__version__)

    def allowed(ctx: Context) -> Principal:
        principal = caller(ctx, local)
        require_scope(principal, QUERY)
        return principal

    def lookup() -> DocumentLookup:
        return DocumentLookup(services.object_store(settings), query_service().retriever.index)

    @server.tool(annotations=READ_ONLY)
    async def search(
        query: Annotated[str, Field(description="What to look for, in words.")],
        ctx: Context,
        top_k: TOP_K = None,
        filters: FILTERS = None,
        mode: Annotated[
            SearchMode | None, Field(description="Ranking; default hybrid (vector + keyword).")
        ] = None,
    ) -> SearchHits:
        """Find the passages most relevant to `query` in the documents you may read, best
        first: chunk id, doc id, version, title, section, page, source URI, score and a
        snippet. Returns passages, not answers; use `ask` for an answer, `get_chunk` or
        `get_document` to read a hit in full."""
        groups = allowed(ctx).groups
        request = parsed(
            SearchRequest, **given(query=query, top_k=top_k, filters=filters, mode=mode)
        )
        retriever = query_service().retriever
        hits = await in_thread(
            retriever.search, request.query, request.top_k, request.filters, request.mode, groups
        )
        return SearchHits(hits=[SearchHit.of(hit) for hit in hits])

    @server.tool(annotations=READ_ONLY)
    async def ask(
        question: Annotated[str, Field(description="The question, as a person would ask it.")],
        ctx: Context,
        top_k: TOP_K = None,
        filters: FILTERS = None,
    ) -> QueryResponse:
        """Answer `question` from the documents you may read, citing passages as [n]; each
        citation names its chunk, document, title, section, page and a snippet. The answer
        is "I don't know" when nothing relevant is indexed. Progress notifications carry the
        answer's text as it is written, for clients that ask for progress."""
        groups = allowed(ctx).groups
        request = parsed(QueryRequest, **given(question=question, top_k=top_k, filters=filters))
        request = request.with_default_top_k(settings.query_top_k)
        items = in_one_context(query_service().stream(request, groups))
        response, written = None, 0
        while (item := await in_thread(_next, items)) is not None:  # to its end: spans close
            if isinstance(item, QueryResponse):
                response = item
                continue
            written += len(item)
            await ctx.report_progress(written, message=item)
        if response is None:  # `stream` always closes with one
            raise ToolError("the answer ended without a response")
        return response

    @server.tool(annotations=READ_ONLY)
    async def get_chunk(
        doc_id: DOC_ID,
        chunk_id: Annotated[str, Field(description="The chunk id of the same search hit.")],
        ctx: Context,
    ) -> ChunkText:
        """The full text of one passage (a search hit or citation), with its document, title,
        section and page."""
        groups = allowed(ctx).groups
        chunk = await in_thread(lookup().chunk, doc_id, chunk_id, groups)
        if chunk is None:
            raise ToolError(f"no chunk {chunk_id} of a document {doc_id} you may read")
        return chunk

    @server.tool(annotations=READ_ONLY)
    async def get_document(doc_id: DOC_ID, ctx: Context) -> DocumentText:
        """The whole text of a document (its newest indexed version), with its title and
        source URI. Long: prefer `get_chunk` when one passage is enough."""
        return await _document(lookup(), doc_id, allowed(ctx).groups, ToolError)

    @server.tool(annotations=READ_ONLY)
    async def list_sources(ctx: Context) -> IndexedSources:
        """What is indexed that you may read, by source folder: documents, chunks, and when
        the newest version was discovered (how fresh the folder is)."""
        groups = allowed(ctx).groups
        sources = await in_thread(lookup().sources, groups)
        index = query_service().retriever.index
        return IndexedSources(
            sources=sources,
            documents=sum(source.documents for source in sources),
            chunks=sum(source.chunks for source in sources),
            index_version=await anyio.to_thread.run_sync(index.table_version),
        )

    @server.resource(
        "rag://documents/{doc_id}",
        name="document",
        description="A document's text (newest indexed version), as `get_document` returns it.",
        mime_type="text/markdown",
    )
    async def document_resource(doc_id: str, ctx: Context) -> str:
        document = await _document(lookup(), doc_id, allowed(ctx).groups, ResourceNotFoundError)
        return f"# {document.title}\n\n{document.text}"

    tools = (search, ask, get_chunk, get_document, list_sources)
    server.middleware.append(ObservedTools(NAME, {tool.__name__ for tool in tools}))
    return server


async def _document(
    lookup: DocumentLookup,
    doc_id: str,
    groups: frozenset[str] | None,
    missing: type[Exception],
) -> DocumentText:
    document = await in_thread(lookup.read, doc_id, groups)
    if document is None:
        raise missing(f"no document {doc_id} you may read")
    return document


def _next(items: Iterator[str | QueryResponse]) -> str | QueryResponse | None:
    return next(items, None)
