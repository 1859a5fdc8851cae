"""`ragctl` starts without the stack: importing it loads no model, index or parser; with
RAG_CLI_USE_API, or the API `ragctl dev` announces, `search`, `ask`, `status` and `documents`
ask the running API and print what they would have printed in-process; and files that could
not be parsed are named by their source."""

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag_core import services
from rag_core.adapters.processes import free_port
from rag_core.domain.layout import Artifact
from rag_core.settings import Settings, get_settings
from rag_serving.cli import app
from rag_serving.cli_api import announcing_api
from rag_serving.local_api import LocalApiServer
from rag_serving.main import create_app

from conftest import PORT_DOCUMENT, PORT_QUESTION

runner = CliRunner()
HEAVY = ["lancedb", "sentence_transformers", "torch", "unstructured"]
# Runs `ragctl` in a fresh interpreter and reports, on stderr's last line, which of HEAVY
# it had loaded by the time it exited.
CLI_REPORTING_MODULES = (
    "import atexit, json, sys\n"
    f"atexit.register(lambda: print(json.dumps(sorted(set({HEAVY}) & set(sys.modules))),"
    " file=sys.stderr))\n"
    "from rag_serving.cli import app\n"
    "app()\n"
)


def test_ragctl_and_the_api_report_the_version_pyproject_declares() -> None:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["version"]
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"ragctl {declared}"
    assert create_app().version == declared


def test_importing_the_cli_loads_no_model_index_or_parser() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, rag_serving.cli; "
         f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY})))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert loaded.strip() == "[]"


@pytest.fixture(scope="module")
def api(
    sample_index: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalApiServer]:
    log_path = tmp_path_factory.mktemp("api") / "api.log"
    with LocalApiServer(sample_index.home, log_path=log_path) as server:
        yield server


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The same table width in this process and in a child."""
    monkeypatch.setenv("COLUMNS", "160")
    return {"COLUMNS": "160"}


def _cli_through(
    api: LocalApiServer, settings: Settings, *args: str, announced: bool = False, status: int = 0
) -> tuple[str, list[str]]:
    """`ragctl ARGS` in a fresh process sent to the API (named by RAG_CLI_USE_API and
    RAG_API_URL, or `announced` as `ragctl dev` does): its stdout, and which of HEAVY it
    loaded."""
    env = {k: v for k, v in os.environ.items() if k != "RAG_CLI_USE_API"}
    env |= {"RAG_HOME": str(settings.home), "COLUMNS": "160"}
    if not announced:
        env |= {"RAG_CLI_USE_API": "true", "RAG_API_URL": api.url}
    done = subprocess.run(
        [sys.executable, "-c", CLI_REPORTING_MODULES, *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == status, done.stderr
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def _in_process(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("RAG_HOME", str(settings.home))
    monkeypatch.delenv("RAG_CLI_USE_API", raising=False)
    get_settings.cache_clear()
    result = runner.invoke(app, list(args))
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.stdout


def test_search_through_the_api_finds_the_same_hits_without_the_model(
    api: LocalApiServer,
    sample_index: Settings,
    wide: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through_api, loaded = _cli_through(api, sample_index, "search", PORT_QUESTION, "--json")
    assert loaded == []
    hits = json.loads(through_api)["hits"]
    assert hits[0]["source_uri"].endswith(PORT_DOCUMENT)
    here = json.loads(_in_process(sample_index, monkeypatch, "search", PORT_QUESTION, "--json"))
    assert [hit["chunk_id"] for hit in hits] == [hit["chunk_id"] for hit in here["hits"]]

    table, loaded = _cli_through(api, sample_index, "search", PORT_QUESTION)
    assert loaded == []
    assert table == _in_process(sample_index, monkeypatch, "search", PORT_QUESTION)


def test_ask_through_the_api_prints_the_same_answer(
    api: LocalApiServer,
    sample_index: Settings,
    wide: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer, loaded = _cli_through(api, sample_index, "ask", PORT_QUESTION)
    assert loaded == []
    assert PORT_DOCUMENT in answer
    assert answer == _in_process(sample_index, monkeypatch, "ask", PORT_QUESTION)


def test_status_through_the_api_prints_the_same_counts_without_the_index(
    api: LocalApiServer,
    sample_index: Settings,
    wide: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through_api, loaded = _cli_through(api, sample_index, "status", "--json")
    assert loaded == []
    counted = json.loads(through_api)
    here = json.loads(_in_process(sample_index, monkeypatch, "status", "--json"))
    assert counted["documents"] > 0
    assert counted.pop("checked_at") and here.pop("checked_at")  # when each was counted
    assert counted == here

    table, loaded = _cli_through(api, sample_index, "status")
    assert loaded == []
    assert table == _in_process(sample_index, monkeypatch, "status")


def test_documents_ask_the_api_dev_announces_for_the_same_home(
    api: LocalApiServer,
    sample_index: Settings,
    wide: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with announcing_api(sample_index, api.url):
        found, loaded = _cli_through(
            api, sample_index, "documents", "find", "vacuum", "--json", announced=True
        )
        assert loaded == []
        [document] = json.loads(found)["documents"]
        assert document["source_key"].endswith("sql-vacuum.html")
        shown, loaded = _cli_through(
            api, sample_index, "documents", "show", document["doc_id"], announced=True
        )
        assert loaded == [] and "sql-vacuum.html" in shown
        _, loaded = _cli_through(
            api, sample_index, "documents", "show", "0" * 32, announced=True, status=1
        )
        assert loaded == []
    assert not (sample_index.home / "api.url").exists()
    here = _in_process(sample_index, monkeypatch, "documents", "find", "vacuum", "--json")
    assert json.loads(here) == json.loads(found)


def test_without_an_api_answering_the_cli_searches_in_process(
    sample_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_HOME", str(sample_index.home))
    monkeypatch.setenv("RAG_CLI_USE_API", "true")
    monkeypatch.setenv("RAG_API_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    result = runner.invoke(app, ["search", PORT_QUESTION, "--json"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "running in this process" in result.stderr
    assert json.loads(result.stdout)["hits"][0]["source_uri"].endswith(PORT_DOCUMENT)


def test_unparseable_files_are_named_by_their_source_until_erased(
    rag_home: Settings, tmp_path: Path, wide: dict[str, str]
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "parking.md").write_text("# Parking\n\nVisitors park on level two, by the lift.\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")

    ingested = runner.invoke(app, ["ingest", str(folder)])

    assert ingested.exit_code == 0, ingested.output
    assert "2 files copied; 1 new version indexed, 1 could not be parsed:" in ingested.stderr
    assert "  documents/broken.pdf: no text could be extracted" in ingested.stderr
    listed = runner.invoke(app, ["status", "--failures", "--json"])
    assert listed.exit_code == 0, listed.output
    [failure] = json.loads(listed.stdout)["failures"]
    assert failure["source_key"] == "documents/broken.pdf"
    assert failure["reason"] == "no text could be extracted"
    table = runner.invoke(app, ["status", "--failures"]).stdout
    assert "documents/broken.pdf" in table and f"{failure['doc_id']}@{failure['version']}" in table
    store = services.object_store(rag_home)
    [record] = store.list(Artifact.FAILURE)
    assert b"broken" not in store.get(record.key)  # the name is looked up, never recorded

    forgotten = runner.invoke(app, ["forget", "--doc-id", failure["doc_id"]])

    assert forgotten.exit_code == 0, forgotten.output
    assert json.loads(runner.invoke(app, ["status", "--failures", "--json"]).stdout) == {
        "failures": []
    }
