"""The results of evaluation runs, kept across restarts: one row per run with what its scores
depend on (the run's context), one per question, one per aggregate metric and one per gate.
A run is gated (`gates`) against the last passing run of the same questions on the same corpus.

Locally the tables live in DuckDB, `<RAG_HOME>/evaluation.duckdb`, opened only for the moment
a run is read or recorded (an open DuckDB file is locked against other processes). The SQL is
portable: standard types (VARCHAR, DOUBLE, BIGINT, INTEGER, BOOLEAN, TIMESTAMP in UTC), JSON
kept as text, qmark (`?`) parameters and a window function, so the same statements run on
the warehouse in production through a Snowflake connection opened with `paramstyle="qmark"`
(`adapters.warehouse.connection`): TIMESTAMP becomes TIMESTAMP_NTZ, DOUBLE FLOAT, primary keys
are declared but not enforced, and a view can `PARSE_JSON` the text columns into VARIANT.
Metrics are rows (`evaluation_metrics`), not columns, so judged metrics need no new column.

Answers are stored as given: they quote the indexed documents, and erasure does not reach this
store; evaluate on labeled sets over documents without personal data.
"""

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rag_core import services
from rag_core.adapters.warehouse.connection import Connection, open_duckdb, transaction
from rag_core.domain.chunk_store import LiveVersions
from rag_core.evaluation.gates import (
    Baseline,
    GateOutcome,
    GatesConfig,
    gated_metrics,
    judge,
    passed,
)
from rag_core.evaluation.labeled_sets import LabeledQuestion
from rag_core.evaluation.metrics import Frozen
from rag_core.evaluation.runner import EvaluationRun, QuestionResult
from rag_core.settings import Settings

RESULTS_FILE = "evaluation.duckdb"
PACKAGE = "rag-platform"
REPOSITORY = Path(__file__).resolve().parents[2]
# The settings that change what a question gets: its chunks, their ranking, its answer.
ANSWER_SETTINGS = (
    "chunk_size", "chunk_overlap", "retrieval_mode", "rrf_k", "vector_weight", "keyword_weight",
    "candidates", "min_relevance", "dedupe_similarity", "reranker", "reranker_model",
    "embedding_model", "llm_model", "llm_max_tokens", "profile", "answerer", "query_top_k",
    "context_budget_tokens",
)  # fmt: skip

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS evaluation_runs (
        run_id VARCHAR PRIMARY KEY,
        recorded_at TIMESTAMP NOT NULL,
        set_name VARCHAR NOT NULL,
        set_fingerprint VARCHAR NOT NULL,
        questions INTEGER NOT NULL,
        corpus_fingerprint VARCHAR NOT NULL,
        index_version BIGINT NOT NULL,
        generator VARCHAR NOT NULL,
        answer_settings VARCHAR NOT NULL,
        code_version VARCHAR NOT NULL,
        currency VARCHAR NOT NULL,
        passed BOOLEAN NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS evaluation_metrics (
        run_id VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL,
        PRIMARY KEY (run_id, metric))""",
    """CREATE TABLE IF NOT EXISTS evaluation_questions (
        run_id VARCHAR NOT NULL,
        question_id VARCHAR NOT NULL,
        answerable BOOLEAN NOT NULL,
        answer VARCHAR NOT NULL,
        generator VARCHAR NOT NULL,
        cached BOOLEAN NOT NULL,
        cited_sources VARCHAR NOT NULL,
        recall_at_1 DOUBLE,
        recall_at_5 DOUBLE,
        mrr_at_10 DOUBLE,
        ndcg_at_10 DOUBLE,
        context_recall DOUBLE,
        fact_recall DOUBLE,
        abstained BOOLEAN NOT NULL,
        abstention_correct BOOLEAN NOT NULL,
        cited_gold BOOLEAN,
        citation_precision DOUBLE,
        latency_seconds DOUBLE NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost DOUBLE NOT NULL,
        faithfulness DOUBLE,
        answer_relevancy DOUBLE,
        PRIMARY KEY (run_id, question_id))""",
    """CREATE TABLE IF NOT EXISTS evaluation_gates (
        run_id VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL,
        floor DOUBLE,
        previous DOUBLE,
        verdict VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        PRIMARY KEY (run_id, metric))""",
)


class RunContext(Frozen):
    """What a run's scores depend on besides its questions."""

    index_version: int
    corpus_fingerprint: str
    generator: str
    answer_settings: dict[str, str | int | float | bool | None]
    code_version: str


class RecordedRun(Frozen):
    run_id: str
    recorded_at: datetime
    set_name: str
    set_fingerprint: str
    corpus_fingerprint: str
    passed: bool
    metrics: dict[str, float]


class MetricPoint(Frozen):
    run_id: str
    recorded_at: datetime
    value: float


class GatedRun(Frozen):
    """A run's gates, judged; `run_id` is None when the run was not recorded."""

    run_id: str | None
    set_name: str
    set_fingerprint: str
    context: RunContext
    gates: list[GateOutcome]
    passed: bool


def corpus_fingerprint(live: LiveVersions) -> str:
    """A hash of the sorted (doc_id, version) pairs in the index: equal for equal corpora."""
    pairs = "\n".join(f"{doc_id}@{version}" for doc_id, version in sorted(live))
    return hashlib.sha256(pairs.encode()).hexdigest()[:16]


def set_fingerprint(questions: Sequence[LabeledQuestion]) -> str:
    """A hash of the questions asked and their labels (a `--limit` asks other questions)."""
    lines = "\n".join(question.model_dump_json() for question in questions)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def answer_settings(settings: Settings) -> dict[str, str | int | float | bool | None]:
    """The settings that change answers; of the model's endpoint only whether there is one."""
    values = {name: getattr(settings, name) for name in ANSWER_SETTINGS}
    return values | {"llm_base_url_set": bool(settings.llm_base_url)}


def code_version() -> str:
    """The package's version and the checkout's commit (`unknown` outside a git checkout)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPOSITORY, capture_output=True,
            text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return f"{metadata.version(PACKAGE)}+{commit or 'unknown'}"


def run_context(settings: Settings, run: EvaluationRun) -> RunContext:
    """The context of a run on the index `settings` name, read now."""
    index = services.chunk_index(settings)
    live = index.live_versions()
    return RunContext(
        index_version=index.stats(live).table_version,
        corpus_fingerprint=corpus_fingerprint(live),
        generator=",".join(sorted({result.generator for result in run.questions})) or "none",
        answer_settings=answer_settings(settings),
        code_version=code_version(),
    )


def results_path(settings: Settings) -> Path:
    return settings.home / RESULTS_FILE


@contextmanager
def results_store(settings: Settings) -> Iterator[Connection]:
    """A brief connection to the results store, its tables created when missing."""
    connection = open_duckdb(results_path(settings), read_only=False)
    try:
        cursor = connection.cursor()
        for statement in SCHEMA:
            cursor.execute(statement)
        yield connection
    finally:
        connection.close()


def record_run(
    connection: Connection,
    run: EvaluationRun,
    *,
    set_name: str,
    set_fingerprint: str,
    context: RunContext,
    gates: Sequence[GateOutcome],
) -> str:
    """Record a run, its questions, metrics and gates in one transaction; returns its id."""
    run_id = uuid.uuid4().hex
    recorded_at = datetime.now(UTC).replace(tzinfo=None)
    cursor = connection.cursor()
    with transaction(cursor):
        cursor.execute(
            "INSERT INTO evaluation_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, recorded_at, set_name, set_fingerprint, len(run.questions),
             context.corpus_fingerprint, context.index_version, context.generator,
             json.dumps(context.answer_settings, sort_keys=True), context.code_version,
             run.currency, passed(list(gates))],
        )  # fmt: skip
        metrics = _recorded_metrics(run)
        if metrics:
            cursor.executemany(
                "INSERT INTO evaluation_metrics VALUES (?, ?, ?)",
                [[run_id, name, value] for name, value in metrics.items()],
            )
        if run.questions:
            cursor.executemany(
                f"INSERT INTO evaluation_questions VALUES ({', '.join(['?'] * 23)})",
                [_question_row(run_id, result) for result in run.questions],
            )
        if gates:
            cursor.executemany(
                "INSERT INTO evaluation_gates VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[run_id, g.metric, g.value, g.floor, g.previous, g.verdict, g.reason]
                 for g in gates],
            )  # fmt: skip
    return run_id


def _recorded_metrics(run: EvaluationRun) -> dict[str, float]:
    """Every aggregate that applies, latency, tokens and cost included."""
    return {
        name: float(value)
        for name, value in run.aggregates.model_dump().items()
        if value is not None
    }


def _question_row(run_id: str, result: QuestionResult) -> list[object]:
    scores = result.scores
    retrieval = scores.retrieval
    return [
        run_id, result.id, result.answerable, result.answer, result.generator, result.cached,
        json.dumps([citation.source_uri for citation in result.citations]),
        *(None if retrieval is None else getattr(retrieval, name)
          for name in ("recall_at_1", "recall_at_5", "mrr_at_10", "ndcg_at_10")),
        scores.context_recall, scores.fact_recall, scores.abstained, scores.abstention_correct,
        scores.cited_gold, scores.citation_precision, scores.latency_seconds,
        scores.prompt_tokens, scores.completion_tokens, scores.cost,
        *(None if result.judged is None else getattr(result.judged, name)
          for name in ("faithfulness", "answer_relevancy")),
    ]  # fmt: skip


def last_passing_run(
    connection: Connection,
    *,
    set_name: str,
    set_fingerprint: str,
    corpus_fingerprint: str | None = None,
    generator: str | None = None,
) -> RecordedRun | None:
    """The latest passing run of these questions, on this corpus and by this answerer unless
    None (any corpus, any answerer)."""
    query = (
        "SELECT run_id, recorded_at, set_name, set_fingerprint, corpus_fingerprint, passed "
        "FROM evaluation_runs WHERE passed AND set_name = ? AND set_fingerprint = ?"
    )
    parameters: list[object] = [set_name, set_fingerprint]
    for column, value in (("corpus_fingerprint", corpus_fingerprint), ("generator", generator)):
        if value is not None:
            query += f" AND {column} = ?"
            parameters.append(value)
    cursor = connection.cursor()
    cursor.execute(query + " ORDER BY recorded_at DESC LIMIT 1", parameters)
    rows = cursor.fetchall()
    if not rows:
        return None
    run_id, recorded_at, name, questions, corpus, was_passed = rows[0]
    cursor.execute("SELECT metric, value FROM evaluation_metrics WHERE run_id = ?", [run_id])
    return RecordedRun(
        run_id=run_id, recorded_at=recorded_at, set_name=name, set_fingerprint=questions,
        corpus_fingerprint=corpus, passed=was_passed, metrics=dict(cursor.fetchall()),
    )  # fmt: skip


def metric_history(
    connection: Connection, *, set_name: str, last: int
) -> dict[str, list[MetricPoint]]:
    """The last `last` recorded values of each metric of a set, by metric, oldest first."""
    cursor = connection.cursor()
    cursor.execute(
        """SELECT metric, run_id, recorded_at, value FROM (
               SELECT m.metric, r.run_id, r.recorded_at, m.value, ROW_NUMBER() OVER (
                   PARTITION BY m.metric ORDER BY r.recorded_at DESC) AS recency
               FROM evaluation_metrics m JOIN evaluation_runs r ON r.run_id = m.run_id
               WHERE r.set_name = ?) ranked
           WHERE recency <= ? ORDER BY metric, recorded_at""",
        [set_name, last],
    )
    history: dict[str, list[MetricPoint]] = {}
    for metric, run_id, recorded_at, value in cursor.fetchall():
        point = MetricPoint(run_id=run_id, recorded_at=recorded_at, value=value)
        history.setdefault(metric, []).append(point)
    return history


def baseline_of(
    connection: Connection,
    *,
    set_name: str,
    set_fingerprint: str,
    corpus_fingerprint: str,
    generator: str,
) -> Baseline | None:
    """What a run is compared with: the last passing run of the same questions by the same
    answerer (a model answers differently from the extractive answerer, which is not a
    regression) on the same corpus, else the last on any corpus (shown, not compared), else
    nothing."""
    runs = {"set_name": set_name, "set_fingerprint": set_fingerprint, "generator": generator}
    same = last_passing_run(connection, **runs, corpus_fingerprint=corpus_fingerprint)
    last = same or last_passing_run(connection, **runs)
    if last is None:
        return None
    return Baseline(run_id=last.run_id, metrics=last.metrics, same_corpus=same is not None)


def judge_and_record(
    settings: Settings,
    run: EvaluationRun,
    *,
    set_name: str,
    questions: Sequence[LabeledQuestion],
    gates: GatesConfig,
    record: bool = True,
    whole_set: bool = True,
) -> GatedRun:
    """Judge a run's gates against the results store under `settings`, and record it there
    unless `record` is false (then the store is only read, if it exists). The floors are the
    whole set's: a run of part of it (`whole_set` false) is only compared with earlier runs
    of the same part."""
    context = run_context(settings, run)
    fingerprint = set_fingerprint(questions)
    baseline = None
    if record or results_path(settings).exists():
        with results_store(settings) as connection:
            baseline = baseline_of(connection, set_name=set_name, set_fingerprint=fingerprint,
                                   corpus_fingerprint=context.corpus_fingerprint,
                                   generator=context.generator)  # fmt: skip
    outcomes = judge(
        gated_metrics(run.aggregates),
        floors=gates.floors(set_name, context.generator) if whole_set else {},
        tolerance=gates.tolerance_of(set_name),
        baseline=baseline,
        trusted_judge=gates.trusts(run.aggregates),
    )
    run_id = None
    if record:
        with results_store(settings) as connection:
            run_id = record_run(connection, run, set_name=set_name, set_fingerprint=fingerprint,
                                context=context, gates=outcomes)  # fmt: skip
    return GatedRun(run_id=run_id, set_name=set_name, set_fingerprint=fingerprint,
                    context=context, gates=outcomes, passed=passed(outcomes))  # fmt: skip


class ResultsStoreBusy(RuntimeError):
    """A writing process holds the results store's lock (DuckDB allows one writer)."""


def recorded_sets(connection: Connection) -> list[str]:
    """The name of every set with a recorded run, in name order."""
    cursor = connection.cursor()
    cursor.execute("SELECT DISTINCT set_name FROM evaluation_runs ORDER BY set_name")
    return [name for (name,) in cursor.fetchall()]


def latest_runs(connection: Connection, *, set_name: str, last: int) -> list[RecordedRun]:
    """The last `last` runs of a set with their metrics, oldest first: what a trend shows,
    one point per run, with whether the run passed (`metric_history` is by metric)."""
    cursor = connection.cursor()
    cursor.execute(
        """SELECT r.run_id, r.recorded_at, r.set_name, r.set_fingerprint, r.corpus_fingerprint,
                  r.passed, m.metric, m.value
           FROM (SELECT * FROM evaluation_runs WHERE set_name = ?
                 ORDER BY recorded_at DESC LIMIT ?) r
           LEFT JOIN evaluation_metrics m ON m.run_id = r.run_id
           ORDER BY r.recorded_at, r.run_id""",
        [set_name, last],
    )
    rows = cursor.fetchall()
    # A run's columns repeat on each of its metric rows; keys keep the runs' order.
    runs = {row[0]: row[:6] for row in rows}
    metrics: dict[str, dict[str, float]] = {run_id: {} for run_id in runs}
    for run_id, *_, metric, value in rows:
        if metric is not None:
            metrics[run_id][metric] = value
    return [
        RecordedRun(
            run_id=run_id,
            recorded_at=recorded_at,
            set_name=name,
            set_fingerprint=questions,
            corpus_fingerprint=corpus,
            passed=was_passed,
            metrics=metrics[run_id],
        )
        for run_id, recorded_at, name, questions, corpus, was_passed in runs.values()
    ]


def recorded_floors(connection: Connection, *, run_id: str) -> dict[str, float]:
    """The floors a run was judged against, by metric (none for a run of part of a set)."""
    cursor = connection.cursor()
    cursor.execute(
        "SELECT metric, floor FROM evaluation_gates WHERE run_id = ? AND floor IS NOT NULL",
        [run_id],
    )
    return dict(cursor.fetchall())


@contextmanager
def reading_results(settings: Settings) -> Iterator[Connection]:
    """A brief read-only connection to an existing results store (waiting a few seconds for
    a writer to finish); it creates nothing."""
    connection = open_duckdb(results_path(settings), read_only=True)
    try:
        yield connection
    finally:
        connection.close()


def latest_scores(settings: Settings) -> list[RecordedRun]:
    """The latest run of every recorded set, with its metrics, in set order; none without a
    results store. For a scrape: opened read-only and without waiting, so a writer's lock
    raises `ResultsStoreBusy` at once instead of holding the scrape up."""
    import duckdb

    path = results_path(settings)
    if not path.exists():
        return []
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as locked:
        if "lock" not in str(locked).lower():
            raise
        raise ResultsStoreBusy(f"the results store {path} is being written: {locked}") from locked
    try:
        return [
            run
            for name in recorded_sets(connection)
            for run in latest_runs(connection, set_name=name, last=1)
        ]
    finally:
        connection.close()
