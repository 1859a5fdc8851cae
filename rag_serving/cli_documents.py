"""`ragctl documents`: from the opaque ids Dagster shows to the documents, and back.

The same lookup as `GET /v1/documents`: asked of the running API when there is one
(`rag_serving.cli_api`), else run in this process as the local operator (every document
readable). Storage is imported inside the commands, so `--help` starts at once.
"""

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from rag_core.domain.schemas import DocumentDetails, DocumentList
from rag_core.settings import get_settings
from rag_serving.cli_api import ApiRefused, from_api

if TYPE_CHECKING:
    from rag_core.flows.documents import DocumentLookup

documents_app = typer.Typer(
    help="Look documents up: by id (a Dagster partition's `<doc_id>@…`) or by name.",
    no_args_is_help=True,
)
console = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (REST API shapes).")]
LimitOption = Annotated[int, typer.Option(min=1, max=500, help="Documents to show at most.")]
OffsetOption = Annotated[int, typer.Option(min=0, help="Documents to skip first.")]


def _lookup() -> "DocumentLookup":
    from rag_core import services
    from rag_core.flows.documents import DocumentLookup

    settings = get_settings()
    return DocumentLookup(services.object_store(settings), services.chunk_index(settings))


def _listed(name: str | None, limit: int, offset: int) -> DocumentList:
    params: dict[str, str | int] = {"limit": limit, "offset": offset}
    answered = from_api(
        get_settings(), "/v1/documents", params=params | ({"name": name} if name else {})
    )
    if answered is not None:
        return DocumentList.model_validate_json(answered)
    if name is None:
        return _lookup().list(None, limit, offset)
    return _lookup().find(name, None, limit, offset)


def _described(doc_id: str) -> DocumentDetails | None:
    try:
        answered = from_api(get_settings(), f"/v1/documents/{doc_id}")
    except ApiRefused as refused:
        if refused.status_code in (404, 422):  # unknown, erased, or not an id at all
            return None
        raise
    if answered is not None:
        return DocumentDetails.model_validate_json(answered)
    return _lookup().describe(doc_id)


def _print_list(found: DocumentList, json: bool, offset: int) -> None:
    if json:
        print(found.model_dump_json(indent=2))
        return
    table = Table("doc id", "source", "title", "chunks", "discovered")
    for document in found.documents:
        table.add_row(document.doc_id, document.source_key or document.source_uri,
                      document.title or "", str(document.chunks),
                      f"{document.discovered_at:%Y-%m-%d %H:%M}")  # fmt: skip
    Console().print(table)
    shown = len(found.documents)
    console.print(f"{offset + 1 if shown else 0}-{offset + shown} of {found.total} documents")


@documents_app.command("list")
def list_documents(
    limit: LimitOption = 50, offset: OffsetOption = 0, json: JsonOption = False
) -> None:
    """Every document, by source key."""
    _print_list(_listed(None, limit, offset), json, offset)


@documents_app.command()
def find(
    name: str, limit: LimitOption = 50, offset: OffsetOption = 0, json: JsonOption = False
) -> None:
    """Documents whose source key or title holds NAME (any case)."""
    _print_list(_listed(name, limit, offset), json, offset)


@documents_app.command()
def show(doc_id: str, json: JsonOption = False) -> None:
    """A document's source, title, versions (parse status, chunks) and access."""
    details = _described(doc_id)
    if details is None:
        console.print(f"no such document: {doc_id}", style="red", markup=False)
        raise typer.Exit(1)
    if json:
        print(details.model_dump_json(indent=2))
        return
    out = Console()
    out.print(f"[bold]{details.title or '(not indexed yet)'}[/bold]", highlight=False)
    out.print(f"doc id   {details.doc_id}\nsource   {details.source_key or '(gone)'}\n"
              f"uri      {details.source_uri}\nchunks   {details.chunks}\n"
              f"acl      {', '.join(details.access.acl) or '(public)'}\n"
              f"subjects {', '.join(details.access.subjects) or '(none)'}",
              markup=False, highlight=False)  # fmt: skip
    table = Table("version", "discovered", "bytes", "chunks", "parse status")
    for version in details.versions:
        status = ": ".join(filter(None, (version.parse_status, version.failure_reason)))
        table.add_row(version.version, f"{version.discovered_at:%Y-%m-%d %H:%M:%S}",
                      "" if version.size is None else str(version.size), str(version.chunks),
                      status)  # fmt: skip
    out.print(table)
