"""`ragctl eval`: ask a labeled question set of the live index and score the answers, the
citations and the retrieval (`rag_core.evaluation`), judge the run's gates
(`eval_sets/gates.yaml`) and record it in the results store under RAG_HOME.

The index, the model and the runner are imported inside the commands, so `--help` starts at
once; with `--api` neither the index nor the model is loaded.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rag_core.evaluation.gates import GateOutcome
    from rag_core.evaluation.labeled_sets import LabeledQuestion
    from rag_core.evaluation.metrics import Aggregates
    from rag_core.evaluation.results import GatedRun
    from rag_core.evaluation.runner import Answers, EvaluationRun

eval_app = typer.Typer(
    help="Evaluate answers and retrieval against labeled question sets (eval_sets/*.jsonl).",
    no_args_is_help=True,
)
console = Console(stderr=True)
# An answer by a slow local model, and its search.
API_TIMEOUT_SECONDS = 120.0
GATES_FILE = "gates.yaml"
# The exit status of a run whose blocking gate failed (1 is an error, 2 a malformed set).
GATE_FAILED_EXIT = 3
# A judge agreement at or below which a judge's scores are flagged as untrustworthy.
UNTRUSTED_JUDGE = 0.6


@eval_app.command("run")
def run(
    set_path: Annotated[
        Path,
        typer.Option("--set", exists=True, dir_okay=False, help="A labeled set (JSON lines)."),
    ],
    api: Annotated[
        str | None,
        typer.Option(
            help="Ask the API at this URL (RAG_AUTH_MODE=dev) instead of this process; its "
            "response cache is not bypassed (rows say which answers were cached)."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Ask the first N questions; their floors are not judged (they are the whole "
            "set's), only the regression against earlier runs of the same N.",
        ),
    ] = None,
    json: Annotated[
        bool,
        typer.Option(
            "--json", help="End with one JSON line: aggregates, every row, gates and context."
        ),
    ] = False,
    gates_path: Annotated[
        Path | None,
        typer.Option(
            "--gates",
            dir_okay=False,
            help=f"Gates file (default: {GATES_FILE} beside the set; none there: no floors).",
        ),
    ] = None,
    record: Annotated[
        bool, typer.Option(help="Record the run in the results store (RAG_HOME/evaluation.duckdb).")
    ] = True,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge",
            help="Also score faithfulness and answer relevancy with the configured model "
            "(RAG_LLM_*) as judge, calibrated on corrupted copies of the answers; slow.",
        ),
    ] = False,
) -> None:
    """Ask every question of a set, bypassing the response cache, score the answers and
    judge the gates.

    Reports retrieval (recall@1, recall@5, MRR@10, nDCG@10 by document, context recall),
    answers (fact recall, abstention accuracy, cited gold, citation precision), latency,
    tokens and cost; then each gate: the metric's floor and its value in the last passing
    run of the same questions on the same corpus. Exits with status 3 when a blocking
    (deterministic) gate fails. The run's context (index version, corpus fingerprint,
    settings) is read in this process, also with --api: point RAG_HOME at the API's."""
    from rich.progress import track

    from rag_core.evaluation.gates import load_gates
    from rag_core.evaluation.labeled_sets import LabeledSetError, load_set
    from rag_core.evaluation.results import judge_and_record
    from rag_core.evaluation.runner import evaluate
    from rag_core.settings import get_settings

    try:
        labeled = load_set(set_path)
    except LabeledSetError as invalid:
        console.print(str(invalid), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from invalid
    questions = labeled[:limit]
    gates = load_gates(gates_path or set_path.parent / GATES_FILE)
    with _answers(api) as answers:
        outcome = evaluate(
            questions,
            answers,
            progress=lambda planned: track(planned, description="Asking", console=console),
        )
    if judge:
        outcome = _judged(outcome, questions)
    gated = judge_and_record(get_settings(), outcome, set_name=set_path.stem,
                             questions=questions, gates=gates, record=record,
                             whole_set=len(questions) == len(labeled))  # fmt: skip
    if json:
        _print_gates(gated, Console(stderr=True))
        print(_json_line(outcome, gated))
    else:
        _print_aggregates(outcome)
        _print_gates(gated, Console())
    if not gated.passed:
        raise typer.Exit(GATE_FAILED_EXIT)


def _judged(outcome: "EvaluationRun", questions: Sequence["LabeledQuestion"]) -> "EvaluationRun":
    """The run with the configured model's judgement, and a warning when the judge cannot
    tell true answers from corrupted ones."""
    from rich.progress import track

    from rag_core.evaluation.judging import Judge
    from rag_core.evaluation.runner import judged_rows, with_judgement
    from rag_core.settings import get_settings

    try:
        judge = Judge(get_settings())
    except ValueError as unconfigured:
        console.print(f"cannot judge: {unconfigured}", style="red", markup=False)
        raise typer.Exit(2) from unconfigured
    judgement = judge.score(
        judged_rows(outcome, questions),
        progress=lambda rows: track(rows, description="Judging", console=console),
    )
    agreement = judgement.judge_agreement
    if agreement is None or agreement <= UNTRUSTED_JUDGE:
        console.print(
            f"the judge ranked true answers above corrupted ones in {_share(agreement)} of "
            f"{judgement.calibration_pairs} pairs (0.5 is chance): do not trust its scores",
            style="yellow",
            markup=False,
        )
    return with_judgement(outcome, judgement)


def _json_line(outcome: "EvaluationRun", gated: "GatedRun") -> str:
    """The run's rows and aggregates, with its gates, context and id in the results store."""
    import json as json_lib

    document = outcome.model_dump(mode="json") | gated.model_dump(
        mode="json", include={"run_id", "set_name", "context", "gates", "passed"}
    )
    return json_lib.dumps(document)


@contextmanager
def _answers(api: str | None) -> "Iterator[Answers]":
    """Who answers: the API at `api`, else this process (the services the CLI uses)."""
    if api is None:
        from rag_core import services
        from rag_core.evaluation.runner import InProcessAnswers
        from rag_core.settings import get_settings

        yield InProcessAnswers(services.query_service(get_settings()))
        return
    import httpx

    from rag_core.evaluation.runner import ApiAnswers

    timeout = httpx.Timeout(API_TIMEOUT_SECONDS, connect=5.0)
    with httpx.Client(base_url=api.rstrip("/"), timeout=timeout) as client:
        yield ApiAnswers(client)


def _print_aggregates(outcome: "EvaluationRun") -> None:
    figures = outcome.aggregates
    table = Table("metric", "value", title=_title(figures))
    for name, value in _rows(figures, outcome.currency):
        table.add_row(name, value)
    Console().print(table)
    cached = sum(result.cached for result in outcome.questions)
    if cached:
        console.print(
            f"{cached} answers came from the API's response cache: their latency is not the "
            "answer path's (flush it with POST /v1/admin/cache/flush)"
        )


def _title(figures: "Aggregates") -> str:
    unanswerable = figures.questions - figures.answerable
    return f"{figures.questions} questions ({unanswerable} unanswerable)"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _rows(figures: "Aggregates", currency: str) -> list[tuple[str, str]]:
    def millis(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.0f} ms"

    return [
        ("recall@1", _share(figures.recall_at_1)),
        ("recall@5", _share(figures.recall_at_5)),
        ("MRR@10", _share(figures.mrr_at_10)),
        ("nDCG@10", _share(figures.ndcg_at_10)),
        ("context recall", _share(figures.context_recall)),
        ("fact recall", _share(figures.fact_recall)),
        ("abstention accuracy", _share(figures.abstention_accuracy)),
        ("cited gold rate", _share(figures.cited_gold_rate)),
        ("citation precision", _share(figures.citation_precision)),
        *(
            [
                ("faithfulness (judged)", _share(figures.faithfulness)),
                ("answer relevancy (judged)", _share(figures.answer_relevancy)),
                ("judge agreement", _share(figures.judge_agreement)),
            ]
            if figures.judge_agreement is not None or figures.faithfulness is not None
            else []
        ),
        ("latency p50", millis(figures.latency_p50_seconds)),
        ("latency p95", millis(figures.latency_p95_seconds)),
        ("prompt tokens", str(figures.prompt_tokens)),
        ("completion tokens", str(figures.completion_tokens)),
        ("cost per 1,000 queries", f"{figures.cost_per_1000_queries:.4f} {currency}"),
    ]


VERDICT_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def _print_gates(gated: "GatedRun", where: Console) -> None:
    table = Table("metric", "value", "floor", "previous", "verdict", "reason", title="gates")
    for gate in gated.gates:
        table.add_row(*_gate_row(gate))
    where.print(table)
    failed = [gate.metric for gate in gated.gates if gate.verdict == "fail"]
    recorded = f"recorded as run {gated.run_id}" if gated.run_id else "not recorded"
    verdict = f"blocking gates failed: {', '.join(failed)}" if failed else "gates passed"
    where.print(f"{verdict}; {recorded}", markup=False, highlight=False)


def _gate_row(gate: "GateOutcome") -> tuple[str, ...]:
    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    verdict = f"[{VERDICT_STYLES[gate.verdict]}]{gate.verdict}[/]"
    return (
        gate.metric,
        figure(gate.value),
        figure(gate.floor),
        figure(gate.previous),
        verdict,
        gate.reason,
    )


@eval_app.command("report")
def report(
    set_name: Annotated[
        str | None,
        typer.Option(
            "--set", help="A set's name as recorded (its file's stem); default: every set."
        ),
    ] = None,
    last: Annotated[int, typer.Option(min=1, help="The last N runs of each set.")] = 30,
    out: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Folder (default: RAG_HOME/reports/evaluation)."),
    ] = None,
) -> None:
    """Write each set's trend from the results store: `<set>.png` (the quality metrics over
    the last runs, floors dashed), `<set>.html` (one row per run, the chart inline) and
    `<set>-badge.json` (a shields.io endpoint badge: passing or failing, headline score).
    Prints the files written; exits with status 1 when no run is recorded."""
    from rag_core.evaluation.report import NoRecordedRuns, default_folder, write_reports
    from rag_core.settings import get_settings

    settings = get_settings()
    try:
        written = write_reports(settings, folder=out or default_folder(settings),
                                set_name=set_name, last=last)  # fmt: skip
    except NoRecordedRuns as nothing:
        console.print(f"{nothing}: run `ragctl eval run` first", style="red", markup=False,
                      highlight=False)  # fmt: skip
        raise typer.Exit(1) from nothing
    for files in written:
        print(files.png, files.html, files.badge, sep="\n")
