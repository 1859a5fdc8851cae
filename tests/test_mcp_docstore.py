"""The docstore MCP server through the SDK's own client: over streamable HTTP against the API
served by uvicorn on loopback (OIDC tokens from a loopback issuer), and over stdio against
`ragctl mcp docstore`. Results equal REST's for the same query and caller; scopes, groups,
rate and body limits hold as on REST; every tool call is a span and a metric."""

import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult, TextResourceContents
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from routes.conftest import SECRET, SECRET_QUESTION, Issuer, index_restricted_corpus, oidc
from test_traces import add_exporter

from rag_core.adapters.processes import free_port
from rag_core.settings import Settings
from rag_serving.main import create_app

DOCSTORE_TOOLS = {"search", "ask", "get_chunk", "get_document", "list_sources"}
QUERY = "reclaim storage occupied by dead tuples"
QUESTION = "Which port does the server listen on?"
ROOM = {"rate_limit_per_minute": 100_000, "rate_limit_burst": 10_000}


class Api:
    """`create_app(settings)` served by uvicorn on a loopback port, from a thread."""

    def __init__(self, settings: Settings):
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{config.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Api":
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the API did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def sample_api(sample_index: Settings, issuer: Issuer) -> Iterator[Api]:
    """The API over the sample corpus, with OIDC and room for every call of the module."""
    with Api(oidc(sample_index, issuer).model_copy(update=ROOM)) as api:
        yield api


@pytest.fixture(scope="module")
def restricted_api(
    tmp_path_factory: pytest.TempPathFactory, issuer: Issuer
) -> Iterator[tuple[Api, str]]:
    """A platform of its own holding a document only `finance` may read, the best match for
    `SECRET_QUESTION`, beside a public one; yields the API and the restricted doc id."""
    settings = Settings(home=tmp_path_factory.mktemp("restricted") / "rag")
    restricted = index_restricted_corpus(settings)
    with Api(oidc(settings, issuer).model_copy(update=ROOM)) as api:
        yield api, restricted


@asynccontextmanager
async def over_http(url: str, token: str, **options: Any) -> AsyncIterator[Client]:
    """The SDK's client (with `options`) on the server at `url`, sending `token` as bearer."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    transport = streamable_http_client(url, http_client=http)
    async with http, Client(transport, **options) as client:
        yield client


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(scenario)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(getattr(part, "text", "") for part in result.content)


def rest(api: Api, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{api.url}{path}", json=body, timeout=120,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def ranked(hits: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(hit["chunk_id"], hit["score"]) for hit in hits]


def test_search_and_ask_over_http_equal_rest_for_the_same_caller(
    sample_api: Api, issuer: Issuer
) -> None:
    token = issuer.token(sub="reader", groups=["engineering"])

    async def scenario() -> tuple[set[str], dict[str, Any], dict[str, Any], list[str]]:
        async with over_http(f"{sample_api.url}/mcp/docstore", token) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            found = structured(await client.call_tool("search", {"query": QUERY, "top_k": 5}))
            deltas: list[str] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                deltas.append(message or "")

            answered = structured(
                await client.call_tool("ask", {"question": QUESTION}, progress_callback=on_progress)
            )
            return tools, found, answered, deltas

    tools, found, answered, progress = run(scenario)
    assert tools == DOCSTORE_TOOLS
    searched = rest(sample_api, token, "/v1/search", {"query": QUERY, "top_k": 5})
    assert found["hits"] and ranked(found["hits"]) == ranked(searched["hits"])
    first = found["hits"][0]
    assert {"doc_id", "version", "title", "source_uri", "snippet"} <= first.keys()
    assert "text" not in first and first["snippet"] == searched["hits"][0]["text"][:300]

    asked = rest(sample_api, token, "/v1/query", {"question": QUESTION})
    assert answered["answer"] == asked["answer"] and "5432" in answered["answer"]
    assert [c["chunk_id"] for c in answered["citations"]] == [
        c["chunk_id"] for c in asked["citations"]
    ]
    assert "".join(progress) == answered["answer"]  # streamed as it was written


def test_chunks_documents_sources_and_resources(sample_api: Api, issuer: Issuer) -> None:
    token = issuer.token(sub="reader")

    async def scenario() -> dict[str, Any]:
        async with over_http(f"{sample_api.url}/mcp/docstore", token) as client:
            hit = structured(await client.call_tool("search", {"query": QUERY, "top_k": 1}))
            first = hit["hits"][0]
            ids = {"doc_id": first["doc_id"]}
            read = await client.read_resource(f"rag://documents/{first['doc_id']}")
            return {
                "hit": first,
                "chunk": structured(
                    await client.call_tool("get_chunk", ids | {"chunk_id": first["chunk_id"]})
                ),
                "document": structured(await client.call_tool("get_document", ids)),
                "resource": read.contents[0],
                "sources": structured(await client.call_tool("list_sources", {})),
                "missing": error_text(await client.call_tool("get_document", {"doc_id": "0" * 32})),
                "invalid": error_text(await client.call_tool("search", {"query": "   "})),
            }

    seen = run(scenario)
    hit, chunk, document = seen["hit"], seen["chunk"], seen["document"]
    assert chunk["chunk_id"] == hit["chunk_id"] and chunk["text"].startswith(hit["snippet"])
    assert document["doc_id"] == hit["doc_id"] and document["title"] == hit["title"]
    assert chunk["text"][:200] in document["text"] and len(document["text"]) > len(chunk["text"])
    assert isinstance(seen["resource"], TextResourceContents)
    assert seen["resource"].text == f"# {document['title']}\n\n{document['text']}"
    folders = {source["folder"]: source for source in seen["sources"]["sources"]}
    assert folders["postgresql"]["documents"] > 1 and "newest_version_at" in folders["postgresql"]
    assert seen["sources"]["chunks"] == sum(f["chunks"] for f in folders.values())
    assert "no document" in seen["missing"]
    assert "query" in seen["invalid"] and "Traceback" not in seen["invalid"]


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "test", "version": "0"}}}  # fmt: skip
ACCEPT = {"Accept": "application/json, text/event-stream"}


def initialize(url: str, headers: dict[str, str]) -> httpx.Response:
    """A bare MCP initialize request, as a client's first POST."""
    return httpx.post(url, json=INITIALIZE, headers=ACCEPT | headers, timeout=30)


def test_tokens_and_scopes_follow_the_mcp_authorization_spec(
    sample_api: Api, issuer: Issuer
) -> None:
    docstore, governance = f"{sample_api.url}/mcp/docstore", f"{sample_api.url}/mcp/governance"
    metadata_url = f"{sample_api.url}/.well-known/oauth-protected-resource/mcp/docstore"

    anonymous = initialize(docstore, {})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{metadata_url}"'
    metadata = httpx.get(metadata_url).json()
    assert metadata["resource"] == docstore and metadata["authorization_servers"] == [issuer.url]
    assert metadata["scopes_supported"] == ["rag:query"]

    forged = initialize(docstore, {"Authorization": "Bearer not-a-token"})
    assert (
        forged.status_code == 401 and 'error="invalid_token"' in forged.headers["WWW-Authenticate"]
    )
    ingest_only = {"Authorization": f"Bearer {issuer.token(scope='rag:ingest')}"}
    refused = initialize(docstore, ingest_only)
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"].startswith(
        'Bearer error="insufficient_scope", scope="rag:query", resource_metadata='
    )
    docstore_only = {"Authorization": f"Bearer {issuer.token(scope='rag:query')}"}
    assert initialize(governance, docstore_only).status_code == 403
    assert initialize(docstore, docstore_only).status_code == 200

    async def connect_without_scope() -> None:
        async with over_http(docstore, issuer.token(scope="rag:ingest")) as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017 - the SDK reports the 403 its own way
        run(connect_without_scope)


def test_body_and_rate_limits_apply(
    sample_api: Api, issuer: Issuer, sample_index: Settings
) -> None:
    url = f"{sample_api.url}/mcp/docstore"
    headers = {"Authorization": f"Bearer {issuer.token(sub='body')}"}
    oversized = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {
        "padding": "x" * (sample_index.max_request_bytes + 1)}}  # fmt: skip
    response = httpx.post(url, json=oversized, headers=headers | ACCEPT, timeout=30)
    assert response.status_code == 413

    tight = {"rate_limit_burst": 2, "rate_limit_per_minute": 1}
    with Api(oidc(sample_index, issuer).model_copy(update=tight)) as limited:
        hasty = {"Authorization": f"Bearer {issuer.token(sub='hasty')}"}
        # A GET without a session is refused by the transport, once past the rate limit.
        statuses = [httpx.get(f"{limited.url}/mcp/docstore", headers=hasty) for _ in range(3)]
    assert all(r.status_code not in (401, 403, 429) for r in statuses[:2])
    assert statuses[2].status_code == 429 and int(statuses[2].headers["Retry-After"]) >= 1


def test_a_caller_outside_a_documents_group_never_sees_it(
    restricted_api: tuple[Api, str], issuer: Issuer
) -> None:
    api, restricted = restricted_api
    url = f"{api.url}/mcp/docstore"

    async def everything(token: str) -> dict[str, Any]:
        async with over_http(url, token) as client:
            found = structured(
                await client.call_tool("search", {"query": SECRET_QUESTION, "top_k": 10})
            )
            asked = structured(await client.call_tool("ask", {"question": SECRET_QUESTION}))
            document = await client.call_tool("get_document", {"doc_id": restricted})
            sources = structured(await client.call_tool("list_sources", {}))
            read: list[Any]
            try:
                read = list((await client.read_resource(f"rag://documents/{restricted}")).contents)
            except Exception as refused:  # the SDK raises the server's resource error
                read = [str(refused)]
            return {"found": found, "asked": asked, "document": document,
                    "sources": sources, "resource": read}  # fmt: skip

    inside = run(lambda: everything(issuer.token(sub="fiona", groups=["finance"])))
    assert restricted in {hit["doc_id"] for hit in inside["found"]["hits"]}
    assert SECRET in inside["asked"]["answer"]
    assert SECRET in structured(inside["document"])["text"]
    assert "finance" in {s["folder"] for s in inside["sources"]["sources"]}
    assert SECRET in inside["resource"][0].text
    chunk_id = next(h["chunk_id"] for h in inside["found"]["hits"] if h["doc_id"] == restricted)

    for groups in (["engineering"], []):
        token = issuer.token(sub="ed", groups=groups)
        outside = run(partial(everything, token))
        assert SECRET not in json.dumps(outside["found"]) and outside["found"]["hits"]
        assert SECRET not in json.dumps(outside["asked"])
        assert restricted not in {c["doc_id"] for c in outside["asked"]["citations"]}
        assert SECRET not in error_text(outside["document"])
        assert "finance" not in {s["folder"] for s in outside["sources"]["sources"]}
        assert SECRET not in str(outside["resource"]) and "no document" in str(outside["resource"])

        async def chunk(token: str = token) -> str:
            async with over_http(url, token) as client:
                arguments = {"doc_id": restricted, "chunk_id": chunk_id}
                return error_text(await client.call_tool("get_chunk", arguments))

        assert SECRET not in run(chunk) and "no chunk" in run(chunk)


def test_tool_calls_are_spans_and_metrics(sample_api: Api, issuer: Issuer) -> None:
    exporter = InMemorySpanExporter()
    processor = add_exporter(exporter)
    token = issuer.token(sub="observer")

    async def scenario() -> None:
        async with over_http(f"{sample_api.url}/mcp/docstore", token) as client:
            await client.call_tool("search", {"query": QUERY})
            await client.call_tool("get_document", {"doc_id": "0" * 32})

    try:
        run(scenario)
    finally:
        processor.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    search = spans["mcp.tool search"]
    assert search.attributes is not None and search.attributes["rag.mcp.outcome"] == "ok"
    assert any(s.parent and s.parent.span_id == search.context.span_id for s in spans.values())
    failed = spans["mcp.tool get_document"]
    assert failed.attributes is not None and failed.attributes["rag.mcp.outcome"] == "error"

    admin = {"Authorization": f"Bearer {issuer.token(scope='rag:admin')}"}
    exposition = httpx.get(f"{sample_api.url}/metrics", headers=admin).text
    assert 'rag_mcp_tool_calls_total{outcome="ok",server="docstore",tool="search"}' in exposition
    assert (
        'rag_mcp_tool_calls_total{outcome="error",server="docstore",tool="get_document"}'
        in exposition
    )
    assert 'rag_mcp_tool_call_duration_seconds_count{server="docstore",tool="search"}' in (
        exposition
    )


def ragctl() -> str:
    return str(Path(sys.executable).with_name("ragctl"))


@pytest.mark.slow
def test_stdio_serves_the_local_identity_as_the_dev_api_does(sample_index: Settings) -> None:
    server = StdioServerParameters(
        command=ragctl(),
        args=["mcp", "docstore"],
        env={**os.environ, "RAG_HOME": str(sample_index.home)},
    )

    async def scenario() -> tuple[set[str], dict[str, Any]]:
        async with Client(server) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            return tools, structured(await client.call_tool("search", {"query": QUERY}))

    tools, found = run(scenario)
    assert tools == DOCSTORE_TOOLS
    with TestClient(create_app(sample_index)) as dev:  # dev mode: every document, as locally
        searched = dev.post("/v1/search", json={"query": QUERY}).json()
    assert found["hits"] and ranked(found["hits"]) == ranked(searched["hits"])


def test_the_endpoints_serve_again_after_the_app_restarts(tmp_path: Path) -> None:
    """A session manager runs once: each run of the app's lifespan must start new ones."""
    app = create_app(Settings(home=tmp_path / "rag"))  # dev mode
    for _ in range(2):
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            response = client.post("/mcp/docstore", json=INITIALIZE, headers=ACCEPT)
            assert response.status_code == 200 and response.headers["mcp-session-id"]
