"""Gates on an evaluation run, set in one file (`eval_sets/gates.yaml`): an absolute floor per
metric (per set, over defaults, and per answerer over the set's) and a regression tolerance
against the last passing run of the same questions by the same answerer on the same corpus.

Deterministic metrics (`BLOCKING_METRICS`, computed from the labels alone) block: a failed gate
fails the run. Judged metrics (`JUDGED_METRICS`, scored by a model, so noisy) only warn, until
the run's judge is calibrated well enough (`judge_trust`: how often it ranks a true answer
above a copy with one fact made wrong); then they block too. Metrics a run does not measure
(a retrieval-only set has no fact recall; judged metrics are absent unless a judge ran) are
skipped. Latency, tokens and cost are never gated: they measure the machine and the model's
price list as much as the platform.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from rag_core.evaluation.metrics import Aggregates, Frozen

BLOCKING_METRICS = (
    "recall_at_1", "recall_at_5", "mrr_at_10", "ndcg_at_10", "context_recall", "fact_recall",
    "abstention_accuracy", "cited_gold_rate", "citation_precision",
)  # fmt: skip
# Scored by a judge model: they block only when the run's judge is trusted (`judge_trust`).
JUDGED_METRICS = ("faithfulness", "answer_relevancy")
# Against rounding in the last digit: a metric equal to its floor or baseline passes.
_SLACK = 1e-9

Verdict = Literal["pass", "warn", "fail"]


class SetGates(Frozen):
    floors: dict[str, float] = Field(default_factory=dict)
    # Floors by the answerer that ran (a run's `generator`, e.g. the model's name), over
    # `floors`: the bar a given answerer is held to, below which it regressed.
    answerers: dict[str, dict[str, float]] = Field(default_factory=dict)
    tolerance: float | None = Field(default=None, ge=0)
    nightly: bool = False  # evaluated by the nightly `evaluation` asset


class GatesConfig(Frozen):
    tolerance: float = Field(default=0.02, ge=0)
    # The judge agreement (true answer judged above its corrupted copy) at which judged
    # metrics block instead of warning.
    judge_trust: float = Field(default=0.9, ge=0, le=1)
    defaults: SetGates = SetGates()
    sets: dict[str, SetGates] = Field(default_factory=dict)

    def floors(self, set_name: str, generator: str | None = None) -> dict[str, float]:
        """The floors of a set's runs by `generator` (the answerer that ran)."""
        gates = self.sets.get(set_name, SetGates())
        return self.defaults.floors | gates.floors | gates.answerers.get(generator or "", {})

    def tolerance_of(self, set_name: str) -> float:
        tolerance = self.sets.get(set_name, SetGates()).tolerance
        return self.tolerance if tolerance is None else tolerance

    def nightly_sets(self) -> list[str]:
        return [name for name, gates in self.sets.items() if gates.nightly]

    def trusts(self, aggregates: Aggregates) -> bool:
        """Whether the run's judge ranked true answers above corrupted ones often enough."""
        agreement = aggregates.judge_agreement
        return agreement is not None and agreement >= self.judge_trust


def load_gates(path: Path) -> GatesConfig:
    """The gates in `path`; none (no floors, the default tolerance) when there is no file."""
    if not path.exists():
        return GatesConfig()
    return GatesConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


class Baseline(Frozen):
    """The last passing run of the same questions: on the same corpus, which a run must not
    fall behind, or, when the corpus changed since, one it is only shown beside."""

    run_id: str
    metrics: dict[str, float]
    same_corpus: bool


class GateOutcome(Frozen):
    metric: str
    value: float
    floor: float | None
    previous: float | None
    verdict: Verdict
    reason: str


def gated_metrics(aggregates: Aggregates) -> dict[str, float]:
    """The gated metrics a run measured, by name: deterministic ones and, when it was judged,
    the judged ones."""
    values = aggregates.model_dump()
    names = (*BLOCKING_METRICS, *JUDGED_METRICS)
    return {name: values[name] for name in names if values[name] is not None}


def judge(
    metrics: Mapping[str, float],
    *,
    floors: Mapping[str, float],
    tolerance: float,
    baseline: Baseline | None,
    trusted_judge: bool = False,
) -> list[GateOutcome]:
    """One outcome per measured metric, in name order; a judged metric's failure fails the
    run only with a `trusted_judge`, else it warns."""
    blocking = {*BLOCKING_METRICS, *(JUDGED_METRICS if trusted_judge else ())}
    return [
        _judge_one(name, value, floors.get(name), tolerance, baseline, blocks=name in blocking)
        for name, value in sorted(metrics.items())
    ]


def _judge_one(
    metric: str,
    value: float,
    floor: float | None,
    tolerance: float,
    baseline: Baseline | None,
    *,
    blocks: bool,
) -> GateOutcome:
    failing: Verdict = "fail" if blocks else "warn"
    previous = None if baseline is None else baseline.metrics.get(metric)
    problems = []
    if floor is not None and value < floor - _SLACK:
        problems.append(f"below the floor {floor:.3f}")
    if (
        baseline is not None
        and baseline.same_corpus
        and previous is not None
        and value < previous - tolerance - _SLACK
    ):
        problems.append(
            f"fell from {previous:.3f} (run {baseline.run_id}) by more than {tolerance:.3f}"
        )
    if problems:
        return GateOutcome(metric=metric, value=value, floor=floor, previous=previous,
                           verdict=failing, reason="; ".join(problems))  # fmt: skip
    return GateOutcome(metric=metric, value=value, floor=floor, previous=previous,
                       verdict="pass", reason=_passing_reason(baseline, previous))  # fmt: skip


def _passing_reason(baseline: Baseline | None, previous: float | None) -> str:
    if baseline is None:
        return "no earlier passing run of these questions"
    if not baseline.same_corpus:
        return f"corpus changed since the last passing run ({baseline.run_id}): not compared"
    if previous is None:
        return f"not measured by the last passing run ({baseline.run_id})"
    return f"within tolerance of the last passing run ({baseline.run_id})"


def passed(outcomes: list[GateOutcome]) -> bool:
    """Whether no blocking gate failed (warnings do not fail a run)."""
    return all(outcome.verdict != "fail" for outcome in outcomes)
