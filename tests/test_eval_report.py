"""`ragctl eval report` and the evaluation gauges: trend chart, HTML page and shields.io badge
of the last recorded runs, and the latest scores on the API's /metrics, read from the results
store. Runs are recorded synthetically (`record_run`), without asking an index."""

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from rag_core.evaluation.gates import GateOutcome
from rag_core.evaluation.metrics import summarize
from rag_core.evaluation.report import (
    NoRecordedRuns,
    badge,
    default_folder,
    set_reports,
    write_reports,
)
from rag_core.evaluation.results import (
    ResultsStoreBusy,
    RunContext,
    latest_scores,
    record_run,
    results_path,
    results_store,
)
from rag_core.evaluation.runner import EvaluationRun
from rag_core.settings import Settings
from rag_serving.cli import app
from rag_serving.main import create_app
from rag_serving.observability import EvaluationScores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<img src=x onerror="alert(1)">&'
CONTEXT = RunContext(index_version=1, corpus_fingerprint="corpus", generator="extractive",
                     answer_settings={}, code_version="test")  # fmt: skip
FACT_FLOOR = 0.4


def record(settings: Settings, set_name: str, *, passed: bool = True, **metrics: float) -> str:
    """A run of `set_name` with these aggregates and one fact recall gate (floor 0.4) that
    passed or failed as told; returns its id."""
    aggregates = summarize([]).model_copy(update=metrics)
    run = EvaluationRun(aggregates=aggregates, currency="GBP", questions=[])
    gate = GateOutcome(metric="fact_recall", value=metrics.get("fact_recall", 0.0),
                       floor=FACT_FLOOR, previous=None, verdict="pass" if passed else "fail",
                       reason="synthetic")  # fmt: skip
    with results_store(settings) as connection:
        return record_run(connection, run, set_name=set_name, set_fingerprint="questions",
                          context=CONTEXT, gates=[gate])  # fmt: skip


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header chunk, after checking its signature."""
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "rag")


# The report


def test_the_report_charts_tabulates_and_badges_the_last_runs(
    settings: Settings, tmp_path: Path
) -> None:
    oldest = record(settings, "qa", recall_at_5=0.9, fact_recall=0.41)
    kept = [
        record(settings, "qa", recall_at_5=0.95, fact_recall=fact, prompt_tokens=1234)
        for fact in (0.5, 0.468)
    ]
    record(settings, "other", recall_at_5=1.0)

    [written] = write_reports(settings, folder=tmp_path / "out", set_name="qa", last=2)

    assert png_size(written.png.read_bytes()) == (1000, 500)
    page = written.html.read_text()
    assert all(run_id in page for run_id in kept) and oldest not in page
    assert page.index(kept[1]) < page.index(kept[0])  # newest first
    assert "<th>fact recall</th>" in page and "<td>0.468</td>" in page
    assert "<td>1,234</td>" in page and "fact recall 0.400" in page  # tokens; the floor
    assert "data:image/png;base64," in page
    assert json.loads(written.badge.read_text()) == {
        "schemaVersion": 1,
        "label": "eval qa",
        "message": "passing · fact recall 0.47",
        "color": "brightgreen",
    }
    assert written.png.name == "qa.png" and written.badge.name == "qa-badge.json"


def test_every_recorded_set_is_reported_and_names_stay_in_the_folder(
    settings: Settings, tmp_path: Path
) -> None:
    record(settings, "qa", fact_recall=0.5)
    hostile_run = record(settings, HOSTILE, recall_at_5=0.9)
    record(settings, "../escape", recall_at_5=0.9)
    folder = tmp_path / "out"

    written = {
        report.set_name: report for report in write_reports(settings, folder=folder, last=30)
    }

    assert set(written) == {"qa", HOSTILE, "../escape"}
    for report in written.values():
        for path in (report.png, report.html, report.badge):
            assert path.parent == folder and path.stat().st_size > 0
    page = written[HOSTILE].html.read_text()
    assert HOSTILE not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page
    assert hostile_run in page
    assert json.loads(written[HOSTILE].badge.read_text())["label"] == f"eval {HOSTILE}"


def test_the_badge_turns_red_when_the_last_run_fails_and_falls_back_to_recall_at_5(
    settings: Settings, tmp_path: Path
) -> None:
    record(settings, "qa", fact_recall=0.5)
    record(settings, "qa", passed=False, fact_recall=0.3)
    record(settings, "retrieval", recall_at_5=0.912, recall_at_1=0.7)

    reports = {report.set_name: report for report in set_reports(settings, set_name=None,
                                                                  last=5)}  # fmt: skip

    assert badge(reports["qa"]) == {
        "schemaVersion": 1,
        "label": "eval qa",
        "message": "failing · fact recall 0.30",
        "color": "red",
    }
    assert badge(reports["retrieval"])["message"] == "passing · recall@5 0.91"
    [written] = write_reports(settings, folder=tmp_path, set_name="qa", last=30)
    assert '<td class="failed">failed</td>' in written.html.read_text()
    assert written.html.read_text().count('<td class="passed">passed</td>') == 1


def test_nothing_recorded_is_an_error_that_creates_no_store(settings: Settings) -> None:
    with pytest.raises(NoRecordedRuns, match="no evaluation runs recorded"):
        set_reports(settings, set_name=None, last=30)
    assert not results_path(settings).exists()
    record(settings, "qa", fact_recall=0.5)
    with pytest.raises(NoRecordedRuns, match="of the set 'missing'"):
        set_reports(settings, set_name="missing", last=30)


def test_ragctl_eval_report_writes_the_files_and_prints_their_paths(
    rag_home: Settings, tmp_path: Path
) -> None:
    runner = CliRunner()
    nothing = runner.invoke(app, ["eval", "report"])
    assert nothing.exit_code == 1
    assert "no evaluation runs recorded" in nothing.stderr

    record(rag_home, "qa", fact_recall=0.5)
    record(rag_home, "retrieval", recall_at_5=0.9)
    result = runner.invoke(app, ["eval", "report"])
    assert result.exit_code == 0, result.output
    folder = default_folder(rag_home)
    expected = [folder / name for name in ("qa.png", "qa.html", "qa-badge.json",
                                           "retrieval.png", "retrieval.html",
                                           "retrieval-badge.json")]  # fmt: skip
    assert [Path(line) for line in result.stdout.splitlines()] == expected
    assert all(path.stat().st_size > 0 for path in expected)

    one = runner.invoke(app, ["eval", "report", "--set", "qa", "--last", "1",
                              "--out", str(tmp_path / "one")])  # fmt: skip
    assert one.exit_code == 0, one.output
    assert sorted(path.name for path in (tmp_path / "one").iterdir()) == [
        "qa-badge.json", "qa.html", "qa.png"
    ]  # fmt: skip


# The gauges


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def evaluation_samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {key: value for key, value in samples(exposition).items()
            if key[0].startswith("rag_evaluation_")}  # fmt: skip


def test_metrics_export_the_latest_run_of_each_set(rag_home: Settings) -> None:
    with TestClient(create_app(rag_home)) as client:
        assert evaluation_samples(client.get("/metrics").text) == {}  # no store: nothing

    record(rag_home, "qa", fact_recall=0.5)
    record(rag_home, "qa", passed=False, fact_recall=0.3, recall_at_5=0.9)
    record(rag_home, "retrieval", recall_at_5=1.0)
    [qa, retrieval] = latest_scores(rag_home)

    with TestClient(create_app(rag_home)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    exported = evaluation_samples(response.text)
    assert exported[("rag_evaluation_score", (("metric", "fact_recall"), ("set", "qa")))] == 0.3
    assert exported[("rag_evaluation_score", (("metric", "recall_at_5"), ("set", "qa")))] == 0.9
    assert exported[("rag_evaluation_passed", (("set", "qa"),))] == 0.0
    assert exported[("rag_evaluation_passed", (("set", "retrieval"),))] == 1.0
    assert ("rag_evaluation_score", (("metric", "fact_recall"), ("set", "retrieval"))) not in (
        exported
    )
    for run in (qa, retrieval):
        stamp = exported[("rag_evaluation_last_run_timestamp_seconds", (("set", run.set_name),))]
        assert abs(stamp - time.time()) < 60
    assert ("rag_index_chunks", ()) in samples(response.text)  # beside the process's metrics


def test_a_locked_store_serves_the_last_values_and_the_cache_spares_the_store(
    settings: Settings,
) -> None:
    fresh, cached = EvaluationScores(settings, cache_seconds=0), EvaluationScores(settings)
    record(settings, "qa", fact_recall=0.5)
    for collector in (fresh, cached):
        assert _fact_recall(collector) == 0.5

    record(settings, "qa", fact_recall=0.6)
    assert _fact_recall(cached) == 0.5  # read less than 30 s ago
    assert _fact_recall(fresh) == 0.6

    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; connection = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); sys.stdin.read()", str(results_path(settings))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(ResultsStoreBusy):
            latest_scores(settings)
        started = time.monotonic()
        assert _fact_recall(fresh) == 0.6
        assert time.monotonic() - started < 1  # no waiting for the lock
    finally:
        holder.communicate(timeout=30)
    record(settings, "qa", fact_recall=0.7)
    assert _fact_recall(fresh) == 0.7


def _fact_recall(collector: EvaluationScores) -> float:
    [score] = [sample.value for family in collector.collect() for sample in family.samples
               if sample.labels == {"set": "qa", "metric": "fact_recall"}]  # fmt: skip
    return score
