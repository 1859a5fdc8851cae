"""`ragctl eval run`: the metrics on hand-built answers, the runner with and without the API,
and the command over the sample corpus with the extractive answerer."""

import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import uvicorn
from test_question_cache import VACUUM, _CountingRetriever, _EchoAnswerer
from typer.testing import CliRunner

from rag_core.adapters.cache import DiskResponseCache
from rag_core.adapters.processes import free_port
from rag_core.domain.answers import NO_ANSWER
from rag_core.domain.schemas import Citation, Hit, QueryRequest, QueryResponse, Usage
from rag_core.evaluation.labeled_sets import LabeledQuestion
from rag_core.evaluation.metrics import (
    QuestionScores,
    RetrievalScores,
    abstains,
    document_ranking,
    fact_share,
    marked_sentences,
    percentile,
    retrieval_scores,
    score_question,
    summarize,
    supports,
)
from rag_core.evaluation.runner import (
    Answered,
    InProcessAnswers,
    evaluate,
    scored,
)
from rag_core.flows.querying import QueryService
from rag_core.flows.retrieval import Retriever
from rag_core.settings import Settings, get_settings
from rag_serving.cli import app
from rag_serving.main import create_app

from conftest import PORT_DOCUMENT, PORT_QUESTION

PIP = LabeledQuestion(
    id="pip-hashes",
    question="How does pip check hashes?",
    facts=("--require-hashes", "Hash-checking  MODE"),
    sources=("pip/repeatable-installs.md",),
)
TWO_SOURCES = LabeledQuestion(id="two", question="?", sources=("a.md", "b.md"))
UNANSWERABLE = LabeledQuestion(id="none", question="Who won in 1998?", answerable=False)


def _uri(path: str) -> str:
    return f"file:///rag/objects/documents/{path}"


# Metrics


def test_facts_are_found_whatever_their_case_and_spacing() -> None:
    answer = "Use  --REQUIRE-HASHES.\nHash-checking\tmode is strict."
    assert fact_share(answer, PIP.facts) == 1.0
    assert fact_share("Use --require-hashes.", PIP.facts) == 0.5
    assert fact_share("anything", ()) is None


@pytest.mark.parametrize(
    ("answer", "abstained"),
    [(NO_ANSWER, True), ("I don't know.", True), ("  i DON\u2019T know", True),
     ("I do not know.", True), ("The port is 5432 [1].", False),
     ("Nobody says I don't know here.", False)],
)  # fmt: skip
def test_abstentions_are_the_answerers_i_dont_know(answer: str, abstained: bool) -> None:
    assert abstains(answer) is abstained


def test_documents_are_ranked_by_their_first_chunk_among_the_top_ten() -> None:
    chunks = ["a", "b", "a", "c", "b", "d", "d", "d", "d", "d", "late", "late"]
    assert document_ranking(chunks) == ["a", "b", "c", "d"]


def _retrieval(question: LabeledQuestion, ranking: list[str]) -> dict[str, float] | None:
    scores = retrieval_scores(question, ranking)
    return None if scores is None else scores.model_dump()


def test_retrieval_scores_of_one_source_at_rank_two() -> None:
    ranking = [_uri("x.md"), _uri("pip/repeatable-installs.md")]
    assert _retrieval(PIP, ranking) == pytest.approx(
        {"recall_at_1": 0.0, "recall_at_5": 1.0, "mrr_at_10": 0.5, "ndcg_at_10": 1 / math.log2(3)}
    )


def test_two_sources_are_alternatives_scored_by_the_first_found() -> None:
    ranking = [_uri("x.md"), _uri("b.md"), _uri("a.md")]
    assert _retrieval(TWO_SOURCES, ranking) == pytest.approx(
        {"recall_at_1": 0.0, "recall_at_5": 1.0, "mrr_at_10": 0.5, "ndcg_at_10": 1 / math.log2(3)}
    )


def test_a_source_below_rank_ten_or_a_partial_name_is_not_found() -> None:
    ranking = [_uri(f"d{n}.md") for n in range(10)] + [_uri("pip/repeatable-installs.md")]
    assert retrieval_scores(PIP, ranking) == RetrievalScores(
        recall_at_1=0.0, recall_at_5=0.0, mrr_at_10=0.0, ndcg_at_10=0.0
    )
    assert retrieval_scores(PIP, [_uri("pip/not-repeatable-installs.md")]).mrr_at_10 == 0.0  # type: ignore[union-attr]


def test_an_unanswerable_question_has_no_retrieval_scores() -> None:
    assert retrieval_scores(UNANSWERABLE, [_uri("a.md")]) is None


def test_markers_are_attached_to_the_sentence_before_them() -> None:
    extractive = "The port is 5432 by default. [1] Backups run nightly at two. [2]"
    assert marked_sentences(extractive) == {
        1: ["The port is 5432 by default."],
        2: ["Backups run nightly at two."],
    }
    llm = "It listens on 5432 [1]. Not cited. Kept for 30 days [2][3]. Also [1]."
    assert marked_sentences(llm) == {
        1: ["It listens on 5432", "Also"],
        2: ["Kept for 30 days"],
        3: ["Kept for 30 days"],
    }
    assert marked_sentences(NO_ANSWER) == {}


def test_a_passage_supports_a_citation_by_a_fact_or_most_of_the_sentences_terms() -> None:
    # Terms of the sentence: backups are kept for days default 30 (7); 4/7 < 0.6 <= 5/7.
    sentence = ["Backups are kept for 30 days by default"]
    assert not supports("Backups: kept 30 days.", sentences=sentence, facts=())
    assert supports("Backups: kept 30 days by default.", sentences=sentence, facts=())
    assert supports("Turn on --REQUIRE-hashes.", sentences=[], facts=PIP.facts)
    assert not supports("Unrelated text about ports.", sentences=[], facts=PIP.facts)


def _scores(question: LabeledQuestion, answer: str, **overrides: object) -> QuestionScores:
    knobs: dict = dict(documents=[], context=[], cited_sources=[], supported_citations=[],
                       latency_seconds=0.5, prompt_tokens=0, completion_tokens=0,
                       cost=0.0)  # fmt: skip
    return score_question(question, answer=answer, **(knobs | overrides))


def test_an_answered_question_is_scored_on_every_count() -> None:
    scores = _scores(
        PIP,
        "Run pip with --require-hashes [1].",
        documents=[_uri("pip/repeatable-installs.md")],
        context=["Hash-checking mode", "--require-hashes"],
        cited_sources=[_uri("pip/repeatable-installs.md"), _uri("x.md"), _uri("y.md")],
        supported_citations=[True, False, False],
    )
    assert scores.retrieval is not None and scores.retrieval.recall_at_1 == 1.0
    assert (scores.context_recall, scores.fact_recall) == (1.0, 0.5)
    assert (scores.abstained, scores.abstention_correct, scores.cited_gold) == (False, True, True)
    assert scores.citation_precision == pytest.approx(1 / 3)


def test_abstaining_is_right_only_when_the_question_is_unanswerable() -> None:
    refused = _scores(UNANSWERABLE, NO_ANSWER)
    assert (refused.abstained, refused.abstention_correct) == (True, True)
    assert refused.retrieval is refused.cited_gold is refused.fact_recall is None
    assert refused.context_recall is refused.citation_precision is None  # no citations
    guessed = _scores(UNANSWERABLE, "France won [1].", supported_citations=[False])
    assert (guessed.abstention_correct, guessed.citation_precision) == (False, 0.0)
    gave_up = _scores(PIP, "I don't know.")
    assert (gave_up.abstention_correct, gave_up.fact_recall, gave_up.cited_gold) == (
        False, 0.0, False
    )  # fmt: skip


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([0.3, 0.1, 0.2, 0.4], 50) == 0.2
    assert percentile([0.3, 0.1, 0.2, 0.4], 95) == 0.4
    assert percentile([0.7], 95) == 0.7
    assert percentile([], 50) is None


def test_aggregates_average_each_score_over_the_questions_it_applies_to() -> None:
    rows = [
        _scores(PIP, "--require-hashes [1]", documents=[_uri("pip/repeatable-installs.md")],
                cited_sources=[_uri("pip/repeatable-installs.md")], supported_citations=[True],
                latency_seconds=0.2, prompt_tokens=100, completion_tokens=10, cost=0.002),
        _scores(PIP, "I don't know.", documents=[_uri("x.md"), _uri("pip/repeatable-installs.md")],
                latency_seconds=0.4, prompt_tokens=80, completion_tokens=3, cost=0.001),
        _scores(UNANSWERABLE, NO_ANSWER, latency_seconds=0.1),
    ]  # fmt: skip
    figures = summarize(rows)
    assert (figures.questions, figures.answerable) == (3, 2)
    assert (figures.recall_at_1, figures.recall_at_5, figures.mrr_at_10) == (0.5, 1.0, 0.75)
    assert figures.fact_recall == 0.25  # 1/2 and 0/2; the unanswerable has no facts
    assert figures.abstention_accuracy == pytest.approx(2 / 3)
    assert (figures.cited_gold_rate, figures.citation_precision) == (0.5, 1.0)
    assert (figures.latency_p50_seconds, figures.latency_p95_seconds) == (0.2, 0.4)
    assert (figures.prompt_tokens, figures.completion_tokens) == (180, 13)
    assert figures.cost_per_1000_queries == pytest.approx(1.0)  # 0.003 over 3 questions


def test_aggregates_of_nothing_are_empty() -> None:
    figures = summarize([])
    assert figures.questions == 0 and figures.recall_at_1 is None
    assert figures.latency_p50_seconds is None and figures.cost_per_1000_queries == 0.0


# The runner


def _hit(path: str, text: str, chunk_id: str) -> Hit:
    return Hit(chunk_id=chunk_id, doc_id=path, version="v", source_uri=_uri(path), title=path,
               section="", page=None, score=0.5, vector_score=0.9, keyword_score=None,
               text=text)  # fmt: skip


def _citation(n: int, hit: Hit) -> Citation:
    return Citation(n=n, snippet=hit.text[:10], **hit.model_dump(exclude={"text"}))


def test_citations_are_judged_on_the_whole_passage_not_the_snippet() -> None:
    gold = _hit("pip/repeatable-installs.md", "Pin versions first. Then --require-hashes.", "c1")
    decoy = _hit("x.md", "Nothing about installing here.", "c2")
    response = QueryResponse(
        answer="Pin versions first. [1] Hashes are checked. [2]",
        citations=[_citation(1, gold), _citation(2, decoy)],
        generator="extractive",
        usage=Usage(prompt_tokens=7, completion_tokens=2, cost=0.5),
    )
    row = scored(PIP, Answered(response, 0.25, [decoy, gold], [gold, decoy]))
    assert [c.supported for c in row.citations] == [True, False]
    assert row.documents == [_uri("x.md"), _uri("pip/repeatable-installs.md")]
    scores = row.scores
    assert (scores.context_recall, scores.citation_precision, scores.cited_gold) == (0.5, 0.5, True)
    assert (scores.latency_seconds, scores.prompt_tokens, scores.cost) == (0.25, 7, 0.5)


def _fake_service(settings: Settings) -> tuple[QueryService, _CountingRetriever]:
    retriever = _CountingRetriever(settings)
    service = QueryService(cast(Retriever, retriever), _EchoAnswerer(), DiskResponseCache(settings))
    return service, retriever


def test_the_cache_can_be_bypassed_neither_read_nor_filled(tmp_path: Path) -> None:
    service, retriever = _fake_service(Settings(home=tmp_path / "rag"))
    question = QueryRequest(question="What is VACUUM?")
    assert not service.query(question).cached
    assert not service.query(question, use_cache=False).cached
    assert retriever.searches == 2
    service.query(QueryRequest(question="Another question?"), use_cache=False)
    assert len(list(service.cache.entries())) == 1
    assert service.query(question).cached


def test_in_process_answers_bypass_the_cache_and_see_the_answerers_passages(
    tmp_path: Path,
) -> None:
    service, _ = _fake_service(Settings(home=tmp_path / "rag"))
    service.query(QueryRequest(question="What is VACUUM?"))  # now cached
    answered = InProcessAnswers(service).answer("What is VACUUM?")
    assert not answered.response.cached and answered.latency_seconds > 0
    assert answered.context == answered.ranked == [VACUUM]


def test_evaluate_scores_every_question_in_order(tmp_path: Path) -> None:
    service, _ = _fake_service(Settings(home=tmp_path / "rag"))
    vacuum = LabeledQuestion(id="v", question="What is VACUUM?", facts=("dead tuples",),
                             sources=("sql-vacuum.html",))  # fmt: skip
    run = evaluate([vacuum, UNANSWERABLE], InProcessAnswers(service))
    assert [row.id for row in run.questions] == ["v", "none"]
    first = run.questions[0].scores
    assert first.retrieval is not None and first.retrieval.recall_at_1 == 1.0
    assert first.context_recall == 1.0 and first.fact_recall == 0.0
    assert run.aggregates == summarize([row.scores for row in run.questions])


# Over the sample corpus


def _write_set(path: Path) -> Path:
    questions = [
        {"id": "port", "question": PORT_QUESTION, "facts": ["5432"],
         "sources": ["postgresql/runtime-config-connection.html"]},
        {"id": "vacuum", "question": "Which command reclaims storage occupied by dead tuples?",
         "facts": ["VACUUM"], "sources": ["postgresql/sql-vacuum.html"]},
        {"id": "hashes", "question": "How can pip verify the hashes of what it installs?",
         "facts": ["--hash"], "sources": ["pip/repeatable-installs.md"]},
        {"id": "mosquitto", "question": "Which utilities does Mosquitto include?",
         "facts": ["mosquitto_pub", "mosquitto_sub"], "sources": ["mosquitto-readme.md"]},
        {"id": "world-cup", "question": "Who won the 1998 football World Cup final?",
         "answerable": False},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(question) + "\n" for question in questions))
    return path


@pytest.fixture
def extractive_sample(sample_index: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI on the sample index, answering without a language model (no RAG_LLM_BASE_URL)."""
    monkeypatch.setenv("RAG_HOME", str(sample_index.home))
    monkeypatch.delenv("RAG_LLM_BASE_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.slow
def test_eval_run_json_scores_the_sample_corpus(extractive_sample: None, tmp_path: Path) -> None:
    labeled = _write_set(tmp_path / "set.jsonl")
    result = CliRunner().invoke(
        app, ["eval", "run", "--set", str(labeled), "--json", "--no-record"]
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {row["id"]: row for row in run["questions"]}
    assert list(rows) == ["port", "vacuum", "hashes", "mosquitto", "world-cup"]
    # Every aggregate is recomputed from the rows.
    scores = [QuestionScores.model_validate(row["scores"]) for row in run["questions"]]
    assert summarize(scores).model_dump() == run["aggregates"]
    port = rows["port"]
    assert port["generator"] == "extractive" and not port["cached"]
    assert port["documents"][0].endswith(PORT_DOCUMENT)
    assert port["scores"]["retrieval"]["recall_at_1"] == 1.0 and port["scores"]["cited_gold"]
    assert all(c["source_uri"].endswith(PORT_DOCUMENT) for c in port["citations"][:1])
    assert rows["world-cup"]["scores"]["retrieval"] is None
    assert run["aggregates"]["latency_p50_seconds"] > 0

    table = CliRunner().invoke(
        app, ["eval", "run", "--set", str(labeled), "--limit", "2", "--no-record"]
    )
    assert table.exit_code == 0, table.output
    assert "2 questions (0 unanswerable)" in table.stdout and "recall@1" in table.stdout


@pytest.fixture
def api_url(extractive_sample: None) -> Iterator[str]:
    """The API over the sample index, served over HTTP on loopback from a thread."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(get_settings()), host="127.0.0.1", port=free_port(),
                       log_level="warning")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API did not start"
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.mark.slow
def test_through_the_api_the_same_questions_get_the_same_scores(
    api_url: str, tmp_path: Path
) -> None:
    labeled = str(_write_set(tmp_path / "set.jsonl"))
    outcomes = []
    for where in (["--api", api_url], []):
        result = CliRunner().invoke(app, ["eval", "run", "--set", labeled, "--limit", "2",
                                          "--json", "--no-record", *where])  # fmt: skip
        assert result.exit_code == 0, result.output
        outcomes.append(json.loads(result.stdout.strip().splitlines()[-1])["questions"])
    for there, here in zip(*outcomes, strict=True):
        assert (there["answer"], there["documents"]) == (here["answer"], here["documents"])
        for score in ("retrieval", "context_recall", "fact_recall", "citation_precision"):
            assert there["scores"][score] == here["scores"][score]


def test_an_api_that_does_not_answer_ends_the_run_with_one_line(tmp_path: Path) -> None:
    labeled = _write_set(tmp_path / "set.jsonl")
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["eval", "run", "--set", str(labeled), "--api", nowhere])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("error: ConnectError")


def test_a_malformed_set_is_refused_with_its_line(tmp_path: Path) -> None:
    labeled = tmp_path / "bad.jsonl"
    labeled.write_text('{"id": "a", "question": "q?"}\n')  # answerable without sources
    result = CliRunner().invoke(app, ["eval", "run", "--set", str(labeled)])
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output
