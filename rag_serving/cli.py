"""`ragctl`: ingest, search, ask, status, serve, and the whole stack for development.

JSON output (`--json`) has the same shapes as the REST API. Storage, models and the
orchestrator are imported inside the commands that use them, so a command starts without
loading the rest of the stack; `search`, `ask`, `status` and `documents` load none of it when
an API answers for them (`rag_serving.cli_api`).
"""

import ipaddress
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from json import dumps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table
from typer.core import TyperGroup

import rag_core
from rag_core.adapters.processes import (
    Child,
    ChildExited,
    accepts_connections,
    responds_ok,
    start_logged,
    stop_process_groups,
    wait_until_ready,
)
from rag_core.domain.schemas import (
    MAX_TOP_K,
    Hit,
    IndexStatus,
    QueryRequest,
    QueryResponse,
    SearchMode,
    SearchRequest,
    SearchResponse,
)
from rag_core.settings import Settings, get_settings
from rag_serving.cli_api import announcing_api, from_api
from rag_serving.cli_documents import documents_app
from rag_serving.cli_eval import eval_app
from rag_serving.cli_mcp import mcp_app

if TYPE_CHECKING:
    from rag_core.adapters.local_servers import TansuBroker
    from rag_core.adapters.monitoring import AlertmanagerServer, PrometheusServer
    from rag_core.adapters.objectstore import ObjectStore
    from rag_core.adapters.phoenix import PhoenixServer
    from rag_core.flows.orchestration import Orchestrator
    from rag_core.flows.pipeline import ParseFailure

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
app.add_typer(documents_app, name="documents")
app.add_typer(eval_app, name="eval")
app.add_typer(mcp_app, name="mcp")


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"ragctl {rag_core.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Operate the RAG platform."""


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (REST API shapes).")]
TopKOption = Annotated[int, typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K)]


def orchestrator_for(settings: Settings) -> "Orchestrator":
    """The orchestrator `RAG_ORCHESTRATOR` names, imported on first use: its module loads the
    indexing stack, which only the commands that start runs need."""
    from rag_core.flows import orchestration

    return orchestration.orchestrator_for(settings)


def _index_sources(settings: Settings, source_keys: list[str] | None, activity: str) -> list[str]:
    """Index new versions of the given sources (all when None) in one Dagster run."""
    from rag_core.flows.orchestration import RunFailed

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
    from rich.progress import track

    from rag_core import services
    from rag_core.adapters.catalog import add_sources

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
    outcome = f"{_counted(len(source_keys), 'file')} copied; {_outcome(store, new_keys)}"
    console.print(outcome, markup=False, highlight=False)  # file names are not markup
    status = services.index_status(settings)
    console.print(
        f"the index holds {_counted(status.documents, 'document')}, "
        f"{_counted(status.chunks, 'chunk')}"
    )


@app.command()
def discover() -> None:
    """Index whatever is new or changed among the object store's sources."""
    from rag_core import services

    settings = get_settings()
    new_keys = _index_sources(settings, None, "Scanning sources, indexing new versions")
    console.print(_outcome(services.object_store(settings), new_keys), markup=False)


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _outcome(store: "ObjectStore", partition_keys: list[str]) -> str:
    """What became of new versions: how many were indexed, and the sources of those that
    could not be parsed (named from their manifests, never from Dagster's records)."""
    from rag_core.domain.ids import split_partition_key
    from rag_core.flows.pipeline import parse_failures

    failures = parse_failures(store, map(split_partition_key, partition_keys))
    summary = f"{_counted(len(partition_keys) - len(failures), 'new version')} indexed"
    if not failures:
        return summary
    lines = [f"  {_source_of(failure.source_key)}: {failure.reason}" for failure in failures]
    return "\n".join([f"{summary}, {len(failures)} could not be parsed:", *lines])


def _source_of(source_key: str | None) -> str:
    return source_key or "(source gone)"


@app.command()
def sync() -> None:
    """Announce what changed in the object store and (in a Dagster run) the warehouse as
    Kafka events."""
    console.print(_announce_changes(get_settings()), soft_wrap=True, highlight=False)


def _announce_changes(settings: Settings) -> str:
    """Announce the object store's changes, and the warehouse's in a Dagster run, which
    shows as a materialization of `warehouse_row_events`."""
    from rag_core import services
    from rag_core.adapters.kafka import EventPublisher
    from rag_core.flows.sync import sync_object_store
    from rag_core.sources import warehouse

    publisher = EventPublisher(settings)
    documents = sync_object_store(services.object_store(settings), publisher.document_changes)
    announced = f"announced {len(documents)} document changes"
    if not warehouse.configured(settings):
        return announced
    run_id = orchestrator_for(settings).announce_warehouse_rows()
    return f"{announced}; warehouse row changes in run {run_id}"


@app.command()
def stream(
    metrics_port: Annotated[
        int,
        typer.Option(help="Prometheus /metrics and the probes /healthz, /readyz; 0 for none."),
    ] = 9464,
    metrics_host: Annotated[
        str,
        typer.Option(help="Address they listen on: 0.0.0.0 in a container Prometheus scrapes."),
    ] = "127.0.0.1",
) -> None:
    """Index change events as they arrive (the warm streaming worker), until interrupted."""
    from rag_core.flows.streaming import StreamingIndexer, serve_probes
    from rag_serving.observability import configure_tracing

    configure_tracing()  # each batch continues its events' traces, exported as the API's are
    settings = get_settings()
    recorder = orchestrator_for(settings).streaming_recorder()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with StreamingIndexer(settings, recorder) as worker:
        if metrics_port:  # not ready (503) until it consumes, after the catch-up
            serve_probes(worker.health, metrics_port, metrics_host)
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
    from rag_core.flows.orchestration import RunFailed

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
    from rag_core import services
    from rag_core.flows import erasure
    from rag_core.flows.erasure import ErasureScope

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
    from rag_core.adapters import audit

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
    from rag_core import services
    from rag_core.adapters import audit

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
    from rag_core.sources import warehouse_sample

    rows = warehouse_sample.load_sample(get_settings())
    console.print(f"{rows} sample rows loaded into {warehouse_sample.SAMPLE_TABLE}")


@warehouse_app.command("build")
def warehouse_build() -> None:
    """Run `dbt build` (staging models and the models that render rows into documents) as a
    Dagster run, which the UI shows with the models' assets and their tests."""
    with console.status("Building the warehouse's models (dbt build)"):
        run_id = orchestrator_for(get_settings()).build_warehouse()
    console.print(f"dbt build finished: run {run_id}")


@app.command()
def search(
    query: str,
    top_k: TopKOption = 5,
    mode: Annotated[SearchMode | None, typer.Option(help="hybrid, vector or keyword")] = None,
    json: JsonOption = False,
) -> None:
    """Chunks most relevant to QUERY."""
    request = SearchRequest(query=query, top_k=top_k, mode=mode)  # refused before any loading
    settings = get_settings()
    answered = from_api(settings, "/v1/search", request)
    if answered is not None:
        hits = SearchResponse.model_validate_json(answered).hits
    else:
        from rag_core import services

        hits = services.retriever(settings).search(request.query, top_k, mode=mode)
    _print_hits(hits, json)


def _print_hits(hits: list[Hit], json: bool) -> None:
    if json:
        print(SearchResponse(hits=hits).model_dump_json(indent=2))
        return
    table = Table("score", "source", "section", "text")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", hit.source_uri.rsplit("/", 2)[-1], hit.section,
                      hit.text[:160].replace("\n", " "))  # fmt: skip
    Console().print(table)


@app.command()
def ask(
    question: str,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            "-k",
            min=1,
            max=MAX_TOP_K,
            help="Passages to answer from (default: the profile's, RAG_QUERY_TOP_K)",
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Answer QUESTION from the index, with citations."""
    # Refused before any loading. Without --top-k, whoever answers (the API or this process)
    # applies its profile's.
    request = QueryRequest.model_validate(
        {"question": question} | ({} if top_k is None else {"top_k": top_k})
    )
    settings = get_settings()
    answered = from_api(settings, "/v1/query", request)
    if answered is not None:
        response = QueryResponse.model_validate_json(answered)
    else:
        from rag_core import services

        service = services.query_service(settings)
        response = service.query(request)
    _print_answer(response, json)


def _print_answer(response: QueryResponse, json: bool) -> None:
    if json:
        print(response.model_dump_json(indent=2))
        return
    out = Console()
    out.print(response.answer, f"\n[dim]generator: {response.generator}[/dim]")
    for citation in response.citations:
        out.print(f"[{citation.n}] {citation.title} — {citation.source_uri}")


@app.command()
def status(
    json: JsonOption = False,
    failures: Annotated[
        bool,
        typer.Option(
            "--failures", help="List the versions that could not be parsed, by their source."
        ),
    ] = False,
) -> None:
    """Documents, versions, chunks, index version and the cost profile answering; with
    --failures, the files that could not be parsed: source, partition (`<doc_id>@<version>`)
    and reason. Without --failures, and with RAG_CLI_USE_API, the running API counts them and
    names its profile (`GET /v1/status`)."""
    settings = get_settings()
    if failures:
        from rag_core import services
        from rag_core.flows.pipeline import parse_failures

        _print_failures(parse_failures(services.object_store(settings)), json)
        return
    answered = from_api(settings, "/v1/status")
    if answered is not None:
        current = IndexStatus.model_validate_json(answered)
    else:
        from rag_core import services

        current = services.index_status(settings)
    if json:
        print(current.model_dump_json(indent=2))
        return
    table = Table("documents", "versions", "chunks", "index version", "unparseable", "profile")
    counts = (current.documents, current.versions, current.chunks, current.index_version,
              current.failed_documents)  # fmt: skip
    table.add_row(*(str(count) for count in counts), current.profile)
    Console().print(table)


def _print_failures(failures: "list[ParseFailure]", json: bool) -> None:
    if json:
        print(dumps({"failures": [failure.model_dump() for failure in failures]}, indent=2))
        return
    table = Table("source", Column("partition", overflow="fold"), "reason")  # whole, to copy
    for failure in sorted(failures, key=lambda f: _source_of(f.source_key)):
        table.add_row(_source_of(failure.source_key), f"{failure.doc_id}@{failure.version}",
                      failure.reason)  # fmt: skip
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


DEV_START_TIMEOUT_SECONDS = 600.0
TRACES_PORT = 6006  # Phoenix's own default
STREAM_PROBES_PORT = 9464  # `ragctl stream`'s /readyz: it has caught up and consumes


def _dev_logs(settings: Settings) -> Path:
    """Where `ragctl dev` sends its children's output, one file per process."""
    return settings.home / "logs"


@app.command()
def dev(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    api_port: Annotated[int, typer.Option()] = 8000,
    dagster_port: Annotated[int, typer.Option()] = 3000,
    traces: Annotated[
        bool,
        typer.Option(
            help=f"Also start Arize Phoenix on 127.0.0.1:{TRACES_PORT} (the `traces` extra) "
            "and send every process's spans to it."
        ),
    ] = False,
) -> None:
    """Kafka broker (tansu, unless one is configured) + streaming worker + Dagster webserver
    and daemon + API + local model, until interrupted. Their output goes to files under
    RAG_HOME/logs; the console ends with where everything is once all of it is ready."""
    settings = get_settings()
    _refuse_dev_identity_off_loopback(settings, host)
    orchestrator_for(settings).prepare_instance()
    # Stop on SIGINT or SIGTERM even when started from a shell that ignores SIGINT for
    # background jobs (Python then leaves SIGINT ignored). Set before any child starts: the
    # children then get the default handling back (an ignored signal would stay ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logs = _dev_logs(settings)
    children: list[Child] = []
    broker = None
    try:
        broker = _embedded_broker(settings)
        llm_url = settings.llm_base_url
        if settings.answerer == "llm" and not llm_url:  # the default: serve the packaged model
            from rag_core.adapters.llm.server import LocalLLMServer
            from rag_core.adapters.llm.weights import assemble_local_model

            with console.status("Assembling the local model (once)"):
                model = assemble_local_model(settings.home / "models")
            local_llm = LocalLLMServer(model, settings.llm_port, log_path=logs / "llm.log")
            children.append(local_llm.spawn())
            llm_url = local_llm.base_url
        monitoring = _monitoring(settings, f"{host}:{api_port}")
        children += [server.spawn() for server in monitoring]
        traces_url = None
        if traces:
            viewer = _trace_viewer(settings)
            children.append(viewer.spawn())
            traces_url = viewer.url
        env = os.environ | {
            "RAG_HOME": str(settings.home),
            "DAGSTER_HOME": str(settings.dagster_home),
            "RAG_DAGSTER_URL": f"http://{host}:{dagster_port}",  # with RAG_ORCHESTRATOR=dagster
            "RAG_API_URL": f"http://{host}:{api_port}",  # document links in Dagster's metadata
            "RAG_LLM_BASE_URL": llm_url,
        }
        if traces_url:  # every process exports its spans there (the exporter adds /v1/traces)
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = traces_url
        for name, command, log_name, ready in _dev_commands(host, api_port, dagster_port):
            process = start_logged(command, logs / log_name, env=env)
            children.append(Child(name, process, logs / log_name, ready))
        starting = ", ".join(child.name for child in children)
        console.print(f"starting {starting}; logs in {logs}", soft_wrap=True)
        console.print(_announce_changes(settings), soft_wrap=True, highlight=False)
        with console.status("Waiting for them to be ready"):
            wait_until_ready(children, DEV_START_TIMEOUT_SECONDS)
        kafka = settings.kafka_bootstrap_servers + (" (tansu, in memory)" if broker else "")
        answers = llm_url if settings.answerer == "llm" else "none: extractive answers"
        banner = _dev_banner(host, api_port, dagster_port, answers, kafka, logs, traces_url,
                             monitoring)  # fmt: skip
        console.print(banner, markup=False, highlight=False, soft_wrap=True)
        with announcing_api(settings, f"http://{host}:{api_port}"):
            while True:
                for child in children:
                    child.check_running()
                time.sleep(0.5)
    except (ChildExited, TimeoutError) as failure:
        console.print(f"{failure}\nstopping the others", style="red", markup=False,
                      highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(1) from failure
    except KeyboardInterrupt:
        pass
    finally:
        stop_process_groups([child.process for child in children])
        if broker:
            broker.stop()


def _dev_commands(
    host: str, api_port: int, dagster_port: int
) -> list[tuple[str, list[str], str, Callable[[], bool]]]:
    """What `ragctl dev` runs beside the broker and the model: name, command, log file, and
    when it is ready (the daemon serves nothing: running is all it shows)."""
    from rag_core.flows.orchestration import CODE_LOCATION_MODULE

    bin_dir = Path(sys.executable).parent
    dagster, api = f"http://{host}:{dagster_port}", f"http://{host}:{api_port}"
    return [
        ("the Dagster webserver",
         [str(bin_dir / "dagster-webserver"), "-m", CODE_LOCATION_MODULE,
          "-h", host, "-p", str(dagster_port)],
         "dagster-webserver.log", partial(responds_ok, f"{dagster}/server_info")),
        ("the Dagster daemon",
         [str(bin_dir / "dagster-daemon"), "run", "-m", CODE_LOCATION_MODULE],
         "dagster-daemon.log", lambda: True),
        ("the API",
         [sys.executable, "-m", "uvicorn", "--factory", "rag_serving.main:create_app",
          "--host", host, "--port", str(api_port)],
         "api.log", partial(responds_ok, f"{api}/healthz")),
        ("the streaming worker",
         [str(bin_dir / "ragctl"), "stream", "--metrics-port", str(STREAM_PROBES_PORT)],
         "stream.log", partial(responds_ok, f"http://127.0.0.1:{STREAM_PROBES_PORT}/readyz")),
    ]  # fmt: skip


# What the banner suggests running in another terminal; tests/test_headline_examples.py runs
# each on the sample corpus and the packaged model, as `make run` leaves them.
DEV_EXAMPLES = (
    'ragctl ask "Which port does the server listen on?"',
    'ragctl search "reclaim storage occupied by dead tuples"',
    "ragctl documents find vacuum",
    "ragctl status",
)


def _dev_banner(
    host: str,
    api_port: int,
    dagster_port: int,
    llm_url: str,
    kafka: str,
    logs: Path,
    traces_url: str | None = None,
    monitoring: Sequence["PrometheusServer | AlertmanagerServer"] = (),
) -> str:
    """The lines `ragctl dev` ends its start-up with: where everything is, how to stop."""
    rows = {
        "Dagster UI": f"http://{host}:{dagster_port}",
        "API docs": f"http://{host}:{api_port}/docs",
        **({"Traces": f"{traces_url} (Phoenix)"} if traces_url else {}),
        **{server.name: f"{server.url}{MONITORING_NOTES[server.name]}" for server in monitoring},
        **({"Dashboards": f"{DASHBOARDS}/*.json (Grafana)"} if monitoring else {}),
        "LLM": llm_url,
        "Kafka": kafka,
        "Logs": f"{logs}/ (one file per process)",
        "Stop": "Ctrl-C",
    }
    width = max(map(len, rows))
    tries = [
        f"  {'Try' if n == 0 else '':<{width}}  {example}" for n, example in enumerate(DEV_EXAMPLES)
    ]
    return "\n".join(
        ["Ready.", *(f"  {name:<{width}}  {value}" for name, value in rows.items()), *tries]
    )


DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
PROMETHEUS_PORT, ALERTMANAGER_PORT = 9090, 9093  # their own defaults
MONITORING_NOTES = {"Prometheus": " (rules and alerts loaded)", "Alertmanager": ""}


def _monitoring(settings: Settings, api: str) -> list["PrometheusServer | AlertmanagerServer"]:
    """Prometheus scraping the API and the worker with the generated rules and alerts, and
    Alertmanager routing them, when Debian's packages are installed; one line when not."""
    from rag_core.adapters.monitoring import AlertmanagerServer, PrometheusServer, scrape_config

    logs, data = _dev_logs(settings), settings.home / "monitoring"
    try:
        alertmanager = AlertmanagerServer(
            DASHBOARDS / "alertmanager.yml", data / "alertmanager", ALERTMANAGER_PORT,
            log_path=logs / "alertmanager.log",
        )  # fmt: skip
        config = scrape_config(
            DASHBOARDS / "prometheus.yml", api=api, worker=f"127.0.0.1:{STREAM_PROBES_PORT}",
            alertmanager=f"127.0.0.1:{ALERTMANAGER_PORT}",
        )  # fmt: skip
        prometheus = PrometheusServer(
            config, data / "prometheus", PROMETHEUS_PORT, log_path=logs / "prometheus.log"
        )
    except (RuntimeError, OSError) as missing:  # not installed, or no dashboards/ beside us
        console.print(f"no metrics server: {missing}", markup=False, highlight=False)
        return []
    return [prometheus, alertmanager]


def _trace_viewer(settings: Settings) -> "PhoenixServer":
    """Arize Phoenix on loopback (it has no login: traces stay on this machine), its data
    under RAG_HOME/phoenix, kept from one `ragctl dev` to the next."""
    from rag_core.adapters.phoenix import PhoenixServer

    try:
        return PhoenixServer(
            settings.home / "phoenix", TRACES_PORT, log_path=_dev_logs(settings) / "phoenix.log"
        )
    except RuntimeError as missing:  # not installed
        console.print(str(missing), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from missing


def _embedded_broker(settings: Settings) -> "TansuBroker | None":
    """Start tansu (in memory) when the configured broker is on loopback and not running;
    the streaming worker's catch-up at start covers events lost with a previous one."""
    host, _, port = settings.kafka_bootstrap_servers.partition(":")
    if host not in ("127.0.0.1", "localhost") or accepts_connections(int(port or 9092)):
        return None
    from rag_core.adapters.local_servers import TansuBroker
    from rag_core.domain.events import topic_schemas

    with console.status("Starting the Kafka broker (tansu, in memory)"):
        return TansuBroker(
            int(port or 9092), log_path=_dev_logs(settings) / "broker.log",
            topic_schemas=topic_schemas(settings), data_dir=settings.home / "tansu",
        ).start()  # fmt: skip
