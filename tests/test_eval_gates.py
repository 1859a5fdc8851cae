"""Evaluation gates, the results store, `ragctl eval run`'s exit status and the nightly
`evaluation` asset; and the gate of CI itself: the hand-labeled sample set, answered by the
extractive answerer over the sample corpus and the sample warehouse's tickets, passes every
blocking gate of eval_sets/gates.yaml."""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from rag_assets.evaluation import ASSET_NAME, JOB_NAME, evaluation_defs, nightly
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.evaluation.gates import (
    BLOCKING_METRICS,
    Baseline,
    GatesConfig,
    SetGates,
    judge,
    load_gates,
    passed,
)
from rag_core.evaluation.labeled_sets import LabeledQuestion, load_set
from rag_core.evaluation.metrics import score_question, summarize
from rag_core.evaluation.results import (
    corpus_fingerprint,
    judge_and_record,
    last_passing_run,
    metric_history,
    results_store,
    run_context,
    set_fingerprint,
)
from rag_core.evaluation.runner import EvaluationRun, InProcessAnswers, QuestionResult, evaluate
from rag_core.settings import Settings, get_settings
from rag_serving.cli import app
from rag_serving.cli_eval import GATE_FAILED_EXIT

EVAL_SETS = Path(__file__).resolve().parents[1] / "eval_sets"
SAMPLE_SET = EVAL_SETS / "sample_corpus_qa.jsonl"
# Questions of the sample set whose gold passage RAG_CANDIDATES=1 leaves out of the context
# (context recall 1 → 0), all over sample_corpus/ alone, and one unanswerable question.
DEGRADABLE = ["pg-listen-all-interfaces", "pg-vacuum-full-lock", "pip-pin-versions",
              "mqtt-public-test-server", "mysql-replication"]  # fmt: skip
SUBSET_GATES = """\
tolerance: 0.02
sets:
  subset:
    nightly: true
    floors: {context_recall: 0.9, recall_at_5: 0.9, citation_precision: 0.9}
  impossible:
    nightly: true
    floors: {recall_at_1: 1.01}
"""


# Gates


def _baseline(same_corpus: bool = True, **metrics: float) -> Baseline:
    return Baseline(run_id="r1", metrics=metrics, same_corpus=same_corpus)


def _verdicts(metrics: dict[str, float], **knobs: object) -> dict[str, str]:
    options: dict = {"floors": {}, "tolerance": 0.02, "baseline": None} | knobs
    return {gate.metric: gate.verdict for gate in judge(metrics, **options)}


def test_a_metric_below_its_floor_fails_and_one_at_it_passes() -> None:
    floors = {"recall_at_1": 0.9, "fact_recall": 0.4}
    assert _verdicts({"recall_at_1": 0.89, "fact_recall": 0.4}, floors=floors) == {
        "recall_at_1": "fail", "fact_recall": "pass"
    }  # fmt: skip


def test_a_fall_beyond_the_tolerance_fails_against_the_same_corpus_only() -> None:
    metrics = {"recall_at_1": 0.90, "mrr_at_10": 0.95}
    before = {"recall_at_1": 0.93, "mrr_at_10": 0.96}
    same = judge(metrics, floors={}, tolerance=0.02, baseline=_baseline(**before))
    assert [(g.metric, g.verdict, g.previous) for g in same] == [
        ("mrr_at_10", "pass", 0.96), ("recall_at_1", "fail", 0.93)
    ]  # fmt: skip
    assert "fell from 0.930 (run r1)" in same[1].reason
    changed = judge(metrics, floors={}, tolerance=0.02, baseline=_baseline(False, **before))
    assert all(gate.verdict == "pass" for gate in changed)
    assert all("corpus changed" in gate.reason for gate in changed)


def test_judged_metrics_only_warn_and_absent_ones_are_skipped() -> None:
    floors = {"faithfulness": 0.8, "answer_relevancy": 0.7, "fact_recall": 0.4}
    outcomes = judge({"faithfulness": 0.5, "recall_at_1": 1.0}, floors=floors, tolerance=0.02,
                     baseline=_baseline(faithfulness=0.9))  # fmt: skip
    assert {g.metric: g.verdict for g in outcomes} == {
        "faithfulness": "warn",
        "recall_at_1": "pass",
    }
    assert passed(outcomes)
    assert not passed(judge({"fact_recall": 0.1}, floors=floors, tolerance=0, baseline=None))


def test_the_gates_file_gates_only_what_runs_measure() -> None:
    gates = load_gates(EVAL_SETS / "gates.yaml")
    assert gates.nightly_sets() == ["sample_corpus_qa"]
    for name in gates.sets:
        assert (EVAL_SETS / f"{name}.jsonl").exists(), name
        assert set(gates.floors(name)) <= set(BLOCKING_METRICS)
        assert gates.tolerance_of(name) == 0.02
    assert load_gates(EVAL_SETS / "missing.yaml") == GatesConfig()


# The results store


def _run(recall_at_1: float) -> EvaluationRun:
    """A run without questions whose aggregates are given."""
    figures = summarize([]).model_copy(update={"recall_at_1": recall_at_1, "fact_recall": 0.5})
    return EvaluationRun(aggregates=figures, currency="GBP", questions=[])


def test_runs_survive_reconnecting_and_the_last_passing_one_is_found(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "rag")
    context = run_context(settings, _run(1.0))
    assert context.corpus_fingerprint == corpus_fingerprint({})
    assert context.answer_settings["candidates"] == 40
    assert context.answer_settings["llm_base_url_set"] is False
    gates = GatesConfig(sets={"s": SetGates(floors={"recall_at_1": 0.8})})
    passing, failing = [0.9, 0.95], [0.5]
    for recall in (*passing, *failing):
        judge_and_record(settings, _run(recall), set_name="s", questions=[], gates=gates)
    with results_store(settings) as connection:
        last = last_passing_run(connection, set_name="s", set_fingerprint=set_fingerprint([]),
                                corpus_fingerprint=context.corpus_fingerprint)  # fmt: skip
        history = metric_history(connection, set_name="s", last=2)
        assert last is not None and last.metrics["recall_at_1"] == 0.95
        assert last_passing_run(connection, set_name="s", set_fingerprint=set_fingerprint([]),
                                corpus_fingerprint="other") is None  # fmt: skip
    assert [point.value for point in history["recall_at_1"]] == [0.95, 0.5]
    assert [point.value for point in history["fact_recall"]] == [0.5, 0.5]
    assert all(isinstance(point.recorded_at, datetime) for point in history["recall_at_1"])


def test_an_answerer_has_floors_of_its_own_and_is_compared_with_its_own_runs(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "rag")
    model_floors = {"small-model": {"fact_recall": 0.3}}
    gates = GatesConfig(sets={"s": SetGates(floors={"fact_recall": 0.45},
                                            answerers=model_floors)})  # fmt: skip
    assert gates.floors("s", "small-model") == {"fact_recall": 0.3}
    assert gates.floors("s", "extractive") == gates.floors("s") == {"fact_recall": 0.45}

    def recorded(fact_recall: float, generator: str) -> dict[str, str]:
        figures = summarize([]).model_copy(update={"fact_recall": fact_recall})
        rows = [_answered_by(generator)]
        run = EvaluationRun(aggregates=figures, currency="GBP", questions=rows)
        gated = judge_and_record(settings, run, set_name="s", questions=[], gates=gates)
        return {gate.metric: gate.reason for gate in gated.gates if gate.verdict == "fail"}

    assert recorded(0.5, "extractive") == {}
    # The model's first run is judged by its own floor, not against the extractive run.
    assert recorded(0.35, "small-model") == {}
    assert "fell from 0.350" in recorded(0.31, "small-model")["fact_recall"]
    assert "below the floor 0.450" in recorded(0.4, "extractive")["fact_recall"]


def _answered_by(generator: str) -> QuestionResult:
    scores = score_question(
        LabeledQuestion(id="q", question="Which port?", answerable=False), answer="I don't know.",
        documents=[], context=[], cited_sources=[], supported_citations=[], latency_seconds=1.0,
        prompt_tokens=0, completion_tokens=0, cost=0.0,
    )  # fmt: skip
    return QuestionResult(id="q", question="Which port?", answerable=False, answer="I don't know.",
                          generator=generator, cached=False, citations=[], documents=[],
                          context=[], scores=scores)  # fmt: skip


def test_a_run_not_recorded_leaves_no_store(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "rag")
    gated = judge_and_record(settings, _run(1.0), set_name="s", questions=[],
                             gates=GatesConfig(), record=False)  # fmt: skip
    assert gated.run_id is None and gated.passed
    assert not (settings.home / "evaluation.duckdb").exists()


# Over the sample corpus and warehouse


@pytest.fixture
def evaluation_home(
    sample_and_warehouse_index: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The shared index and store, read from a home of the test's own (its results store),
    answering without a language model."""
    for name, value in {
        "RAG_HOME": str(tmp_path / "rag"),
        "RAG_INDEX_URI": sample_and_warehouse_index.index_uri,
        "RAG_OBJECT_STORE_URI": sample_and_warehouse_index.object_store_uri,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAG_LLM_BASE_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def subset(tmp_path: Path) -> Path:
    """DEGRADABLE, as labeled in the sample set, beside gates of its own."""
    questions = {question.id: question for question in load_set(SAMPLE_SET)}
    folder = tmp_path / "sets"
    folder.mkdir()
    lines = [questions[id_].model_dump_json() + "\n" for id_ in DEGRADABLE]
    for name in ("subset", "impossible"):
        (folder / f"{name}.jsonl").write_text("".join(lines))
    (folder / "gates.yaml").write_text(SUBSET_GATES)
    return folder / "subset.jsonl"


def _eval_run(labeled: Path, **env: str) -> tuple[int, dict]:
    """`ragctl eval run --json` with these variables set; its exit status and last line."""
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["eval", "run", "--set", str(labeled), "--json"], env=env)
    get_settings.cache_clear()
    assert result.exit_code in (0, GATE_FAILED_EXIT), result.output
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def _gates(line: dict) -> dict[str, dict]:
    return {gate["metric"]: gate for gate in line["gates"]}


@pytest.mark.slow
def test_eval_run_records_compares_and_fails_a_degraded_setting(
    evaluation_home: Settings, sample_index: Settings, subset: Path
) -> None:
    status, first = _eval_run(subset)
    assert status == 0 and first["passed"] and first["run_id"]
    context = first["context"]
    assert context["corpus_fingerprint"] == corpus_fingerprint(
        services.chunk_index(evaluation_home).live_versions()
    )
    assert context["generator"] == "extractive" and context["index_version"] > 0
    assert context["answer_settings"]["candidates"] == 40
    assert all("no earlier passing run" in gate["reason"] for gate in first["gates"])

    status, second = _eval_run(subset)
    assert status == 0 and second["run_id"] != first["run_id"]
    for gate in second["gates"]:
        assert gate["previous"] == _gates(first)[gate["metric"]]["value"]
        assert f"within tolerance of the last passing run ({first['run_id']})" in gate["reason"]

    status, degraded = _eval_run(subset, RAG_CANDIDATES="1")
    assert status == GATE_FAILED_EXIT and not degraded["passed"]
    context_recall = _gates(degraded)["context_recall"]
    assert context_recall["verdict"] == "fail" and context_recall["value"] < 0.9
    assert "below the floor 0.900" in context_recall["reason"]
    assert "fell from 1.000" in context_recall["reason"]

    # The sample corpus alone (no tickets) is another corpus: nothing to compare with.
    status, elsewhere = _eval_run(subset, RAG_INDEX_URI=sample_index.index_uri)
    assert status == 0
    assert elsewhere["context"]["corpus_fingerprint"] != context["corpus_fingerprint"]
    assert all("corpus changed" in gate["reason"] for gate in elsewhere["gates"])

    with results_store(evaluation_home) as connection:
        history = metric_history(connection, set_name="subset", last=10)
        last = last_passing_run(connection, set_name="subset",
                                set_fingerprint=set_fingerprint(load_set(subset)))  # fmt: skip
    assert len(history["context_recall"]) == 4
    assert last is not None and last.run_id == elsewhere["run_id"]


@pytest.mark.slow
def test_no_record_leaves_the_results_store_alone(evaluation_home: Settings, subset: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "run", "--set", str(subset), "--limit", "1",
                                      "--no-record"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "not recorded" in result.stdout and "context_recall" in result.stdout
    assert not (evaluation_home.home / "evaluation.duckdb").exists()


@pytest.mark.slow
def test_the_nightly_asset_gates_every_nightly_set(evaluation_home: Settings, subset: Path) -> None:
    rag = dg.Definitions(resources={"rag": RagResource.for_settings(evaluation_home)})
    defs = dg.Definitions.merge(evaluation_defs(subset.parent / "gates.yaml"), rag)
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(
        partition_key=nightly.get_last_partition_key(), raise_on_error=False
    )
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    assert checks["subset_gates"].passed
    assert not checks["impossible_gates"].passed
    assert checks["impossible_gates"].severity == dg.AssetCheckSeverity.ERROR
    metadata = result.asset_materializations_for_node(ASSET_NAME)[0].metadata
    assert metadata["subset/context_recall"].value == 1.0
    assert isinstance(metadata["impossible/recall_at_1"].value, float)
    assert metadata["corpus_fingerprint"].value == corpus_fingerprint(
        services.chunk_index(evaluation_home).live_versions()
    )
    everything = json.dumps({key: str(value.value) for key, value in metadata.items()}) + str(
        [check.metadata for check in checks.values()]
    )
    for name in ("runtime-config-connection", ".html", ".md", "documents/"):
        assert name not in everything, f"{name} in Dagster's metadata"
    with results_store(evaluation_home) as connection:
        assert metric_history(connection, set_name="impossible", last=5)["recall_at_1"]
    assert defs.resolve_schedule_def("nightly_evaluation_schedule").cron_schedule == "0 2 * * *"


@pytest.mark.slow
def test_the_sample_set_passes_every_blocking_gate(evaluation_home: Settings) -> None:
    """The CI gate: retrieval and the extractive answerer on the whole hand-labeled set."""
    questions: list[LabeledQuestion] = load_set(SAMPLE_SET)
    run = evaluate(questions, InProcessAnswers(services.query_service(evaluation_home)))
    gated = judge_and_record(evaluation_home, run, set_name=SAMPLE_SET.stem, questions=questions,
                             gates=load_gates(EVAL_SETS / "gates.yaml"))  # fmt: skip
    failed = {gate.metric: gate.reason for gate in gated.gates if gate.verdict == "fail"}
    assert not failed, f"blocking gates failed: {failed}"
    assert {gate.metric for gate in gated.gates} == set(BLOCKING_METRICS)
