"""The governance MCP server through the SDK's own client, on a platform of its own (erasure
changes it): nothing is erased without consent, given by a confirm token (single use, bound
to its scope) or by elicitation; once given, the document is gone from search; every call is
in the audit trail under the caller's subject; a docstore-only caller is refused."""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp_types import ElicitRequestParams, ElicitResult
from routes.conftest import Issuer, oidc
from test_mcp_docstore import ROOM, Api, error_text, initialize, over_http, ragctl, run, structured

from rag_assets.ingest import ingest_sources, local_instance
from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.domain.ids import doc_id_for
from rag_core.settings import Settings

GOVERNANCE_TOOLS = {"request_erasure", "erasure_status", "audit_trail", "readmit"}
DOCUMENTS = {
    "parking": ("documents/handbook/parking.md", "Visitors park on level three of the garage."),
    "lunch": ("documents/handbook/lunch.md", "The canteen serves a vegetarian curry on Fridays."),
    "badges": ("documents/handbook/badges.md", "Lost badges are replaced at the front desk."),
}
GOVERNOR = "rag:governance rag:query"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, str]]:
    """Three handbook pages indexed; returns the settings and their doc ids by name."""
    settings = Settings(home=tmp_path_factory.mktemp("governance") / "rag")
    store = services.object_store(settings)
    for key, sentence in DOCUMENTS.values():
        put_source(store, key, f"# {key.rsplit('/', 1)[1]}\n\n{sentence}\n".encode())
    ingest_sources(settings, local_instance(settings))
    return settings, {name: doc_id_for(store.uri_for(key)) for name, (key, _) in DOCUMENTS.items()}


@pytest.fixture(scope="module")
def api(platform: tuple[Settings, dict[str, str]], issuer: Issuer) -> Iterator[Api]:
    with Api(oidc(platform[0], issuer).model_copy(update=ROOM)) as served:
        yield served


async def found_doc_ids(api: Api, token: str, name: str) -> set[str]:
    """Doc ids of the hits for the sentence of document `name`, through the docstore."""
    async with over_http(f"{api.url}/mcp/docstore", token) as client:
        arguments = {"query": DOCUMENTS[name][1], "top_k": 10}
        hits = structured(await client.call_tool("search", arguments))["hits"]
        return {hit["doc_id"] for hit in hits}


def searched_doc_ids(api: Api, token: str, name: str) -> set[str]:
    result: set[str] = run(lambda: found_doc_ids(api, token, name))
    return result


def test_erasure_waits_for_a_confirm_token_used_once(
    api: Api, issuer: Issuer, platform: tuple[Settings, dict[str, str]]
) -> None:
    _, doc_ids = platform
    token = issuer.token(sub="gina", scope=GOVERNOR)
    parking = {"doc_ids": [doc_ids["parking"]]}

    async def preview_then_confirm() -> dict[str, Any]:
        async with over_http(f"{api.url}/mcp/governance", token) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            preview = structured(await client.call_tool("request_erasure", parking))
            still_there = await found_doc_ids(api, token, "parking")  # nothing erased yet
            other = structured(
                await client.call_tool("request_erasure", {"doc_ids": [doc_ids["lunch"]]})
            )
            crossed = await client.call_tool(  # lunch's token does not erase parking
                "request_erasure", parking | {"confirm_token": other["confirm_token"]}
            )
            confirmed = structured(
                await client.call_tool(
                    "request_erasure", parking | {"confirm_token": preview["confirm_token"]}
                )
            )
            replayed = await client.call_tool(
                "request_erasure", parking | {"confirm_token": preview["confirm_token"]}
            )
            request_id = confirmed["request"]["request_id"]
            status = structured(
                await client.call_tool("erasure_status", {"request_id": request_id})
            )
            trail = structured(await client.call_tool("audit_trail", {}))
            readmitted = structured(await client.call_tool("readmit", {"request_id": request_id}))
            return {"tools": tools, "preview": preview, "still_there": still_there,
                    "crossed": crossed, "confirmed": confirmed, "replayed": replayed,
                    "status": status, "trail": trail, "readmitted": readmitted}  # fmt: skip

    seen = run(preview_then_confirm)
    assert seen["tools"] == GOVERNANCE_TOOLS
    preview = seen["preview"]
    assert preview["outcome"] == "awaiting_confirmation" and preview["confirm_token"]
    assert preview["preview"]["doc_ids"] == [doc_ids["parking"]]
    assert preview["preview"]["chunks"] >= 1
    assert preview["preview"]["sources"] == [DOCUMENTS["parking"][0]]
    assert doc_ids["parking"] in seen["still_there"]
    assert "another scope" in error_text(seen["crossed"])

    confirmed = seen["confirmed"]
    assert confirmed["outcome"] == "submitted" and confirmed["request"]["status"] == "completed"
    assert confirmed["request"]["requested_by"] == "gina"
    assert doc_ids["parking"] not in searched_doc_ids(api, token, "parking")
    assert doc_ids["lunch"] in searched_doc_ids(api, token, "lunch")
    assert "already used" in error_text(seen["replayed"])
    assert seen["status"]["status"] == "completed" and all(seen["status"]["verification"].values())

    trail = seen["trail"]
    assert trail["intact"] and not trail["problems"]
    calls = [
        (r["action"], r["outcome"]["status"]) for r in trail["records"] if r["actor"] == "gina"
    ]
    assert calls == [
        ("mcp.request_erasure", "awaiting_confirmation"),
        ("mcp.request_erasure", "awaiting_confirmation"),
        ("mcp.request_erasure", "refused"),
        ("erasure", "completed"),
        ("mcp.request_erasure", "submitted"),
        ("mcp.request_erasure", "refused"),
        ("mcp.erasure_status", "ok"),
    ]
    assert seen["readmitted"]["action"] == "readmission" and seen["readmitted"]["actor"] == "gina"


def answering(action: str) -> Any:
    """An elicitation callback answering every question with `action` (and consent)."""
    asked: list[str] = []

    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        content = {"confirm": True} if action == "accept" else None
        return ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    callback.asked = asked  # type: ignore[attr-defined]
    return callback


def test_a_client_with_elicitation_is_asked_and_a_decline_erases_nothing(
    api: Api, issuer: Issuer, platform: tuple[Settings, dict[str, str]]
) -> None:
    _, doc_ids = platform
    token = issuer.token(sub="eli", scope=GOVERNOR)
    badges = {"doc_ids": [doc_ids["badges"]]}

    async def ask(action: str) -> tuple[dict[str, Any], list[str]]:
        callback = answering(action)
        url = f"{api.url}/mcp/governance"
        async with over_http(url, token, elicitation_callback=callback) as client:
            decided = structured(await client.call_tool("request_erasure", badges))
        return decided, callback.asked

    declined, asked = run(lambda: ask("decline"))
    assert declined["outcome"] == "declined" and declined["confirm_token"] is None
    assert asked and "1 document(s)" in asked[0] and DOCUMENTS["badges"][0] in asked[0]
    assert doc_ids["badges"] in searched_doc_ids(api, token, "badges")

    accepted, _ = run(lambda: ask("accept"))
    assert accepted["outcome"] == "submitted" and accepted["request"]["status"] == "completed"
    assert doc_ids["badges"] not in searched_doc_ids(api, token, "badges")


def test_a_docstore_only_caller_cannot_govern(api: Api, issuer: Issuer) -> None:
    docstore_only = {"Authorization": f"Bearer {issuer.token(scope='rag:query')}"}
    refused = initialize(f"{api.url}/mcp/governance", docstore_only)
    assert refused.status_code == 403
    assert 'scope="rag:governance"' in refused.headers["WWW-Authenticate"]


@pytest.mark.slow
def test_stdio_refuses_and_audits_a_local_identity_without_the_scope(
    platform: tuple[Settings, dict[str, str]],
) -> None:
    settings, doc_ids = platform
    env = {**os.environ, "RAG_HOME": str(settings.home)}

    def server(*options: str) -> StdioServerParameters:
        return StdioServerParameters(
            command=ragctl(), args=["mcp", "governance", *options], env=env
        )

    async def scenario() -> tuple[str, dict[str, Any]]:
        reader = server("--subject", "reader@example.com", "--scope", "rag:query")
        async with Client(reader) as client:
            arguments = {"doc_ids": [doc_ids["lunch"]]}
            refused = error_text(await client.call_tool("request_erasure", arguments))
        async with Client(server("--subject", "ops@example.com")) as client:
            trail = structured(await client.call_tool("audit_trail", {}))
        return refused, trail

    refused, trail = run(scenario)
    assert "missing scope rag:governance" in refused
    last = trail["records"][-1]
    assert (last["actor"], last["action"], last["outcome"]) == (
        "reader@example.com", "mcp.request_erasure", {"status": "refused"},
    )  # fmt: skip
    assert trail["intact"]
