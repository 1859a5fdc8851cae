"""`ragctl eval`: ask a labeled question set of the live index and score the answers, the
citations and the retrieval (`rag_core.evaluation`).

The index, the model and the runner are imported inside the commands, so `--help` starts at
once; with `--api` neither the index nor the model is loaded.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rag_core.evaluation.metrics import Aggregates
    from rag_core.evaluation.runner import Answers, EvaluationRun

eval_app = typer.Typer(
    help="Evaluate answers and retrieval against labeled question sets (eval_sets/*.jsonl).",
    no_args_is_help=True,
)
console = Console(stderr=True)
# An answer by a slow local model, and its search.
API_TIMEOUT_SECONDS = 120.0


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
    limit: Annotated[int | None, typer.Option(min=1, help="Ask the first N questions.")] = None,
    json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: aggregates and every row.")
    ] = False,
) -> None:
    """Ask every question of a set, bypassing the response cache, and score the answers.

    Reports retrieval (recall@1, recall@5, MRR@10, nDCG@10 by document, context recall),
    answers (fact recall, abstention accuracy, cited gold, citation precision), latency,
    tokens and cost."""
    from rich.progress import track

    from rag_core.evaluation.labeled_sets import LabeledSetError, load_set
    from rag_core.evaluation.runner import evaluate

    try:
        questions = load_set(set_path)[:limit]
    except LabeledSetError as invalid:
        console.print(str(invalid), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from invalid
    with _answers(api) as answers:
        outcome = evaluate(
            questions,
            answers,
            progress=lambda planned: track(planned, description="Asking", console=console),
        )
    if json:
        print(outcome.model_dump_json())
    else:
        _print_aggregates(outcome)


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


def _rows(figures: "Aggregates", currency: str) -> list[tuple[str, str]]:
    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def millis(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.0f} ms"

    return [
        ("recall@1", share(figures.recall_at_1)),
        ("recall@5", share(figures.recall_at_5)),
        ("MRR@10", share(figures.mrr_at_10)),
        ("nDCG@10", share(figures.ndcg_at_10)),
        ("context recall", share(figures.context_recall)),
        ("fact recall", share(figures.fact_recall)),
        ("abstention accuracy", share(figures.abstention_accuracy)),
        ("cited gold rate", share(figures.cited_gold_rate)),
        ("citation precision", share(figures.citation_precision)),
        ("latency p50", millis(figures.latency_p50_seconds)),
        ("latency p95", millis(figures.latency_p95_seconds)),
        ("prompt tokens", str(figures.prompt_tokens)),
        ("completion tokens", str(figures.completion_tokens)),
        ("cost per 1,000 queries", f"{figures.cost_per_1000_queries:.4f} {currency}"),
    ]
