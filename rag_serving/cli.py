"""`ragctl`: ingest, search, ask, status, serve, and the whole stack for development.

JSON output (`--json`) has the same shapes as the REST API.
"""

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from json import dumps
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import track
from rich.table import Table
from typer.core import TyperGroup

from rag_core import services
from rag_core.adapters import audit
from rag_core.adapters.catalog import add_sources
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import assemble_local_model
from rag_core.adapters.local_servers import TansuBroker
from rag_core.adapters.processes import accepts_connections, stop_process_groups
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.domain.events import topic_schemas
from rag_core.domain.schemas import (
    MAX_TOP_K,
    QueryRequest,
    SearchMode,
    SearchRequest,
    SearchResponse,
)
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureScope
from rag_core.flows.orchestration import CODE_LOCATION_MODULE, RunFailed, orchestrator_for
from rag_core.flows.streaming import StreamingIndexer
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings, get_settings
from rag_core.sources import warehouse, warehouse_sample

console = Console(stderr=True)


class OneLineErrors(TyperGroup):
    """Every failure a command does not report itself ends `ragctl` with one line on stderr
    and exit status 1, never a traceback. (Usage errors keep click's own message, status 2.)"""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context, not public
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):  # click's own: usage, exit
            raise
        except Exception as failure:
            console.print(f"error: {_one_line(failure)}", style="red", markup=False,
                          highlight=False, soft_wrap=True)  # fmt: skip
            raise typer.Exit(1) from failure


def _one_line(failure: Exception) -> str:
    if isinstance(failure, ValidationError):
        text = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in failure.errors()
        )
    else:
        text = f"{type(failure).__name__}: {failure}"
    return " ".join(text.split())


app = typer.Typer(help="Operate the RAG platform.", no_args_is_help=True, cls=OneLineErrors)
warehouse_app = typer.Typer(help="The warehouse: sample tables and dbt models.")
app.add_typer(warehouse_app, name="warehouse")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (REST API shapes).")]
TopKOption = Annotated[int, typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K)]


def _index_sources(settings: Settings, source_keys: list[str] | None, activity: str) -> list[str]:
    """Index new versions of the given sources (all when None) in one Dagster run."""
    with console.status(activity):
        try:
            return orchestrator_for(settings).index_sources(source_keys)
        except RunFailed as failure:
            console.print(f"[red]{failure}[/red]")
            raise typer.Exit(1) from failure


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(exists=True)]) -> None:
    """Copy files or folders into the object store and index them; returns when queryable.
    A `<file>.meta.json` beside a file is copied as its access sidecar (acl, subjects), never
    indexed as a document."""
    settings = get_settings()
    store = services.object_store(settings)
    try:
        source_keys = add_sources(
            store, paths, lambda planned: track(planned, description="Copying", console=console)
        )
    except ValueError as refused:  # a file name that is no source key, an invalid sidecar
        console.print(f"[red]{refused}[/red]")
        raise typer.Exit(2) from refused
    new_keys = _index_sources(settings, source_keys, "Indexing new document versions")
    status = services.index_status(settings)
    console.print(
        f"{len(source_keys)} files, {len(new_keys)} new versions indexed; index holds "
        f"{status.documents} documents, {status.chunks} chunks"
        + (f"; {status.failed_documents} could not be parsed" if status.failed_documents else "")
    )


@app.command()
def discover() -> None:
    """Index whatever is new or changed among the object store's sources."""
    new_keys = _index_sources(get_settings(), None, "Scanning sources, indexing new versions")
    console.print(f"{len(new_keys)} new versions indexed")


@app.command()
def sync() -> None:
    """Announce what changed in the object store and the warehouse as Kafka events."""
    console.print(_announce_changes(get_settings()))


def _announce_changes(settings: Settings) -> str:
    publisher = EventPublisher(settings)
    documents = sync_object_store(services.object_store(settings), publisher.document_changes)
    rows = (
        warehouse.announce_changes(settings, publisher.row_changes)
        if warehouse.configured(settings)
        else []
    )
    return f"announced {len(documents)} document and {len(rows)} table-row changes"


@app.command()
def stream(
    metrics_port: Annotated[
        int,
        typer.Option(help="Prometheus /metrics and the probes /healthz, /readyz; 0 for none."),
    ] = 9464,
) -> None:
    """Index change events as they arrive (the warm streaming worker), until interrupted."""
    from rag_core.flows.streaming import serve_probes

    settings = get_settings()
    recorder = orchestrator_for(settings).streaming_recorder()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with StreamingIndexer(settings, recorder) as worker:
        if metrics_port:  # not ready (503) until it consumes, after the catch-up
            serve_probes(worker.health, metrics_port)
        with console.status("Loading the model, catching up with the sources"):
            worker.warm_up()
            caught_up = worker.catch_up()
        console.print(
            f"caught up: {len(caught_up.indexed)} versions indexed, "
            f"{len(caught_up.retired)} retired; consuming {settings.kafka_bootstrap_servers}"
        )
        worker.run(stop)


@app.command()
def backfill() -> None:
    """Rebuild the index from the object store and the warehouse in one Dagster run."""
    with console.status("Rebuilding every current document version"):
        try:
            keys = orchestrator_for(get_settings()).backfill()
        except RunFailed as failure:
            console.print(f"[red]{failure}[/red]")
            raise typer.Exit(1) from failure
    console.print(f"{len(keys)} document versions rebuilt")


@app.command()
def forget(
    doc_id: Annotated[list[str] | None, typer.Option("--doc-id", help="A document id.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Every source under this URI.")] = None,
    subject: Annotated[str | None, typer.Option(help="Everything about this person.")] = None,
    untag: Annotated[bool, typer.Option(help="Remove tags that keep old versions.")] = False,
    requested_by: Annotated[str, typer.Option()] = os.environ.get("USER", "ragctl"),
    resume: Annotated[str | None, typer.Option(help="Resume a failed request by id.")] = None,
    readmit: Annotated[
        str | None, typer.Option(help="Lift the tombstones of a completed request by id.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Erase documents (by id, source prefix or data subject) everywhere, verify, audit;
    or, with --readmit, let the content a request erased be indexed again (audited)."""
    settings = get_settings()
    store = services.object_store(settings)
    if readmit is not None:
        try:
            record = erasure.readmit(store, readmit, requested_by)
        except KeyError as unknown:
            raise typer.BadParameter(str(unknown)) from unknown
        print(record.model_dump_json(indent=2) if json else f"readmitted: {record.outcome}")
        return
    if resume is None:
        try:
            scope = ErasureScope(doc_ids=doc_id or [], source_prefix=prefix, subject=subject)
        except ValidationError as invalid:
            raise typer.BadParameter(invalid.errors()[0]["msg"]) from invalid
        resume = erasure.submit(store, scope, requested_by, untag_versions=untag).request_id
    try:
        with console.status("Erasing and verifying"):
            request = orchestrator_for(settings).erase(resume)
    except Exception as failure:
        console.print(f"[red]request {resume} failed: {failure}[/red] (resume with --resume)")
        raise typer.Exit(1) from failure
    if json:
        print(request.view().model_dump_json(indent=2))
        return
    console.print(
        f"request {request.request_id}: {request.status}, {request.matched_documents} "
        f"documents; erased {request.erased}; verified {request.verification}"
    )


def _parse_head(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    try:
        return audit.parse_head(value)
    except ValueError as invalid:
        raise typer.BadParameter(str(invalid)) from invalid


@app.command("audit")
def audit_trail(
    json: JsonOption = False,
    expect_head: Annotated[
        str | None,
        typer.Option(help="SEQUENCE:HASH published earlier; a truncated trail then fails."),
    ] = None,
) -> None:
    """The erasure audit trail and whether its hash chain is intact."""
    store = services.object_store(get_settings())
    problems = audit.verify_trail(store, expected_head=_parse_head(expect_head))
    if json:
        records = [] if problems else audit.read_trail(store)
        print(dumps({"records": [r.model_dump(mode="json") for r in records],
                     "head": audit.head(store), "problems": problems}, indent=2))  # fmt: skip
    else:
        table = Table("seq", "recorded at", "actor", "request", "documents", "verified")
        for record in [] if problems else audit.read_trail(store):
            verified = all(record.outcome.get("verification", {}).values())
            table.add_row(str(record.sequence), f"{record.recorded_at:%Y-%m-%d %H:%M:%S}",
                          record.actor, record.request_id,
                          str(record.outcome.get("matched_documents")), str(verified))  # fmt: skip
        Console().print(table)
        sequence, digest = audit.head(store)
        console.print(f"head {sequence}:{digest}")
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise typer.Exit(1)


@warehouse_app.command("load-sample")
def warehouse_load_sample() -> None:
    """(Re)load the sample support tickets into the warehouse's raw schema."""
    rows = warehouse_sample.load_sample(get_settings())
    console.print(f"{rows} sample rows loaded into {warehouse_sample.SAMPLE_TABLE}")


@warehouse_app.command("build")
def warehouse_build() -> None:
    """Run `dbt build`: staging models and the models that render rows into documents."""
    build_models(get_settings())
    console.print("dbt build finished")


@app.command()
def search(
    query: str,
    top_k: TopKOption = 5,
    mode: Annotated[SearchMode | None, typer.Option(help="hybrid, vector or keyword")] = None,
    json: JsonOption = False,
) -> None:
    """Chunks most relevant to QUERY."""
    request = SearchRequest(query=query, top_k=top_k, mode=mode)  # refused before any loading
    hits = services.retriever(get_settings()).search(request.query, top_k, mode=mode)
    if json:
        print(SearchResponse(hits=hits).model_dump_json(indent=2))
        return
    table = Table("score", "source", "section", "text")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", hit.source_uri.rsplit("/", 2)[-1], hit.section,
                      hit.text[:160].replace("\n", " "))  # fmt: skip
    Console().print(table)


@app.command()
def ask(question: str, top_k: TopKOption = 5, json: JsonOption = False) -> None:
    """Answer QUESTION from the index, with citations."""
    request = QueryRequest(question=question, top_k=top_k)  # refused before any loading
    response = services.query_service(get_settings()).query(request)
    if json:
        print(response.model_dump_json(indent=2))
        return
    out = Console()
    out.print(response.answer, f"\n[dim]generator: {response.generator}[/dim]")
    for citation in response.citations:
        out.print(f"[{citation.n}] {citation.title} — {citation.source_uri}")


@app.command()
def status(json: JsonOption = False) -> None:
    """Documents, versions, chunks and index version."""
    current = services.index_status(get_settings())
    if json:
        print(current.model_dump_json(indent=2))
        return
    table = Table("documents", "versions", "chunks", "index version", "unparseable")
    counts = (current.documents, current.versions, current.chunks, current.index_version,
              current.failed_documents)  # fmt: skip
    table.add_row(*(str(count) for count in counts))
    Console().print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes. Each has its own in-flight limit (RAG_MAX_IN_FLIGHT) and, "
            "unless RAG_INFERENCE_THREADS is set, cores / N inference threads.",
        ),
    ] = 1,
) -> None:
    """Run the REST API."""
    import uvicorn

    _refuse_dev_identity_off_loopback(get_settings(), host)
    # Workers are spawned processes: they read their settings, this one included, from the env.
    os.environ.setdefault("RAG_INFERENCE_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    uvicorn.run("rag_serving.main:create_app", factory=True, host=host, port=port, workers=workers)


def _refuse_dev_identity_off_loopback(settings: Settings, host: str) -> None:
    """The dev identity reads every document with every scope: serve it only on loopback."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if settings.auth_mode == "dev" and not loopback:
        console.print(
            f"[red]RAG_AUTH_MODE=dev lets anyone read everything: not serving it on {host}. "
            "Set RAG_AUTH_MODE=oidc with RAG_OIDC_ISSUER and RAG_OIDC_AUDIENCE.[/red]"
        )
        raise typer.Exit(2)


def _reset_signals() -> None:
    """Children get default SIGINT/SIGTERM handling, whatever the parent shell ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@app.command()
def dev(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    api_port: Annotated[int, typer.Option()] = 8000,
    dagster_port: Annotated[int, typer.Option()] = 3000,
) -> None:
    """Kafka broker (tansu, unless one is configured) + streaming worker + Dagster webserver
    and daemon + API + local model, until interrupted."""
    settings = get_settings()
    _refuse_dev_identity_off_loopback(settings, host)
    orchestrator_for(settings).prepare_instance()
    broker = _embedded_broker(settings)
    env = os.environ | {
        "RAG_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "RAG_DAGSTER_URL": f"http://{host}:{dagster_port}",  # with RAG_ORCHESTRATOR=dagster
    }
    local_llm = None
    if not settings.llm_base_url:  # the embedded default: serve the packaged model ourselves
        with console.status("Assembling the local model (once)"):
            local_llm = LocalLLMServer(
                assemble_local_model(settings.home / "models"), settings.llm_port
            )
        env["RAG_LLM_BASE_URL"] = local_llm.base_url
    bin_dir = Path(sys.executable).parent
    commands = [
        [str(bin_dir / "dagster-webserver"), "-m", CODE_LOCATION_MODULE,
         "-h", host, "-p", str(dagster_port)],
        [str(bin_dir / "dagster-daemon"), "run", "-m", CODE_LOCATION_MODULE],
        [sys.executable, "-m", "uvicorn", "--factory", "rag_serving.main:create_app",
         "--host", host, "--port", str(api_port)],
        [str(bin_dir / "ragctl"), "stream"],
    ]  # fmt: skip
    if local_llm:
        commands.append(local_llm.command)
    processes = [
        subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_reset_signals)
        for cmd in commands
    ]
    console.print(
        f"Dagster UI http://{host}:{dagster_port}  API http://{host}:{api_port}/docs  "
        f"LLM {env.get('RAG_LLM_BASE_URL') or 'none (extractive answers)'}"
    )
    # Stop on SIGINT or SIGTERM even when started from a shell that ignores SIGINT for
    # background jobs (Python then leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        console.print(_announce_changes(settings))
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        console.print("[red]a process exited; stopping the others[/red]")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_process_groups(processes)
        if broker:
            broker.stop()


def _embedded_broker(settings: Settings) -> TansuBroker | None:
    """Start tansu (in memory) when the configured broker is on loopback and not running;
    the streaming worker's catch-up at start covers events lost with a previous one."""
    host, _, port = settings.kafka_bootstrap_servers.partition(":")
    if host not in ("127.0.0.1", "localhost") or accepts_connections(int(port or 9092)):
        return None
    with console.status("Starting the Kafka broker (tansu, in memory)"):
        return TansuBroker(
            int(port or 9092), log_path=settings.home / "tansu.log",
            topic_schemas=topic_schemas(settings), data_dir=settings.home / "tansu",
        ).start()  # fmt: skip
