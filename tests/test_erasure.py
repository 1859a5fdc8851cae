"""Right to be forgotten on real storage: nothing of an erased document is left in the index
(any table version, any file), the object store, the caches, the warehouse or Dagster; the
audit trail verifies; erased content cannot come back through a replay."""

from pathlib import Path

import boto3
import dagster as dg
import lancedb
import pytest
from dagster._serdes import serialize_value
from typer.testing import CliRunner

from rag_assets.definitions import build_defs
from rag_assets.documents import PARTITIONS_NAME
from rag_assets.erasure import erasure_run_failures, lineage_stages
from rag_assets.ingest import backfill_index, ingest_sources, local_instance
from rag_assets.orchestration import execute
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.adapters import audit
from rag_core.adapters.cache import build_response_cache, entries_naming
from rag_core.adapters.catalog import discover, put_source
from rag_core.adapters.index import TABLE_NAME
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.warehouse.cdc import row_changes
from rag_core.adapters.warehouse.connection import connect
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.domain import ids
from rag_core.domain.chunk_store import EVERY_DOCUMENT, DocumentSelector, TaggedVersionsError
from rag_core.domain.documents import SourceMetadata
from rag_core.domain.layout import TOMBSTONES_PREFIX, Artifact, Stage, artifact_folder
from rag_core.domain.schemas import QueryRequest
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureRequest, ErasureScope
from rag_core.flows.orchestration import ERASURE_JOB, erasure_run_config
from rag_core.flows.streaming import StreamingIndexer
from rag_core.settings import Settings
from rag_core.sources import warehouse
from rag_core.sources.warehouse_sample import load_sample
from rag_serving.cli import app

from conftest import SAMPLE_CORPUS, announce, process

BADGES = "documents/security/visitor-badges.md"
SUBJECT = "orla.quinlan@example.com"
PHRASE = "violet lanyard registry"
BADGES_TEXT = (
    b"# Visitor badges\n\nOrla Quinlan keeps the violet lanyard registry for visiting auditors; "
    b"badges are returned to her desk on the third floor before six.\n"
)
QUESTION = "Who keeps the violet lanyard registry?"


def files_holding(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def index_with_badges(settings: Settings) -> tuple[dg.DagsterInstance, str]:
    store = services.object_store(settings)
    put_source(store, BADGES, BADGES_TEXT, SourceMetadata(acl=["staff"], subjects=[SUBJECT]))
    put_source(store, "documents/pip.md", (SAMPLE_CORPUS / "pip/getting-started.md").read_bytes())
    instance = local_instance(settings)
    ingest_sources(settings, instance)
    [doc_id] = services.chunk_index(settings).documents_matching(DocumentSelector(subject=SUBJECT))
    return instance, doc_id


def tag_current_version(settings: Settings, tag: str) -> None:
    """What an operator does with LanceDB's own API: keep the current table version."""
    table = lancedb.connect(settings.index_uri).open_table(TABLE_NAME)
    table.tags.create(tag, table.version)


def forget(
    settings: Settings, instance: dg.DagsterInstance, scope: ErasureScope, **options: bool
) -> ErasureRequest:
    request = erasure.submit(services.object_store(settings), scope, "dpo@example.com", **options)
    return execute(settings, instance, request.request_id)


@pytest.mark.slow
def test_an_erased_document_is_gone_from_every_place(rag_home: Settings) -> None:
    settings = rag_home
    instance, doc_id = index_with_badges(settings)
    service = services.query_service(settings)
    assert "Orla" in service.query(QueryRequest(question=QUESTION)).answer
    assert service.query(QueryRequest(question=QUESTION)).cached
    assert files_holding(Path(settings.index_uri), PHRASE.encode())

    request = forget(settings, instance, ErasureScope(doc_ids=[doc_id]))

    assert request.status == "completed" and all(request.verification.values())
    assert request.matched_documents == 1 and request.erased["cached_answers"] == 1
    assert request.scope is None  # the request no longer names anything
    assert services.embedder(settings).embed_query.cache_info().currsize == 0
    hits = services.retriever(settings).search(PHRASE, 10)
    assert all(hit.doc_id != doc_id for hit in hits)
    answer = services.query_service(settings).query(QueryRequest(question=QUESTION))
    assert not answer.cached and "Orla" not in answer.answer
    # Not in any table version, nor in any file of the index (compaction rewrote the rows
    # away instead of hiding them), nor anywhere in the object store.
    assert services.chunk_index(settings).versions_holding([doc_id]) == []
    assert files_holding(Path(settings.index_uri), PHRASE.encode()) == []
    objects = Path(settings.object_store_uri)
    assert files_holding(objects, PHRASE.encode()) == []
    assert [path for path in objects.rglob("*") if doc_id in str(path)] == []
    partitions = instance.get_dynamic_partitions(PARTITIONS_NAME)
    assert partitions and not any(key.startswith(doc_id) for key in partitions)
    # Dagster's history of the runs stays (docs/erasure.md says why): it holds the opaque
    # partition key, but no file name, no text, no subject.
    history = serialize_value([instance.all_logs(run.run_id) for run in instance.get_runs()])
    assert not any(word in history for word in ("visitor-badges", "lanyard", SUBJECT))
    assert services.chunk_index(settings).stats().documents == 1  # the other one stays

    assert audit.verify_trail(services.object_store(settings)) == []
    [record] = audit.read_trail(services.object_store(settings))
    assert record.request_id == request.request_id and record.outcome["verification"]
    assert SUBJECT not in record.model_dump_json()

    # The same bytes put back (a replayed event, a re-upload) are not indexed again.
    store = services.object_store(settings)
    put_source(store, BADGES, BADGES_TEXT, SourceMetadata(acl=["staff"], subjects=[SUBJECT]))
    assert discover(store, [BADGES]) == []
    assert ingest_sources(settings, instance) == []

    again = forget(settings, instance, ErasureScope(doc_ids=[doc_id]))
    assert again.status == "completed" and again.matched_documents == 0
    assert audit.verify_trail(store) == [] and len(audit.read_trail(store)) == 2


@pytest.mark.slow
def test_a_subject_is_erased_from_documents_and_warehouse_rows(rag_home: Settings) -> None:
    settings = rag_home
    customer = "maria.lopez@brightwave.example"  # two tickets in the sample warehouse
    load_sample(settings)
    with connect(settings) as connection:  # as a source may spell it
        connection.cursor().execute(
            "UPDATE raw.support_tickets SET customer_email = ' Maria.Lopez@BrightWave.example'"
            " WHERE ticket_id = 'TCK-1007'"
        )
    build_models(settings)
    instance = local_instance(settings)
    store = services.object_store(settings)
    put_source(store, "documents/crm/brightwave.md", b"# Brightwave\n\nKey account.\n",
               SourceMetadata(subjects=["MARIA.LOPEZ@brightwave.example"]))  # fmt: skip
    backfill_index(settings, instance)
    assert services.chunk_index(settings).stats().documents == 13

    request = forget(settings, instance, ErasureScope(subject=f" {customer.title()} "))

    assert request.status == "completed", request.error
    assert request.matched_documents == 3 and request.erased["warehouse_rows"] == 2
    assert request.verification["warehouse"]
    assert warehouse.records_left_about(settings, customer) == 0
    # Not even in the free blocks of the DuckDB file (DuckDB keeps deleted rows' bytes there).
    assert b"TCK-1007" not in settings.warehouse_path.read_bytes()
    assert services.chunk_index(settings).stats().documents == 10
    hits = services.retriever(settings).search("invoice PDF shows the old company logo", 10)
    assert all("TCK-1001" not in hit.source_uri for hit in hits)
    # The warehouse producer has nothing to announce about them: rows and state are gone.
    erased_rows = {"TCK-1001", "TCK-1007"}
    assert not erased_rows & {change.row_key for change in row_changes(settings)}
    record = audit.read_trail(store)[-1]
    assert customer not in record.model_dump_json() and "subject_sha256" in record.scope


def test_tagged_versions_stop_erasure_until_untagging_is_asked(rag_home: Settings) -> None:
    settings = rag_home
    instance, doc_id = index_with_badges(settings)
    tag_current_version(settings, "quarter-end")

    store = services.object_store(settings)
    request = erasure.submit(store, ErasureScope(doc_ids=[doc_id]), "dpo@example.com")
    with pytest.raises(TaggedVersionsError, match="quarter-end"):
        execute(settings, instance, request.request_id)
    failed = erasure.load(store, request.request_id)
    assert failed is not None and failed.status == "failed" and "quarter-end" in str(failed.error)
    [record] = audit.read_trail(store)  # audited as failed, without the message
    assert record.outcome["status"] == "failed"
    assert record.outcome["error_type"] == "TaggedVersionsError"
    assert "quarter-end" not in record.model_dump_json()
    assert doc_id in services.chunk_index(settings).documents_matching(EVERY_DOCUMENT)  # kept

    # Resumed with untagging allowed, the same request completes and records the tag.
    failed.untag_versions = True
    erasure.save(store, failed)
    done = execute(settings, instance, request.request_id)
    assert done.status == "completed" and done.untagged_versions == ["quarter-end"]
    assert services.chunk_index(settings).versions_holding([doc_id]) == []
    statuses = [record.outcome["status"] for record in audit.read_trail(store)]
    assert statuses == ["failed", "completed"]


def test_an_unknown_document_matches_nothing(rag_home: Settings) -> None:
    request = forget(rag_home, local_instance(rag_home), ErasureScope(doc_ids=["0" * 32]))
    assert request.status == "completed" and request.matched_documents == 0


def test_no_match_leaves_a_tagged_table_and_its_history_alone(rag_home: Settings) -> None:
    instance, _ = index_with_badges(rag_home)
    tag_current_version(rag_home, "quarter-end")
    versions = services.chunk_index(rag_home).storage().versions

    request = forget(rag_home, instance, ErasureScope(doc_ids=["0" * 32]))

    assert request.status == "completed" and request.matched_documents == 0
    assert request.erased == {} and request.untagged_versions == []
    index = services.chunk_index(rag_home)
    assert index.tags() == ["quarter-end"] and index.storage().versions == versions


def test_verification_is_a_blocking_asset_check(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage that keeps its artifacts fails the check, and with it the request."""
    instance, doc_id = index_with_badges(rag_home)
    store = services.object_store(rag_home)
    request = erasure.submit(store, ErasureScope(doc_ids=[doc_id]), "dpo@example.com")
    stage = erasure.Eraser.stage
    monkeypatch.setattr(
        erasure.Eraser, "stage", lambda self, name: name == Stage.CHUNKS or stage(self, name)
    )
    rtbf = build_defs(RagResource.for_settings(rag_home)).resolve_job_def("rtbf")
    config = {"ops": {"erasure_request": {"config": {"resume_request_id": request.request_id}}}}

    result = rtbf.execute_in_process(run_config=config, instance=instance, raise_on_error=False)

    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "absence_verified" and not evaluation.passed
    assert not result.success
    failed = erasure.load(store, request.request_id)
    assert failed is not None and failed.status == "failed"
    assert failed.error == "RuntimeError: verification failed: artifacts"
    assert [r.outcome["status"] for r in audit.read_trail(store)] == ["failed"]

    monkeypatch.setattr(erasure.Eraser, "stage", stage)
    result = rtbf.execute_in_process(run_config=config, instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["artifacts"].value is True
    done = erasure.load(store, request.request_id)
    assert done is not None and done.status == "completed"


def test_a_run_that_crashed_midway_resumes_and_verifies(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, doc_id = index_with_badges(rag_home)
    store = services.object_store(rag_home)
    stage = erasure.Eraser.stage

    def crash_at_parsing(self: erasure.Eraser, name: str) -> None:
        if name == Stage.PARSED:
            raise OSError("storage went away")
        stage(self, name)

    monkeypatch.setattr(erasure.Eraser, "stage", crash_at_parsing)
    request = erasure.submit(store, ErasureScope(doc_ids=[doc_id]), "dpo@example.com")
    with pytest.raises(OSError, match="storage went away"):
        execute(rag_home, instance, request.request_id)
    crashed = erasure.load(store, request.request_id)
    assert crashed is not None and crashed.status == "failed" and crashed.target is not None
    assert services.chunk_index(rag_home).versions_holding([doc_id]) == []  # index erased
    assert store.list(artifact_folder(Artifact.PARSED, doc_id))  # parsed output not yet

    monkeypatch.setattr(erasure.Eraser, "stage", stage)
    done = execute(rag_home, instance, request.request_id)
    assert done.status == "completed" and all(done.verification.values())
    assert store.list(artifact_folder(Artifact.PARSED, doc_id)) == []
    assert store.list(artifact_folder(Artifact.RAW, doc_id)) == []
    assert [r.outcome["status"] for r in audit.read_trail(store)] == ["failed", "completed"]


def test_a_crash_after_auditing_does_not_audit_twice(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, doc_id = index_with_badges(rag_home)
    store = services.object_store(rag_home)
    save = erasure.save

    def crash_on_final_save(store: object, request: ErasureRequest) -> None:
        if request.status == "completed":
            raise OSError("crashed before saving")
        save(store, request)  # type: ignore[arg-type]

    monkeypatch.setattr(erasure, "save", crash_on_final_save)
    request = erasure.submit(store, ErasureScope(doc_ids=[doc_id]), "dpo@example.com")
    with pytest.raises(OSError, match="crashed before saving"):
        execute(rag_home, instance, request.request_id)
    monkeypatch.setattr(erasure, "save", save)

    assert execute(rag_home, instance, request.request_id).status == "completed"
    [record] = audit.read_trail(store)
    assert record.outcome["status"] == "completed" and audit.verify_trail(store) == []


def test_a_readmission_lifts_the_tombstones_of_a_request(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, doc_id = index_with_badges(rag_home)
    store = services.object_store(rag_home)
    request = forget(rag_home, instance, ErasureScope(doc_ids=[doc_id]))
    put_source(store, BADGES, BADGES_TEXT, SourceMetadata(subjects=[SUBJECT]))
    assert discover(store, [BADGES]) == []
    # A new pipeline revision gives the bytes a new version, not a way back in.
    monkeypatch.setattr(ids, "INDEX_REVISION", ids.INDEX_REVISION + "-next")
    assert discover(store, [BADGES]) == []

    readmitted = CliRunner().invoke(
        app, ["forget", "--readmit", request.request_id, "--requested-by", "dpo@example.com"]
    )

    assert readmitted.exit_code == 0, readmitted.output
    [_, record] = audit.read_trail(store)
    assert record.action == "readmission" and record.outcome["lifted_tombstones"] == 1
    assert store.list(TOMBSTONES_PREFIX) == []
    [version] = discover(store, [BADGES])
    assert version.doc_id == doc_id
    assert erasure.readmit(store, request.request_id, "dpo@example.com") == record  # once
    assert audit.verify_trail(store) == [] and len(audit.read_trail(store)) == 2
    with pytest.raises(KeyError):
        erasure.readmit(store, "unknown", "dpo@example.com")


@pytest.mark.slow
def test_answers_built_from_an_older_version_are_forgotten(rag_home: Settings) -> None:
    settings = rag_home
    instance, doc_id = index_with_badges(settings)
    services.query_service(settings).query(QueryRequest(question=QUESTION))
    old_chunks = services.chunk_index(settings).chunk_ids_of([doc_id])
    store = services.object_store(settings)
    newer = BADGES_TEXT + b"\nThe registry moved to the fourth floor in spring.\n"
    put_source(store, BADGES, newer, SourceMetadata(acl=["staff"], subjects=[SUBJECT]))
    ingest_sources(settings, instance)
    assert set(old_chunks).isdisjoint(services.chunk_index(settings).chunk_ids_of([doc_id]))
    services.query_service(settings).query(QueryRequest(question=QUESTION))
    cache = build_response_cache(settings)
    assert len(entries_naming(cache, [doc_id])) == 2

    request = forget(settings, instance, ErasureScope(doc_ids=[doc_id]))

    assert request.status == "completed" and request.erased["cached_answers"] == 2
    assert entries_naming(cache, [doc_id]) == [] and cache.referencing(old_chunks) == 0
    # The check reads the entries themselves, so an entry it was not told about fails it.
    cache.set("rag:query:planted", f'{{"citations": [{{"doc_id": "{doc_id}"}}]}}')
    request.target = erasure.ErasureTarget(doc_ids=[doc_id])
    index = services.chunk_index(settings)
    checks = erasure.verify(settings, store, index, cache, request)
    assert checks["cache"] is False


def test_a_scope_names_exactly_one_kind_of_target() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ErasureScope(doc_ids=["a"], subject="b")
    with pytest.raises(ValueError, match="exactly one"):
        ErasureScope()
    with pytest.raises(ValueError, match="blank"):
        ErasureScope(subject="  ")
    assert ErasureScope(subject=" Orla.Quinlan@Example.com").subject == SUBJECT


def test_the_rtbf_job_erases_along_the_asset_lineage(rag_home: Settings) -> None:
    settings = rag_home
    instance, doc_id = index_with_badges(settings)
    defs = build_defs(RagResource.for_settings(settings))
    assert lineage_stages(defs.resolve_all_asset_specs()) == tuple(reversed(Stage))
    result = defs.resolve_job_def("rtbf").execute_in_process(
        instance=instance, run_config={"ops": {"erasure_request": {"config": {"subject": SUBJECT}}}}
    )
    assert result.success
    assert services.chunk_index(settings).versions_holding([doc_id]) == []
    assert audit.read_trail(services.object_store(settings))[-1].actor == "dagster"


@pytest.mark.slow
def test_erasure_on_s3_holds_against_a_replayed_event(s3_platform: Settings) -> None:
    """On a versioned bucket, so every older object version has to go too."""
    settings = s3_platform
    store = services.object_store(settings)
    bucket = settings.object_store_uri.removeprefix("s3://").split("/")[0]
    s3 = boto3.session.Session().client("s3", endpoint_url=settings.s3_endpoint_url)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    worker = StreamingIndexer(settings)
    try:
        put_source(store, BADGES, b"# Visitor badges\n\nA draft.\n")  # an older version
        put_source(store, BADGES, BADGES_TEXT, SourceMetadata(subjects=[SUBJECT]))
        assert store.stored_versions(BADGES) == 2
        [event] = announce(settings)
        [indexed] = process(worker)
        [doc_id] = [m.doc_id for m in indexed.indexed]

        prefix = store.uri_for("documents/security/")
        request = forget(settings, local_instance(settings), ErasureScope(source_prefix=prefix))
        assert request.status == "completed" and request.matched_documents == 1
        assert all(request.verification.values())
        assert store.list("documents/security") == []
        erased = (Artifact.RAW, Artifact.PARSED, Artifact.CHUNKS)
        for key in (BADGES, *(artifact_folder(artifact, doc_id) for artifact in erased)):
            assert store.stored_versions(key) == 0, key

        # The source puts the same bytes back and the old event is delivered again.
        put_source(store, BADGES, BADGES_TEXT, SourceMetadata(subjects=[SUBJECT]))
        EventPublisher(settings).document_changes([event])
        [replayed] = process(worker)
        assert replayed.indexed == []
        assert services.chunk_index(settings).versions_holding([doc_id]) == []
    finally:
        worker.close()


def test_a_run_that_fails_before_the_erasure_starts_fails_its_pending_request(
    rag_home: Settings,
) -> None:
    """A submitted run can fail before its asset takes the request up; the run-failure
    sensor then fails the request with the run's reason, and leaves other requests alone."""
    store = services.object_store(rag_home)
    pending = erasure.submit(store, ErasureScope(doc_ids=["0" * 32]), "tester")
    instance = local_instance(rag_home)
    job = build_defs(RagResource.for_settings(rag_home)).resolve_job_def(ERASURE_JOB)
    run = instance.create_run_for_job(job, run_config=erasure_run_config(pending.request_id))
    instance.report_run_failed(run, "the run's process died")
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    failure = records[0].event_log_entry.dagster_event
    assert failure is not None
    context = dg.build_run_status_sensor_context(
        sensor_name=erasure_run_failures.name,
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
        resources={"rag": RagResource.for_settings(rag_home)},
    ).for_run_failure()

    erasure_run_failures(context)

    request = erasure.load(store, pending.request_id)
    assert request is not None and request.status == "failed"
    assert request.error is not None and "the run's process died" in request.error
    last = audit.read_trail(store)[-1]
    assert last.request_id == pending.request_id and last.outcome["status"] == "failed"
