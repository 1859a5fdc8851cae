"""Trends of the recorded evaluation runs (`results`): per set, the last runs as a chart (PNG),
a self-contained HTML page (one row per run, one column per metric, the chart embedded) and a
shields.io endpoint badge (https://shields.io/badges/endpoint-badge) saying whether the last
run passed and its headline score.

The chart draws the deterministic quality metrics (`gates.BLOCKING_METRICS`, all in 0..1), so
one axis fits them; latency, tokens and cost have other units and are in the page's table.
The floors drawn are those the latest run was judged against, as recorded with its gates.
"""

import base64
import html
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from rag_core.evaluation.gates import BLOCKING_METRICS
from rag_core.evaluation.metrics import Frozen
from rag_core.evaluation.results import (
    RecordedRun,
    latest_runs,
    reading_results,
    recorded_floors,
    recorded_sets,
    results_path,
)
from rag_core.settings import Settings

REPORTS_FOLDER = Path("reports") / "evaluation"
METRIC_LABELS = {
    "recall_at_1": "recall@1", "recall_at_5": "recall@5", "mrr_at_10": "MRR@10",
    "ndcg_at_10": "nDCG@10", "context_recall": "context recall", "fact_recall": "fact recall",
    "abstention_accuracy": "abstention accuracy", "cited_gold_rate": "cited gold rate",
    "citation_precision": "citation precision",
}  # fmt: skip
COUNTS = ("questions", "answerable", "prompt_tokens", "completion_tokens")
# The badge's score, the first a run measured: see `headline`.
HEADLINE_METRICS = ("fact_recall", "recall_at_5")
BADGE_COLORS = {True: "brightgreen", False: "red"}
# What a set's name may keep in a file name; anything else becomes "_".
_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")


class NoRecordedRuns(LookupError):
    """Nothing to report: no results store, or no run of the set asked for."""


class SetReport(Frozen):
    """A set's last runs, oldest first, and the floors its latest run was judged against."""

    set_name: str
    runs: list[RecordedRun]
    floors: dict[str, float]


class WrittenReport(Frozen):
    set_name: str
    png: Path
    html: Path
    badge: Path


def default_folder(settings: Settings) -> Path:
    return settings.home / REPORTS_FOLDER


def set_reports(settings: Settings, *, set_name: str | None, last: int) -> list[SetReport]:
    """The last `last` runs of one set, or of every recorded set; `NoRecordedRuns` if none."""
    if not results_path(settings).exists():
        raise NoRecordedRuns(f"no evaluation runs recorded under {settings.home}")
    with reading_results(settings) as connection:
        names = [set_name] if set_name is not None else recorded_sets(connection)
        reports = []
        for name in names:
            runs = latest_runs(connection, set_name=name, last=last)
            if runs:
                floors = recorded_floors(connection, run_id=runs[-1].run_id)
                reports.append(SetReport(set_name=name, runs=runs, floors=floors))
    if not reports:
        asked = f"of the set {set_name!r} " if set_name is not None else ""
        raise NoRecordedRuns(f"no evaluation runs {asked}recorded under {settings.home}")
    return reports


def write_reports(
    settings: Settings, *, folder: Path, set_name: str | None = None, last: int
) -> list[WrittenReport]:
    """Write `<set>.png`, `<set>.html` and `<set>-badge.json` in `folder` for each set."""
    reports = set_reports(settings, set_name=set_name, last=last)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_report(report, folder) for report in reports]


def write_report(report: SetReport, folder: Path) -> WrittenReport:
    stem = file_stem(report.set_name)
    written = WrittenReport(
        set_name=report.set_name,
        png=folder / f"{stem}.png",
        html=folder / f"{stem}.html",
        badge=folder / f"{stem}-badge.json",
    )
    png = trend_png(report)
    written.png.write_bytes(png)
    written.html.write_text(html_page(report, png), encoding="utf-8")
    written.badge.write_text(json.dumps(badge(report)) + "\n", encoding="utf-8")
    return written


def file_stem(set_name: str) -> str:
    """A set's name as a file name: names come from the results store, not from a path that
    was checked, so nothing in one may leave the folder."""
    return _UNSAFE_IN_FILE_NAMES.sub("_", set_name).lstrip(".") or "_"


def charted_metrics(runs: Sequence[RecordedRun]) -> list[str]:
    """The quality metrics any of the runs measured, in the gates' order."""
    return [name for name in BLOCKING_METRICS if any(name in run.metrics for run in runs)]


def headline(run: RecordedRun) -> tuple[str, float] | None:
    """The one score a badge shows. Fact recall when the run measured it: it scores the
    answers themselves, what a user reads, so it moves with retrieval, the context given and
    the answerer alike. A retrieval-only set has no facts to check; then recall@5, whether a
    gold document is among the passages an answer is written from (the query's default
    top_k is 5). None when the run measured neither."""
    for name in HEADLINE_METRICS:
        if name in run.metrics:
            return name, run.metrics[name]
    return None


def badge(report: SetReport) -> dict[str, str | int]:
    """The shields.io endpoint JSON of the set's latest run."""
    latest = report.runs[-1]
    message = "passing" if latest.passed else "failing"
    score = headline(latest)
    if score is not None:
        name, value = score
        message += f" · {METRIC_LABELS[name]} {value:.2f}"
    return {
        "schemaVersion": 1,
        "label": f"eval {report.set_name}",
        "message": message,
        "color": BADGE_COLORS[latest.passed],
    }


def trend_png(report: SetReport) -> bytes:
    """One line per quality metric over the runs' times, its floor dashed in its colour, and
    the failed runs marked by dotted vertical lines. Drawn on a bare `Figure` by Agg: no
    display, no pyplot state."""
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.subplots()
    for name in charted_metrics(report.runs):
        points = [(run.recorded_at, run.metrics[name]) for run in report.runs
                  if name in run.metrics]  # fmt: skip
        times, values = zip(*points, strict=True)
        [line] = axes.plot(times, values, marker="o", label=METRIC_LABELS[name])
        if name in report.floors:
            axes.axhline(report.floors[name], color=line.get_color(), linestyle="--",
                         linewidth=1, label=f"{METRIC_LABELS[name]} floor")  # fmt: skip
    failed = [run.recorded_at for run in report.runs if not run.passed]
    for number, when in enumerate(failed):
        axes.axvline(date2num(when), color="black", linestyle=":", linewidth=1,
                     label="failed run" if number == 0 else None)  # fmt: skip
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score")
    axes.set_xlabel("recorded at (UTC)")
    axes.set_title(f"{report.set_name}: last {len(report.runs)} runs")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def html_page(report: SetReport, png: bytes) -> str:
    """One page, nothing fetched: the chart inline, then one row per run, newest first."""
    quality = charted_metrics(report.runs)
    others = sorted({name for run in report.runs for name in run.metrics} - set(quality))
    columns = quality + others
    title = html.escape(f"Evaluation of {report.set_name}")
    header = "".join(f"<th>{html.escape(_label(name))}</th>" for name in columns)
    rows = "\n".join(_html_row(run, columns) for run in reversed(report.runs))
    chart = base64.b64encode(png).decode("ascii")
    floors = ", ".join(
        f"{_label(name)} {value:.3f}" for name, value in sorted(report.floors.items())
    )
    summary = html.escape(
        f"The last {len(report.runs)} recorded runs; floors of the latest run: {floors or 'none'}."
    )
    alt = html.escape(f"Trend of {report.set_name}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
td.id, td.when {{ text-align: left; font-family: monospace; }}
.passed {{ color: #1a7f37; }} .failed {{ color: #cf222e; font-weight: bold; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<img src="data:image/png;base64,{chart}" alt="{alt}">
<table>
<thead><tr><th>run</th><th>recorded at (UTC)</th><th>gates</th>{header}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def _html_row(run: RecordedRun, columns: Sequence[str]) -> str:
    verdict = '<td class="passed">passed</td>' if run.passed else '<td class="failed">failed</td>'
    cells = "".join(f"<td>{_figure(run.metrics.get(name), name)}</td>" for name in columns)
    return (
        f'<tr><td class="id">{html.escape(run.run_id)}</td>'
        f'<td class="when">{html.escape(_when(run.recorded_at))}</td>{verdict}{cells}</tr>'
    )


def _figure(value: float | None, metric: str) -> str:
    """A count whole, a cost as `ragctl eval run` prints it, anything else (scores, seconds)
    to three decimals."""
    if value is None:
        return "-"
    if metric in COUNTS:
        return f"{value:,.0f}"
    return f"{value:.4f}" if metric == "cost_per_1000_queries" else f"{value:.3f}"


def _when(recorded_at: datetime) -> str:
    return recorded_at.isoformat(sep=" ", timespec="seconds")
