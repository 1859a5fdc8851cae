"""`mcp-governance`: right-to-be-forgotten erasure with consent, its status, the audit trail
and readmission, for MCP clients. Needs `rag:governance`.

Erasure is destructive, so `request_erasure` never erases on the first ask: it previews what
the scope covers (`rag_core.flows.erasure.preview`) and asks for consent, through the
client's elicitation when it offers it, otherwise with a confirm token the preview returns,
bound to that scope and caller and redeemable once. Then it is the REST API's erasure: a
request submitted and carried out by the orchestrator. Every call, whatever its outcome, is
appended to the hash-chained audit trail as `mcp.<tool>` with the caller's subject (the
erasures and readmissions themselves are recorded there too, as over REST).
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

import rag_core
from rag_core import services
from rag_core.adapters import audit
from rag_core.adapters.audit import AuditRecord
from rag_core.adapters.cache import build_response_cache
from rag_core.flows import erasure
from rag_core.flows.erasure import ConsentRefused, ErasurePreview, ErasureScope, ErasureStatus
from rag_core.flows.orchestration import orchestrator_for
from rag_core.settings import Settings
from rag_serving.auth import GOVERNANCE, Principal
from rag_serving.mcp.common import ObservedTools, caller, in_thread, parsed, require_scope
from rag_serving.routes.audit import AuditTrail, get_audit_trail
from rag_serving.routes.erasure import carry_out

NAME = "governance"
INSTRUCTIONS = """Governance of the indexed knowledge: erase documents or everything about a
person (right to be forgotten), follow an erasure, read and verify the audit trail.

Erasure is permanent and needs the user's consent:
1. Call `request_erasure` with exactly one of `doc_ids`, `source_prefix` or `subject`. It
   previews what would be erased (documents, sources, chunks, cached answers, warehouse rows).
   If your client supports elicitation, the user is asked to confirm there and the erasure
   follows. Otherwise nothing is erased and the result holds a `confirm_token`.
2. Show the preview to the user. Only if they agree, call `request_erasure` again with the
   same scope and that `confirm_token` (valid once, for 10 minutes).
3. Follow the request with `erasure_status` until `completed` (or `failed`, with the reason).
`audit_trail` lists every erasure and governance call and checks the hash chain; `readmit`
lets a completed erasure's content be indexed again."""

SCOPE_FIELDS = {
    "doc_ids": "Document ids (32 hex digits) to erase, every version.",
    "source_prefix": "Erase every document whose source URI starts with this.",
    "subject": "Erase every document and warehouse row about this person (an id or email).",
}


class ConfirmErasure(BaseModel):
    """What the user is asked for, through elicitation."""

    confirm: bool = Field(
        description="Erase everything listed, everywhere (index, caches, sources, warehouse); "
        "it cannot be undone."
    )


class ErasureDecision(BaseModel):
    """What `request_erasure` did: previewed (awaiting confirmation), declined, or erased."""

    outcome: str = Field(description="`awaiting_confirmation`, `declined` or `submitted`.")
    message: str
    preview: ErasurePreview | None = Field(description="What the scope covers, before erasure.")
    confirm_token: str | None = Field(
        default=None, description="Pass it back, with the same scope, to confirm (once)."
    )
    request: ErasureStatus | None = Field(
        default=None, description="The erasure request, once submitted: follow its status."
    )


@dataclass
class _Call:
    """A governance call as the audit trail records it."""

    principal: Principal
    scope: dict[str, Any]
    outcome: dict[str, Any] = field(default_factory=lambda: {"status": "failed"})


class _NotAsked:
    """The consent resolver's answer when it did not elicit (no capability, or a token)."""


def build(settings: Settings, local: Principal | None) -> MCPServer:
    """The governance server. `local`: the identity of a stdio caller; None for a server
    behind HTTP authentication."""
    server = MCPServer(f"rag-{NAME}", instructions=INSTRUCTIONS, version=rag_core.__version__)
    store = services.object_store(settings)

    def preview_of(scope: ErasureScope) -> ErasurePreview:
        return erasure.preview(
            settings, store, services.chunk_index(settings), build_response_cache(settings), scope
        )

    @asynccontextmanager
    async def audited(ctx: Context, tool: str, scope: dict[str, Any]) -> AsyncIterator[_Call]:
        """The call, its caller's scope checked, for the tool to fill in; on exit it is
        appended to the audit trail, refused and failed calls too."""
        call = _Call(caller(ctx, local), scope)
        try:
            require_scope(call.principal, GOVERNANCE)
            yield call
        except ToolError:
            call.outcome = {"status": "refused"}
            raise
        finally:
            await in_thread(
                partial(
                    audit.append,
                    store,
                    actor=call.principal.subject,
                    action=f"mcp.{tool}",
                    request_id=uuid.uuid4().hex,  # each call its own record
                    scope=call.scope,
                    outcome=call.outcome,
                )
            )

    async def ask_consent(
        ctx: Context,
        doc_ids: list[str] | None,
        source_prefix: str | None,
        subject: str | None,
        confirm_token: str | None,
    ) -> Elicit[ConfirmErasure] | _NotAsked:
        """Elicit consent, showing the preview, when the client can be asked, brought no
        token, may govern and named a valid scope (the tool body refuses the others, audited)."""
        principal = caller(ctx, local)
        if confirm_token is not None or not _can_elicit(ctx) or GOVERNANCE not in principal.scopes:
            return _NotAsked()
        try:
            scope = _scope(doc_ids, source_prefix, subject)
        except ToolError:
            return _NotAsked()
        preview = await in_thread(preview_of, scope)
        return Elicit(_question(preview), ConfirmErasure)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False))
    async def request_erasure(
        ctx: Context,
        consent: Annotated[ElicitationResult[ConfirmErasure], Resolve(ask_consent)],
        doc_ids: Annotated[list[str] | None, Field(description=SCOPE_FIELDS["doc_ids"])] = None,
        source_prefix: Annotated[
            str | None, Field(description=SCOPE_FIELDS["source_prefix"])
        ] = None,
        subject: Annotated[str | None, Field(description=SCOPE_FIELDS["subject"])] = None,
        untag_versions: Annotated[
            bool, Field(description="Also remove tags that keep old index versions.")
        ] = False,
        confirm_token: Annotated[
            str | None,
            Field(description="From this tool's preview, once the user agreed; else omit."),
        ] = None,
    ) -> ErasureDecision:
        """Erase documents (by id or source URI prefix) or everything about a data subject,
        from the index, caches, artifacts, sources and the warehouse, with the user's
        consent. The first call previews what would be erased and asks for confirmation
        (elicitation, or a `confirm_token` to pass back); nothing is erased until then."""
        async with audited(ctx, "request_erasure", {}) as call:
            scope = _scope(doc_ids, source_prefix, subject)
            call.scope = scope.redacted() | {"untag_versions": untag_versions}
            decision = await decide(scope, call.principal, consent, confirm_token, untag_versions)
            call.outcome["status"] = decision.outcome
            if decision.request is not None:
                call.outcome["erasure_request_id"] = decision.request.request_id
            return decision

    async def decide(
        scope: ErasureScope,
        principal: Principal,
        consent: ElicitationResult[ConfirmErasure],
        confirm_token: str | None,
        untag_versions: bool,
    ) -> ErasureDecision:
        if not isinstance(consent, AcceptedElicitation):
            return _declined()
        elicited = consent.data if isinstance(consent.data, ConfirmErasure) else None
        if elicited is not None and not elicited.confirm:
            return _declined()
        if elicited is None and confirm_token is None:
            preview = await in_thread(preview_of, scope)
            token = await in_thread(
                partial(erasure.offer_consent, untag_versions=untag_versions),
                store, scope, principal.subject,
            )  # fmt: skip
            return ErasureDecision(
                outcome="awaiting_confirmation",
                message="Nothing was erased. Show this preview to the user; if they agree, "
                "call request_erasure again with the same scope and this confirm_token.",
                preview=preview,
                confirm_token=token,
            )
        if confirm_token is not None:
            try:
                await in_thread(
                    partial(erasure.redeem_consent, untag_versions=untag_versions),
                    store, confirm_token, scope, principal.subject,
                )  # fmt: skip
            except ConsentRefused as refused:
                raise ToolError(f"not erased: {refused}") from None
        return await submitted(scope, principal, untag_versions)

    async def submitted(
        scope: ErasureScope, principal: Principal, untag_versions: bool
    ) -> ErasureDecision:
        """Submit the request and carry it out as REST does (in this process, or a run
        submitted to Dagster without waiting); its status says how it went."""
        submit = partial(erasure.submit, untag_versions=untag_versions)
        request = await in_thread(submit, store, scope, principal.subject)
        await in_thread(carry_out, orchestrator_for(settings), request.request_id)
        current = await in_thread(erasure.load, store, request.request_id) or request
        return ErasureDecision(
            outcome="submitted",
            message=f"Erasure request {request.request_id} is {current.status}; follow it "
            "with erasure_status.",
            preview=None,
            request=current.view(),
        )

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def erasure_status(
        request_id: Annotated[str, Field(description="From request_erasure's `request`.")],
        ctx: Context,
    ) -> ErasureStatus:
        """Where an erasure request stands: pending, running, completed (with what was erased
        where and the verification of its absence) or failed (with the reason)."""
        async with audited(ctx, "erasure_status", {"erasure_request_id": request_id}) as call:
            request = await in_thread(erasure.load, store, request_id)
            if request is None:
                raise ToolError(f"no erasure request {request_id}")
            call.outcome["status"] = "ok"
            return request.view()

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def audit_trail(
        ctx: Context,
        expected_head: Annotated[
            str | None,
            Field(
                pattern=audit.HEAD_PATTERN,
                description="`SEQUENCE:HASH` published earlier: detects a truncated trail.",
            ),
        ] = None,
    ) -> AuditTrail:
        """Every record of the audit trail (erasures, readmissions, governance calls), oldest
        first, and whether its hash chain is intact; `problems` says what was altered,
        removed or reordered."""
        async with audited(ctx, "audit_trail", {}) as call:
            trail = await in_thread(get_audit_trail, settings, expected_head)
            call.outcome["status"] = "ok"
            return trail

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
    async def readmit(
        request_id: Annotated[str, Field(description="A completed erasure request's id.")],
        ctx: Context,
    ) -> AuditRecord:
        """Lift the tombstones a completed erasure left, so the same content may be indexed
        again (by a re-upload or the next sync); returns the readmission's audit record."""
        async with audited(ctx, "readmit", {"erasure_request_id": request_id}) as call:
            try:
                record = await in_thread(erasure.readmit, store, request_id, call.principal.subject)
            except KeyError as unknown:
                raise ToolError(str(unknown.args[0])) from None
            call.outcome["status"] = "ok"
            return record

    tools = (request_erasure, erasure_status, audit_trail, readmit)
    server.middleware.append(ObservedTools(NAME, {tool.__name__ for tool in tools}))
    return server


def _scope(
    doc_ids: list[str] | None, source_prefix: str | None, subject: str | None
) -> ErasureScope:
    fields = {"doc_ids": doc_ids, "source_prefix": source_prefix, "subject": subject}
    return parsed(ErasureScope, **{name: value for name, value in fields.items() if value})


def _can_elicit(ctx: Context) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _question(preview: ErasurePreview) -> str:
    sources = "".join(f"\n  - {key}" for key in preview.sources[:20])
    more = f"\n  … and {len(preview.sources) - 20} more" if len(preview.sources) > 20 else ""
    return (
        f"Erase for good {len(preview.doc_ids)} document(s), {preview.chunks} indexed "
        f"chunk(s), {preview.cached_answers} cached answer(s) and {preview.warehouse_rows} "
        f"warehouse row(s)?{sources}{more}"
    )


def _declined() -> ErasureDecision:
    return ErasureDecision(
        outcome="declined", message="Not confirmed: nothing was erased.", preview=None
    )
