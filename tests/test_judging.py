"""Judged metrics (`rag_core.evaluation.judging`): the calibration copies' corruption, and
the packaged local model judging hand-built answers."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import LOCAL_MODEL
from rag_core.adapters.processes import free_port
from rag_core.evaluation.gates import GatesConfig, SetGates
from rag_core.evaluation.judging import (
    Judge,
    JudgedQuestion,
    JudgedRow,
    JudgedRun,
    agreement,
    corrupted,
    listed,
    wrong_fact,
)
from rag_core.evaluation.labeled_sets import LabeledQuestion
from rag_core.evaluation.metrics import score_question, summarize
from rag_core.evaluation.results import judge_and_record, metric_history, results_store
from rag_core.evaluation.runner import EvaluationRun, QuestionResult, judged_rows, with_judgement
from rag_core.settings import Settings, get_settings
from rag_serving.cli import app


@pytest.mark.parametrize(
    ("fact", "wrong"),
    [
        ("5432", "6432"),
        ("100 connections", "200 connections"),
        ("TLSv1.2", "TLSv2.3"),
        ("9", "10"),
        ("0777", "1777"),
    ],
)
def test_a_number_gets_its_leading_digit_raised(fact: str, wrong: str) -> None:
    assert wrong_fact(fact, decoys=["listen_addresses"]) == wrong


def test_a_name_is_replaced_by_another_name_the_same_way_every_time() -> None:
    decoys = ["max_connections", "5432", "pg_dumpall", "listen_addresses"]
    wrong = wrong_fact("listen_addresses", decoys=decoys)
    assert wrong in {"max_connections", "pg_dumpall"}
    assert wrong_fact("listen_addresses", decoys=list(reversed(decoys))) == wrong
    assert wrong_fact("listen_addresses", decoys=["5432", "listen_addresses"]) is None
    # A name of as many words, where there is one.
    assert wrong_fact("createdb mydb", decoys=["pg_dumpall", "pip freeze"]) == "pip freeze"
    assert wrong_fact("createdb mydb", decoys=["pg_dumpall"]) == "pg_dumpall"


def test_the_first_fact_the_answer_states_is_replaced_everywhere_in_any_case_and_spacing() -> None:
    answer = "Run CREATEDB   mydb on port 5432, then createdb mydb again."
    facts = ["max_connections", "createdb mydb", "5432"]
    assert corrupted(answer, facts, decoys=["pg_dumpall"]) == (
        "Run pg_dumpall on port 5432, then pg_dumpall again."
    )


def test_the_question_s_own_facts_are_never_the_wrong_value() -> None:
    answer = "Build an sdist and a wheel."
    assert corrupted(answer, ["sdist", "wheel"], decoys=["sdist", "wheel", "fcntl"]) == (
        "Build an fcntl and a wheel."
    )
    assert corrupted(answer, ["sdist", "wheel"], decoys=["sdist", "wheel"]) is None


def test_an_answer_stating_no_fact_has_no_corrupted_copy() -> None:
    assert corrupted("It listens on the default port.", ["5432"]) is None
    assert corrupted("It listens on 5432.", []) is None


def test_a_number_fact_needs_no_decoys() -> None:
    assert corrupted("Port 5432 [1].", ["5432"]) == "Port 6432 [1]."


def test_list_replies_lose_their_bullets_and_blank_lines() -> None:
    assert listed("1. One.\n\n- Two?\n* Three\n2) Four") == ["One.", "Two?", "Three", "Four"]


def test_agreement_counts_a_tie_as_half() -> None:
    assert agreement([(1.0, 0.0), (0.5, 0.5), (0.0, 1.0), (1.0, 0.5)]) == pytest.approx(2.5 / 4)
    assert agreement([]) is None


def test_a_judge_needs_a_model() -> None:
    with pytest.raises(ValueError, match="RAG_LLM_BASE_URL"):
        Judge(Settings(llm_base_url=""))


PORT_CONTEXT = (
    "port (integer): The TCP port the server listens on; 5432 by default. Note that the same "
    "port number is used for all IP addresses the server listens on.",
    "max_connections (integer): Determines the maximum number of concurrent connections to "
    "the database server. The default is typically 100 connections.",
)
PORT_QUESTION = "Which TCP port does PostgreSQL listen on by default?"


# A loaded 2-core machine can take over a minute per call.
CALL_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def judge(local_llm: LocalLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Judge:
    settings = Settings(home=tmp_path_factory.mktemp("judge"), llm_base_url=local_llm.base_url)
    return Judge(settings, call_timeout_seconds=CALL_TIMEOUT_SECONDS)


@pytest.mark.slow
def test_the_local_model_judges_answers_and_its_own_calibration(judge: Judge) -> None:
    rows = [
        JudgedRow(
            id="faithful",
            question=PORT_QUESTION,
            answer="PostgreSQL listens on TCP port 5432 by default [1].",
            context=PORT_CONTEXT,
            facts=("5432",),
        ),
        JudgedRow(
            id="unfaithful",
            question=PORT_QUESTION,
            answer="PostgreSQL listens on port 3306 and keeps its data in the cloud [1].",
            context=PORT_CONTEXT,
            facts=("5432",),
        ),
        JudgedRow(
            id="abstention",
            question="What is the capital of France?",
            answer="I don't know.",
            context=PORT_CONTEXT,
        ),
    ]
    run = judge.score(rows)
    faithful, unfaithful, abstention = run.questions
    assert not faithful.failures and not unfaithful.failures
    for judged in (faithful, unfaithful):
        assert judged.faithfulness is not None and 0 <= judged.faithfulness <= 1
        assert judged.answer_relevancy is not None and -1 <= judged.answer_relevancy <= 1
    assert faithful.faithfulness > unfaithful.faithfulness, run
    assert (abstention.faithfulness, abstention.answer_relevancy) == (None, None)
    assert abstention.corrupted_answer is None
    # The unfaithful answer states no fact, so the faithful one makes the only pair.
    assert faithful.corrupted_answer == "PostgreSQL listens on TCP port 6432 by default."
    assert unfaithful.corrupted_answer is None
    assert faithful.corrupted_faithfulness is not None
    assert run.calibration_pairs == 1
    assert run.judge_agreement == agreement(
        [(faithful.faithfulness, faithful.corrupted_faithfulness)]
    )
    assert run.faithfulness == pytest.approx((faithful.faithfulness + unfaithful.faithfulness) / 2)


def test_an_unreachable_judge_is_recorded_per_question_not_raised(tmp_path: Path) -> None:
    judge = Judge(
        Settings(home=tmp_path, llm_base_url=f"http://127.0.0.1:{free_port()}/v1"),
        call_timeout_seconds=5,
    )
    row = JudgedRow(id="q", question=PORT_QUESTION, answer="Port 5432.", context=PORT_CONTEXT)
    (judged,) = judge.score([row]).questions
    assert judged.faithfulness is None and judged.answer_relevancy is None
    assert set(judged.failures) == {"faithfulness", "answer_relevancy"}
    assert "APIConnectionError" in judged.failures["faithfulness"]


def _answered(id_: str, answer: str, facts: list[str]) -> QuestionResult:
    scores = score_question(
        LabeledQuestion(id=id_, question=PORT_QUESTION, facts=facts, sources=["a.html"]),
        answer=answer, documents=["a.html"], context=list(PORT_CONTEXT), cited_sources=[],
        supported_citations=[], latency_seconds=1.0, prompt_tokens=10, completion_tokens=5,
        cost=0.0,
    )  # fmt: skip
    return QuestionResult(id=id_, question=PORT_QUESTION, answerable=True, answer=answer,
                          generator="local", cached=False, citations=[], documents=["a.html"],
                          context=list(PORT_CONTEXT), scores=scores)  # fmt: skip


def test_a_judgement_goes_into_the_aggregates_the_rows_and_the_results_store(
    tmp_path: Path,
) -> None:
    rows = [_answered("port", "Port 5432 [1].", ["5432"]), _answered("other", "No idea.", [])]
    run = EvaluationRun(aggregates=summarize([r.scores for r in rows]), currency="GBP",
                        questions=rows)  # fmt: skip
    questions = [LabeledQuestion(id="port", question=PORT_QUESTION, facts=["5432"],
                                 sources=["a.html"])]  # fmt: skip
    judged_input = judged_rows(run, questions)
    assert [(row.id, row.facts, row.context) for row in judged_input] == [
        ("port", ("5432",), PORT_CONTEXT), ("other", (), PORT_CONTEXT)
    ]  # fmt: skip
    judgement = JudgedRun(
        faithfulness=0.75, answer_relevancy=0.5, judge_agreement=0.95, calibration_pairs=1,
        questions=[JudgedQuestion(id="port", faithfulness=0.75, answer_relevancy=0.5)],
    )  # fmt: skip
    judged = with_judgement(run, judgement)
    figures = judged.aggregates
    assert (figures.faithfulness, figures.answer_relevancy, figures.judge_agreement) == (
        0.75, 0.5, 0.95
    )  # fmt: skip
    assert figures.recall_at_1 == run.aggregates.recall_at_1
    port, other = judged.questions
    assert port.judged is not None and port.judged.faithfulness == 0.75 and other.judged is None

    floors = {"faithfulness": 0.9}
    trusted = GatesConfig(sets={"s": SetGates(floors=floors)})
    gated = judge_and_record(Settings(home=tmp_path), judged, set_name="s",
                             questions=questions, gates=trusted)  # fmt: skip
    assert {g.metric: g.verdict for g in gated.gates}["faithfulness"] == "fail"
    doubtful = trusted.model_copy(update={"judge_trust": 0.99})
    warned = judge_and_record(Settings(home=tmp_path), judged, set_name="s",
                              questions=questions, gates=doubtful, record=False)  # fmt: skip
    assert {g.metric: g.verdict for g in warned.gates}["faithfulness"] == "warn"
    assert warned.passed
    with results_store(Settings(home=tmp_path)) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT question_id, faithfulness FROM evaluation_questions ORDER BY 1")
        assert cursor.fetchall() == [("other", None), ("port", 0.75)]
        assert metric_history(connection, set_name="s", last=1)["judge_agreement"][0].value == 0.95


def test_eval_run_judge_needs_a_model(
    sample_index: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labeled = tmp_path / "set.jsonl"
    labeled.write_text(json.dumps({"id": "q", "question": "Port?", "answerable": False}) + "\n")
    monkeypatch.setenv("RAG_HOME", str(sample_index.home))
    monkeypatch.delenv("RAG_LLM_BASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["eval", "run", "--set", str(labeled), "--judge", "--no-record"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "cannot judge: judging needs a model: set RAG_LLM_BASE_URL" in result.output


@pytest.mark.slow
def test_the_local_model_answers_and_judges_a_labeled_set(
    sample_index: Settings,
    local_llm: LocalLLMServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ragctl eval run --judge` with the packaged model answering and judging."""
    labeled = tmp_path / "set.jsonl"
    questions = [
        {"id": "port", "question": "Which TCP port does the PostgreSQL server listen on?",
         "facts": ["5432"], "sources": ["postgresql/runtime-config-connection.html"]},
        {"id": "world-cup", "question": "Who won the 1998 football World Cup final?",
         "answerable": False},
    ]  # fmt: skip
    labeled.write_text("".join(json.dumps(question) + "\n" for question in questions))
    for name, value in {"RAG_HOME": str(sample_index.home), "RAG_LLM_BASE_URL": local_llm.base_url,
                        "RAG_LLM_TIMEOUT_SECONDS": str(CALL_TIMEOUT_SECONDS)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["eval", "run", "--set", str(labeled), "--judge", "--json", "--no-record"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout.strip().splitlines()[-1])
    port, world_cup = run["questions"]
    assert port["generator"] == LOCAL_MODEL, port
    assert "5432" in port["answer"] and port["scores"]["fact_recall"] == 1.0
    assert port["judged"]["faithfulness"] is not None, port["judged"]
    assert port["judged"]["corrupted_answer"] and "6432" in port["judged"]["corrupted_answer"]
    assert world_cup["scores"]["abstention_correct"], world_cup["answer"]
    figures = run["aggregates"]
    assert figures["faithfulness"] == port["judged"]["faithfulness"]
    assert figures["judge_agreement"] in (0.0, 0.5, 1.0)
    assert run["context"]["generator"] == LOCAL_MODEL
    assert "faithfulness" in {gate["metric"] for gate in run["gates"]}
