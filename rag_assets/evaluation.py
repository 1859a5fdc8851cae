"""The nightly evaluation: every set `eval_sets/gates.yaml` marks `nightly` asked of the live
index in this process, its gates judged and the run recorded in the results store
(`rag_core.evaluation.results`).

Sets are chosen in gates.yaml, not taken from every labeled file: a set is labeled for one
corpus (the PostgreSQL and Python sets for benchmark indexes), and only the deployment knows
which sets its live index should answer. One partition per day, materialized at 02:00 UTC; a
backfilled day evaluates the index as it is now. Each set gets a check, blocking: it fails
(ERROR) when a deterministic gate fails and warns when only a judged metric does.

Dagster's history cannot be erased, so its metadata holds figures, fingerprints and run ids
only, never an answer or a document's name (both are in the results store).
"""

from pathlib import Path
from typing import Any

import dagster as dg

from rag_assets.resources import RagResource
from rag_core import services
from rag_core.evaluation.gates import load_gates
from rag_core.evaluation.judging import Judge
from rag_core.evaluation.labeled_sets import load_set
from rag_core.evaluation.results import GatedRun, judge_and_record
from rag_core.evaluation.runner import (
    EvaluationRun,
    InProcessAnswers,
    evaluate,
    judged_rows,
    with_judgement,
)

GATES_FILE = Path(__file__).resolve().parents[1] / "eval_sets" / "gates.yaml"
ASSET_NAME = "evaluation"
JOB_NAME = "nightly_evaluation"
nightly = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")


class EvaluationConfig(dg.Config):
    judge: bool = False
    """Also score faithfulness and answer relevancy with the configured model as judge (a
    minute a question with the packaged model): off on schedule, on from the launchpad."""


def check_name(set_name: str) -> str:
    return f"{set_name}_gates"


def evaluation_defs(gates_file: Path = GATES_FILE) -> dg.Definitions:
    """The asset over the nightly sets of `gates_file` (labeled sets beside it, by name),
    its job and its schedule."""
    gates = load_gates(gates_file)
    sets = gates.nightly_sets()

    @dg.asset(
        name=ASSET_NAME,
        partitions_def=nightly,
        group_name="evaluation",
        kinds={"python", "duckdb"},
        check_specs=[
            dg.AssetCheckSpec(
                check_name(name),
                asset=ASSET_NAME,
                blocking=True,
                description=f"The gates of {name} in {gates_file.name}.",
            )
            for name in sets
        ],
    )
    def evaluation(
        context: dg.AssetExecutionContext, config: EvaluationConfig, rag: RagResource
    ) -> dg.MaterializeResult:
        """The labeled sets asked of the live index, bypassing the response cache, scored,
        gated and recorded; one number per metric and set, to follow over the nights."""
        settings = rag.settings()
        answers = InProcessAnswers(services.query_service(settings))
        metadata: dict[str, Any] = {}
        checks = []
        for name in sets:
            questions = load_set(gates_file.parent / f"{name}.jsonl")
            run = evaluate(questions, answers)
            if config.judge:
                run = with_judgement(run, Judge(settings).score(judged_rows(run, questions)))
            gated = judge_and_record(settings, run, set_name=name, questions=questions,
                                     gates=gates)  # fmt: skip
            context.log.info(f"{name}: run {gated.run_id}, gates passed: {gated.passed}")
            metadata |= _set_metadata(name, run, gated)
            checks.append(_check_result(gated))
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    job = dg.define_asset_job(JOB_NAME, selection=[evaluation], partitions_def=nightly)
    schedule = dg.build_schedule_from_partitioned_job(
        job, hour_of_day=2, default_status=dg.DefaultScheduleStatus.RUNNING
    )
    return dg.Definitions(assets=[evaluation], jobs=[job], schedules=[schedule])


def _set_metadata(name: str, run: EvaluationRun, gated: GatedRun) -> dict[str, Any]:
    """Every aggregate of a set's run as a float (plotted over time), with its context."""
    figures = {
        f"{name}/{metric}": dg.MetadataValue.float(float(value))
        for metric, value in run.aggregates.model_dump().items()
        if value is not None
    }
    return figures | {
        f"{name}/run_id": gated.run_id or "",
        f"{name}/passed": gated.passed,
        "index_version": gated.context.index_version,
        "corpus_fingerprint": gated.context.corpus_fingerprint,
        "code_version": gated.context.code_version,
        "generator": gated.context.generator,
    }


def _check_result(gated: GatedRun) -> dg.AssetCheckResult:
    failed = [gate.metric for gate in gated.gates if gate.verdict == "fail"]
    warned = [gate.metric for gate in gated.gates if gate.verdict == "warn"]
    return dg.AssetCheckResult(
        check_name=check_name(gated.set_name),
        passed=not failed and not warned,
        severity=dg.AssetCheckSeverity.ERROR if failed else dg.AssetCheckSeverity.WARN,
        metadata={
            "failed": ", ".join(failed),
            "warned": ", ".join(warned),
            "gates": dg.MetadataValue.json([gate.model_dump() for gate in gated.gates]),
        },
    )


defs = evaluation_defs()
