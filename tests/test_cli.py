import json
from pathlib import Path

import pytest
from test_erasure import PHRASE, SUBJECT, index_with_badges
from typer.testing import CliRunner

from rag_core import services
from rag_core.adapters.processes import free_port
from rag_core.domain.chunk_store import EVERY_DOCUMENT
from rag_core.domain.layout import ERASURE_PREFIX
from rag_core.flows.erasure import ErasureRequest
from rag_core.settings import Settings, get_settings
from rag_serving.cli import app

from conftest import PORT_DOCUMENT, PORT_QUESTION, SAMPLE_CORPUS

runner = CliRunner()


@pytest.fixture
def sample_env(sample_index: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RAG_HOME", str(sample_index.home))
    get_settings.cache_clear()
    return sample_index


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_search_json_has_the_rest_shape(sample_env: Settings) -> None:
    body = _json(["search", PORT_QUESTION, "--top-k", "3", "--json"])
    assert len(body["hits"]) == 3
    assert {"chunk_id", "doc_id", "version", "source_uri", "title", "score", "text"} <= set(
        body["hits"][0]
    )
    assert body["hits"][0]["source_uri"].endswith(PORT_DOCUMENT)


def test_ask_json_cites_the_source(sample_env: Settings) -> None:
    body = _json(["ask", PORT_QUESTION, "--json"])
    assert body["generator"] == "extractive"
    assert body["citations"][0]["source_uri"].endswith(PORT_DOCUMENT)


def test_status_json_counts_the_sample_corpus(sample_env: Settings) -> None:
    body = _json(["status", "--json"])
    files = [p for p in SAMPLE_CORPUS.rglob("*") if p.is_file()]
    assert body["documents"] == body["versions"] == len(files)
    assert body["chunks"] > 100 and body["failed_documents"] == 0


def test_ingest_keeps_relative_paths(rag_home: Settings, tmp_path: Path) -> None:
    guide = tmp_path / "site" / "guide"
    api = tmp_path / "site" / "api"
    for folder, text in (
        (guide, "Install with the installer."),
        (api, "The API installs nothing."),
    ):
        folder.mkdir(parents=True)
        (folder / "install.md").write_text(f"# Install\n\n{text} It takes a minute or two.\n")

    result = runner.invoke(app, ["ingest", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert "2 new versions indexed" in result.output

    uris = {hit["source_uri"] for hit in _json(["search", "install", "--json"])["hits"]}
    assert {uri.split("/documents/")[1] for uri in uris} == {"guide/install.md", "api/install.md"}


def test_ingest_of_a_missing_path_fails_clearly(rag_home: Settings, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in " ".join(result.output.replace("│", " ").split())


def test_discover_indexes_files_put_straight_into_the_store(rag_home: Settings) -> None:
    dropped = Path(rag_home.object_store_uri) / "documents" / "faq.md"
    dropped.parent.mkdir(parents=True)
    dropped.write_text("# FAQ\n\nThe cafeteria opens at eight and closes at three.\n")
    result = runner.invoke(app, ["discover"])
    assert result.exit_code == 0, result.output
    assert "1 new version indexed" in result.output
    assert runner.invoke(app, ["discover"]).output.strip().endswith("0 new versions indexed")
    hits = _json(["search", "when does the cafeteria open", "--json"])["hits"]
    assert hits[0]["source_uri"].endswith("documents/faq.md")


def test_forget_erases_and_audit_verifies(rag_home: Settings) -> None:
    index_with_badges(rag_home)
    result = runner.invoke(app, ["forget", "--subject", SUBJECT, "--requested-by", "dpo", "--json"])
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    assert request["status"] == "completed" and request["matched_documents"] == 1
    hits = _json(["search", PHRASE, "--json"])["hits"]
    assert all("visitor-badges" not in hit["source_uri"] for hit in hits)

    trail = _json(["audit", "--json"])
    assert trail["problems"] == [] and trail["records"][0]["actor"] == "dpo"
    assert runner.invoke(app, ["forget", "--subject", "x", "--prefix", "y"]).exit_code == 2


def test_ingest_applies_a_sidecar_and_never_indexes_it(rag_home: Settings, tmp_path: Path) -> None:
    """`a.md.meta.json` is a.md's access, not a document: indexing it would publish its acl
    and subjects to every caller, and erasing the subject would leave it behind."""
    folder = tmp_path / "hr"
    folder.mkdir()
    (folder / "a.md").write_text("# Leave\n\nParental leave requests go to the people team.\n")
    access = {"acl": ["hr"], "subjects": ["Sven.Tamm@example.com"]}
    (folder / "a.md.meta.json").write_text(json.dumps(access))

    result = runner.invoke(app, ["ingest", str(folder)])

    assert result.exit_code == 0, result.output
    assert "1 file copied; 1 new version indexed" in result.output
    index = services.chunk_index(rag_home)
    [doc_id] = index.documents_matching(EVERY_DOCUMENT)
    assert any("hr" in acl for acl, _ in index.access_of([doc_id])[doc_id])
    store = services.object_store(rag_home)
    assert [obj.key for obj in store.list("documents")] == [
        "documents/a.md",
        "documents/a.md.meta.json",
    ]

    forgotten = runner.invoke(app, ["forget", "--subject", "sven.tamm@example.com", "--json"])

    assert forgotten.exit_code == 0, forgotten.output
    assert json.loads(forgotten.stdout)["matched_documents"] == 1
    assert index.documents_matching(EVERY_DOCUMENT) == set() and store.list("documents") == []
    files = [path for path in rag_home.home.rglob("*") if path.is_file()]
    for needle in (b"sven.tamm", b"parental leave"):
        assert [path for path in files if needle in path.read_bytes().lower()] == [], needle


def test_forget_fails_the_request_when_dagster_cannot_take_it(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RAG_ORCHESTRATOR", "dagster")
    monkeypatch.setenv("RAG_DAGSTER_URL", url)
    get_settings.cache_clear()

    result = runner.invoke(app, ["forget", "--subject", SUBJECT])

    assert result.exit_code == 1 and "(resume with --resume)" in result.output
    store = services.object_store(rag_home)
    [stored] = store.list(ERASURE_PREFIX)
    request = ErasureRequest.model_validate_json(store.get(stored.key))
    assert request.status == "failed" and url in str(request.error)


@pytest.mark.slow
def test_sync_announces_changes_and_backfill_rebuilds_the_index(
    kafka_platform: Settings, corpus_copy: Path
) -> None:
    assert runner.invoke(app, ["ingest", str(corpus_copy)]).exit_code == 0
    (corpus_copy / "pip" / "authentication.md").unlink()
    services.object_store(kafka_platform).delete("documents/pip/authentication.md")

    synced = runner.invoke(app, ["sync"])
    assert synced.exit_code == 0, synced.output
    assert "announced 3 document changes" in synced.output  # 3 known, 1 gone
    assert "announced 0 document" in runner.invoke(app, ["sync"]).output  # nothing new

    services.chunk_index(kafka_platform).delete_documents(
        [hit.doc_id for hit in services.retriever(kafka_platform).search("pip install", 10)]
    )
    rebuilt = runner.invoke(app, ["backfill"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "2 document versions rebuilt" in rebuilt.output
    stats = services.chunk_index(kafka_platform).stats()
    assert stats.documents == 2


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_the_dev_identity_is_never_served_off_loopback(rag_home: Settings, command: str) -> None:
    result = runner.invoke(app, [command, "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "not serving it on 0.0.0.0" in result.output


@pytest.mark.parametrize(("command", "text"), [("ask", ""), ("ask", "  \t"), ("search", " ")])
def test_an_empty_question_fails_in_one_line(command: str, text: str) -> None:
    result = runner.invoke(app, [command, text])
    assert result.exit_code == 1
    field = "question" if command == "ask" else "query"
    assert result.output.strip().startswith(f"error: {field}: String should ")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_an_unexpected_failure_is_one_line_not_a_traceback(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(settings: Settings) -> None:
        raise RuntimeError("the index is\nunreadable")

    monkeypatch.setattr(services, "index_status", unreadable)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert result.output == "error: RuntimeError: the index is unreadable\n"
