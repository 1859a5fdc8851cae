"""`ragctl mcp docstore|governance`: the MCP servers over stdio, for a local client (a
desktop assistant) that starts them itself. The client is the local operator, as for the
other `ragctl` commands (every document, every scope), unless `--subject`, `--group` and
`--scope` say otherwise (a client's configuration passes them as arguments); the subject is
who the audit trail names. The index and the model load on the first tool call,
so the client's handshake is answered at once. Over HTTP the API serves the same servers
(`rag_serving.mcp.http`).
"""

import getpass
from functools import cache, partial
from typing import TYPE_CHECKING, Annotated

import typer

from rag_core.settings import get_settings

if TYPE_CHECKING:
    from rag_serving.auth import Principal

mcp_app = typer.Typer(
    help="Serve the MCP servers (docstore, governance) over stdio to a local client.",
    no_args_is_help=True,
)

SubjectOption = Annotated[
    str | None,
    typer.Option(help="Who the client acts for (default: local:<OS user>)."),
]
GroupOption = Annotated[
    list[str] | None,
    typer.Option(
        "--group",
        help="Read only what these groups may (repeatable; default: every document).",
    ),
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option("--scope", help="Scopes granted (repeatable; default: all)."),
]


def local_identity(
    subject: str | None, groups: list[str] | None, scopes: list[str] | None
) -> "Principal":
    from rag_serving.auth import ALL_SCOPES, Principal

    return Principal(
        subject=subject or f"local:{getpass.getuser()}",
        scopes=frozenset(scopes) if scopes else ALL_SCOPES,
        groups=frozenset(groups) if groups else None,
    )


@mcp_app.command("docstore")
def docstore(
    subject: SubjectOption = None, group: GroupOption = None, scope: ScopeOption = None
) -> None:
    """search, ask, get_chunk, get_document, list_sources, and rag://documents/{doc_id}."""
    from rag_core import services
    from rag_serving.mcp import docstore

    settings = get_settings()
    query_service = cache(partial(services.query_service, settings))
    docstore.build(settings, query_service, local_identity(subject, group, scope)).run("stdio")


@mcp_app.command("governance")
def governance(
    subject: SubjectOption = None, group: GroupOption = None, scope: ScopeOption = None
) -> None:
    """request_erasure (with consent), erasure_status, audit_trail, readmit."""
    from rag_serving.mcp import governance

    settings = get_settings()
    governance.build(settings, local_identity(subject, group, scope)).run("stdio")
