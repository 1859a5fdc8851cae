"""The Prometheus side of the objectives: recording rules, alert rules, their promtool unit
tests, and the Prometheus and Alertmanager configurations, all generated from
`dashboards/slos.yaml` so that a threshold lives in one place.

Scrape jobs: the API is job `rag-api` (127.0.0.1:8000, /metrics) and the streaming worker is
job `rag-worker` (127.0.0.1:9464, the port `ragctl dev` gives `ragctl stream --metrics-port`).
Every rule selects its metrics by these job labels, so a metric the API and the worker both
register (they share `rag_core.telemetry`) is read from the process that records it; the
dashboards (`rag_ops.dashboards`) use the same names.

Each alert carries its own promtool test cases, one at least where it fires and one where it
stays quiet, computed from the same thresholds; annotations use only `{{ $labels.* }}`, so the
test files can state exactly what an operator will read. Every alert links its runbook, a
`### <AlertName>` section of docs/operations.md.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from prometheus_client.utils import floatToGoString

from rag_core.evaluation.gates import load_gates
from rag_ops.slos import REPOSITORY, BurnRate, Latency, Objectives

API_JOB = "rag-api"
WORKER_JOB = "rag-worker"
API_TARGET = "127.0.0.1:8000"
# rag_serving.cli.STREAM_PROBES_PORT, the worker's port under `ragctl dev` (a test keeps
# them equal; importing the CLI here would load the whole serving layer).
WORKER_METRICS_PORT = 9464
WORKER_TARGET = f"127.0.0.1:{WORKER_METRICS_PORT}"
ALERTMANAGER_TARGET = "127.0.0.1:9093"
# The target labels of the test series.
API = {"job": API_JOB, "instance": API_TARGET}
WORKER = {"job": WORKER_JOB, "instance": WORKER_TARGET}
# Loopback placeholders for the receivers: replace them with the pager's and the ticket
# system's webhooks (or other receiver kinds) in a deployment.
PAGER_WEBHOOK = "http://127.0.0.1:9095/page"
TICKET_WEBHOOK = "http://127.0.0.1:9096/ticket"
RUNBOOKS = "docs/operations.md"
# The nightly sets are the ones the evaluation alerts watch: a set evaluated once by hand
# would otherwise be "stale" for ever.
GATES_FILE = REPOSITORY / "eval_sets" / "gates.yaml"

DASHBOARDS = Path("dashboards")
SLO_AREA = "slo"  # the burn-rate alerts' file
RECORDING_FILE = DASHBOARDS / "rules" / "slo_recording.yml"
HEADER = (
    "# Generated from dashboards/slos.yaml by `make dashboards` (rag_ops/alerting.py): "
    "do not edit.\n"
)

# Windows the recording rules cover besides the burn-rate pairs': 5m for the dashboards.
DASHBOARD_WINDOW = "5m"
# The window of the fallback ratio and of the cost alert.
FALLBACK_WINDOW = "15m"
COST_ALERT_WINDOW = "1h"
# The compliance-window rules read weeks of samples: evaluated every 5 minutes, not every 15 s.
BUDGET_INTERVAL = "5m"
# The burn-rate tests cover hours of samples: rules evaluated every 5 minutes (every `for`
# of slos.yaml is still honoured, to the next evaluation) keep them to seconds.
BURN_TEST_INTERVAL = "5m"
# How long to wait before an alert on a gauge that may flap for one scrape.
TARGET_DOWN_FOR = "3m"

Severity = Literal["page", "ticket"]
Labels = Mapping[str, str]
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LABEL_TEMPLATE = re.compile(r"\{\{ \$labels\.(\w+) \}\}")
# A metric or recorded series name in an expression.
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def seconds(duration: str) -> int:
    """A Prometheus duration of one unit (as slos.py admits them: 5m, 1h, 30d) in seconds."""
    return int(duration[:-1]) * _SECONDS[duration[-1]]


def minutes(duration: str) -> int:
    return seconds(duration) // 60


def le(bound: float) -> str:
    """A histogram bucket's `le` label exactly as prometheus_client writes it ("0.5", "10.0")."""
    return floatToGoString(bound)


def number(value: float) -> str:
    """A threshold as a rule reads it: no float noise (0.07200000000000001 is 0.072)."""
    return f"{value:.6g}"


def percent(ratio: float) -> str:
    return f"{ratio * 100:.6g}%"


def selector(metric: str, **labels: str) -> str:
    """`metric{a="b",...}` with label matchers; a value starting with `~` is a regex match."""
    matchers = [
        f'{name}=~"{value[1:]}"' if value.startswith("~") else f'{name}="{value}"'
        for name, value in labels.items()
    ]
    return f"{metric}{{{','.join(matchers)}}}"


def regex_of(values: Sequence[str]) -> str:
    """A PromQL regex matching exactly these values (escaped; RE2 anchors it)."""
    return "|".join(re.escape(value).replace("\\", "\\\\") for value in values)


# ---------------------------------------------------------------------------------------------
# promtool test data


@dataclass(frozen=True)
class Check:
    """A promql_expr_test: `expr` evaluates to `value` for the series labelled `labels`."""

    expr: str
    labels: Labels
    value: float


@dataclass(frozen=True)
class Case:
    """One promtool test group of an alert: input series (selector → promtool's expanding
    notation, `interval` apart), when to evaluate, and the label sets that must be firing
    then: none means the alert must stay quiet. `checks` are expressions evaluated at the
    same time, stating why the case is what it claims."""

    series: Mapping[str, str]
    at: str
    firing: tuple[Labels, ...] = ()
    checks: tuple[Check, ...] = ()
    interval: str = "1m"


@dataclass(frozen=True)
class AlertRule:
    expr: str
    severity: Severity
    for_: str | None = None
    labels: Labels = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """An alert name, what it tells (templates over labels only), the rules that raise it
    (one per burn-rate pair for the SLO alerts) and its test cases."""

    name: str
    summary: str
    description: str
    rules: tuple[AlertRule, ...]
    cases: tuple[Case, ...]

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOKS}#{self.name.lower()}"

    def annotations(self, labels: Labels) -> dict[str, str]:
        """The annotations with the templates of these labels filled in: a rule's own labels
        (Prometheus's `$labels` are the expression's only), or a firing alert's labels to
        get the text Prometheus renders."""
        texts = {"summary": self.summary, "description": self.description}
        rendered = {key: fill(text, labels) for key, text in texts.items()}
        return rendered | {"runbook_url": self.runbook_url}

    def rule_entries(self) -> list[dict[str, Any]]:
        entries = []
        for rule in self.rules:
            entry: dict[str, Any] = {"alert": self.name, "expr": rule.expr}
            if rule.for_:
                entry["for"] = rule.for_
            entry["labels"] = {"severity": rule.severity, **rule.labels}
            entry["annotations"] = self.annotations(entry["labels"])
            entries.append(entry)
        return entries


def fill(template: str, labels: Labels) -> str:
    """`{{ $labels.name }}` replaced by the value of each of `labels`, the one template
    construct the alerts use (so a test can state the text Prometheus renders)."""
    if "{{" in _LABEL_TEMPLATE.sub("", template):
        raise ValueError(f"only {{{{ $labels.name }}}} may template an annotation: {template}")
    return _LABEL_TEMPLATE.sub(lambda match: labels.get(match[1], match[0]), template)


def counter(*segments: tuple[float, int]) -> str:
    """A counter's samples a minute apart: from 0, rising by `per_minute` for `count` minutes,
    segment after segment (promtool's expanding notation)."""
    parts, value = ["0"], 0.0
    for per_minute, count in segments:
        parts.append(f"{value + per_minute:.12g}+{per_minute:.12g}x{count - 1}")
        value += per_minute * count
    return " ".join(parts)


def gauge(value: float, count: int) -> str:
    """A gauge holding `value` for `count` intervals."""
    return f"{value:.12g}x{count}"


# ---------------------------------------------------------------------------------------------
# Ratio SLOs and their burn-rate alerts


@dataclass(frozen=True)
class RatioSlo:
    """An SLO measured as the share of bad events: the expression of that share over a
    window, and test series for a given history of (bad, all) events per minute."""

    key: str
    name: str
    title: str
    objective: float
    error_ratio: Callable[[str], str]
    test_series: Callable[[Sequence[tuple[float, float, int]]], dict[str, str]]

    @property
    def budget(self) -> float:
        return 1 - self.objective

    def recorded(self, window: str) -> str:
        return f"slo:{self.key}:error_ratio_rate{window}"


def ratio_slos(objectives: Objectives) -> list[RatioSlo]:
    """Every ratio SLO, recorded alike; the alerting ones first (freshness alerts on its p95)."""
    return [*alerting_slos(objectives), freshness_slo(objectives)]


def alerting_slos(objectives: Objectives) -> list[RatioSlo]:
    """The SLOs with burn-rate alerts: availability and each latency objective."""
    return [availability_slo(objectives), *map(latency_slo, objectives.latency)]


def availability_slo(objectives: Objectives) -> RatioSlo:
    requests = "rag_http_requests_total"
    routes = regex_of(objectives.availability.routes)

    def error_ratio(window: str) -> str:
        errors = selector(requests, job=API_JOB, route=f"~{routes}", status="~5..")
        every = selector(requests, job=API_JOB, route=f"~{routes}")
        return f"sum(rate({errors}[{window}]))\n/\nsum(rate({every}[{window}]))"

    def test_series(history: Sequence[tuple[float, float, int]]) -> dict[str, str]:
        route = objectives.availability.routes[0]
        labels = {**API, "route": route, "method": "POST"}
        return {
            selector(requests, **labels, status="500"): counter(
                *((bad, count) for bad, _, count in history)
            ),
            selector(requests, **labels, status="200"): counter(
                *((every - bad, count) for bad, every, count in history)
            ),
        }

    return RatioSlo(
        "availability",
        "Availability",
        "query availability",
        objectives.availability.objective,
        error_ratio,
        test_series,
    )


def latency_slo(latency: Latency) -> RatioSlo:
    histogram = "rag_http_request_duration_seconds"
    bound = le(latency.threshold_seconds)

    def error_ratio(window: str) -> str:
        fast = selector(f"{histogram}_bucket", job=API_JOB, route=latency.route, le=bound)
        every = selector(f"{histogram}_count", job=API_JOB, route=latency.route)
        return f"1 - (\n  sum(rate({fast}[{window}]))\n  /\n  sum(rate({every}[{window}]))\n)"

    def test_series(history: Sequence[tuple[float, float, int]]) -> dict[str, str]:
        labels = {**API, "route": latency.route, "method": "POST"}
        return {
            selector(f"{histogram}_bucket", **labels, le=bound): counter(
                *((every - bad, count) for bad, every, count in history)
            ),
            selector(f"{histogram}_count", **labels): counter(
                *((every, count) for _, every, count in history)
            ),
        }

    return RatioSlo(
        f"latency_{latency.name}",
        f"{latency.name.capitalize()}Latency",
        f"{latency.name} latency ({latency.route} within {latency.threshold_seconds:g} s)",
        latency.objective,
        error_ratio,
        test_series,
    )


def freshness_slo(objectives: Objectives) -> RatioSlo:
    """Freshness as a ratio (events queryable later than the threshold), recorded for the
    dashboards; its alert is on the p95 (FreshnessOverSLA)."""
    histogram = "rag_freshness_lag_seconds"
    bound = le(objectives.freshness.threshold_seconds)

    def error_ratio(window: str) -> str:
        fast = selector(f"{histogram}_bucket", job=WORKER_JOB, le=bound)
        every = selector(f"{histogram}_count", job=WORKER_JOB)
        return f"1 - (\n  sum(rate({fast}[{window}]))\n  /\n  sum(rate({every}[{window}]))\n)"

    def test_series(history: Sequence[tuple[float, float, int]]) -> dict[str, str]:
        labels = {**WORKER, "op": "upsert"}
        return {
            selector(f"{histogram}_bucket", **labels, le=bound): counter(
                *((every - bad, count) for bad, every, count in history)
            ),
            selector(f"{histogram}_count", **labels): counter(
                *((every, count) for _, every, count in history)
            ),
        }

    return RatioSlo(
        "freshness",
        "Freshness",
        "freshness",
        objectives.freshness.objective,
        error_ratio,
        test_series,
    )


def burn_windows(objectives: Objectives) -> list[str]:
    """Every window a burn-rate pair reads, and the dashboards' 5m, shortest first."""
    windows = {DASHBOARD_WINDOW}
    for pair in objectives.burn_rates:
        windows |= {pair.long_window, pair.short_window}
    return sorted(windows, key=seconds)


def burn_threshold(slo: RatioSlo, pair: BurnRate) -> str:
    return f"({number(pair.burn_rate)} * {number(slo.budget)})"


def burn_rate_alert(slo: RatioSlo, objectives: Objectives) -> Alert:
    """The SRE workbook's multi-window, multi-burn-rate alert: one rule per pair of
    slos.yaml, firing while the budget burns `burn_rate` times too fast over both windows."""
    pairs = objectives.burn_rates
    rules = tuple(
        AlertRule(
            expr=f"{slo.recorded(pair.long_window)} > {burn_threshold(slo, pair)}\n"
            f"and\n{slo.recorded(pair.short_window)} > {burn_threshold(slo, pair)}",
            severity=pair.severity,
            for_=pair.for_,
            labels={"slo": slo.key, "window": pair.long_window},
        )
        for pair in pairs
    )
    return Alert(
        f"{slo.name}ErrorBudgetBurn",
        summary=f"The {slo.title} SLO burns its error budget too fast "
        "({{ $labels.window }} window)",
        description=f"The {slo.title} error ratio is over the {{{{ $labels.window }}}} burn-rate "
        f"threshold of dashboards/slos.yaml on both the long and the short window: at this "
        f"pace the {percent(slo.budget)} error budget of {objectives.window} runs out early.",
        rules=rules,
        cases=burn_rate_cases(slo, pairs),
    )


def burn_rate_cases(slo: RatioSlo, pairs: Sequence[BurnRate]) -> tuple[Case, ...]:
    """Every pair fires on a sustained outage; none on a trickle of errors under the lowest
    threshold; none once the errors stopped, though the long windows still show them (the
    point of the short window)."""
    every = 100.0
    settle = max(minutes(pair.for_) for pair in pairs) + 10
    outage = Case(
        slo.test_series([(every, every, settle)]),
        f"{settle}m",
        firing=tuple(
            {"slo": slo.key, "window": pair.long_window, "severity": pair.severity}
            for pair in pairs
        ),
    )
    lowest = min(pair.burn_rate for pair in pairs) * slo.budget
    trickle = Case(slo.test_series([(every * lowest / 2, every, settle)]), f"{settle}m")
    slowest = max(pairs, key=lambda pair: seconds(pair.long_window))
    ended = 60 + max(minutes(pair.short_window) for pair in pairs) + 10
    recovered = Case(
        slo.test_series([(every, every, 60), (0, every, ended - 60)]),
        f"{ended}m",
        checks=(
            Check(
                f"{slo.recorded(slowest.long_window)} > bool {burn_threshold(slo, slowest)}",
                {"slo": slo.key},
                1,
            ),
        ),
    )
    return outage, trickle, recovered


# ---------------------------------------------------------------------------------------------
# Recording rules


def recording_groups(objectives: Objectives) -> list[dict[str, Any]]:
    slos = ratio_slos(objectives)
    windows = burn_windows(objectives)
    ratios = [
        {
            "record": slo.recorded(window),
            "expr": slo.error_ratio(window),
            "labels": {"slo": slo.key},
        }
        for slo in slos
        for window in windows
    ]
    budget = [
        rule
        for slo in slos
        for rule in (
            {
                "record": slo.recorded(objectives.window),
                "expr": slo.error_ratio(objectives.window),
                "labels": {"slo": slo.key},
            },
            {
                "record": f"slo:{slo.key}:error_budget_remaining",
                "expr": f"1 - {slo.recorded(objectives.window)} / {number(slo.budget)}",
                "labels": {"slo": slo.key},
            },
        )
    ]
    return [
        {"name": "slo-error-ratios", "rules": ratios},
        {"name": "slo-error-budgets", "interval": BUDGET_INTERVAL, "rules": budget},
        {"name": "rag-aggregates", "rules": aggregate_rules(objectives)},
    ]


def aggregate_rules(objectives: Objectives) -> list[dict[str, Any]]:
    """What the alerts and the dashboards read besides the SLO ratios."""
    cost = selector("rag_llm_cost_total", job=API_JOB, currency=objectives.cost.currency)
    queries = selector("rag_queries_total", job=API_JOB)
    durations = selector("rag_http_request_duration_seconds_bucket", job=API_JOB)
    lag = selector("rag_freshness_lag_seconds_bucket", job=WORKER_JOB)
    fallbacks = selector("rag_llm_fallbacks_total", job=API_JOB)
    answers = selector("rag_answers_total", job=API_JOB)
    w = DASHBOARD_WINDOW
    return [
        *(
            {
                "record": f"rag:cost_per_1000_queries:rate{window}",
                "expr": f"1000 * sum(rate({cost}[{window}]))\n/\nsum(rate({queries}[{window}]))",
            }
            for window in (w, COST_ALERT_WINDOW)
        ),
        {
            "record": f"model:rag_cost_per_1000_queries:rate{w}",
            "expr": f"1000 * sum by (model) (rate({cost}[{w}]))\n"
            f"/ on () group_left\nsum(rate({queries}[{w}]))",
        },
        {
            "record": f"route:rag_http_request_duration_seconds:p95_rate{w}",
            "expr": f"histogram_quantile(0.95, sum by (route, le) (rate({durations}[{w}])))",
        },
        {
            "record": f"rag:freshness_lag_seconds:p95_rate{w}",
            "expr": f"histogram_quantile(0.95, sum by (le) (rate({lag}[{w}])))",
        },
        {
            "record": f"rag:llm_fallback_ratio:rate{FALLBACK_WINDOW}",
            "expr": f"sum(rate({fallbacks}[{FALLBACK_WINDOW}]))\n/\n"
            f"sum(rate({answers}[{FALLBACK_WINDOW}]))",
        },
    ]


def recording_checks(objectives: Objectives) -> Case:
    """The recorded ratios of a steady quarter of bad events over ten minutes: 0.25 over every
    window, the budget remaining to match, and the cost per 1,000 queries."""
    slos = ratio_slos(objectives)
    series: dict[str, str] = {}
    checks = []
    for slo in slos:
        series |= slo.test_series([(25, 100, 10)])
        checks += [
            _close(slo.recorded(window), {"slo": slo.key}, 0.25)
            for window in [*burn_windows(objectives), objectives.window]
        ]
        checks.append(
            _close(f"slo:{slo.key}:error_budget_remaining", {"slo": slo.key}, 1 - 0.25 / slo.budget)
        )
    cost = {"job": API_JOB, "instance": API_TARGET}
    currency = objectives.cost.currency
    series[selector("rag_llm_cost_total", **cost, model="m", currency=currency)] = counter((2, 10))
    series[selector("rag_queries_total", **cost, cached="false")] = counter((300, 10))
    series[selector("rag_queries_total", **cost, cached="true")] = counter((100, 10))
    checks.append(_close(f"rag:cost_per_1000_queries:rate{DASHBOARD_WINDOW}", {}, 5))
    checks.append(
        _close(f"model:rag_cost_per_1000_queries:rate{DASHBOARD_WINDOW}", {"model": "m"}, 5)
    )
    return Case(series, "10m", checks=tuple(checks))


def _close(expr: str, labels: Labels, value: float) -> Check:
    """`expr` is `value` to within float noise (promtool compares samples exactly)."""
    return Check(f"abs({expr} - ({value!r})) < bool 1e-9", labels, 1)


# ---------------------------------------------------------------------------------------------
# The other alerts, by area

DOCUMENT_TOPIC = "rag.document-changes"
ROW_TOPIC = "rag.table-row-changes"


def target_down() -> Alert:
    expr = f'up{{job=~"{regex_of([API_JOB, WORKER_JOB])}"}} == 0'
    return Alert(
        "TargetDown",
        summary="{{ $labels.job }} at {{ $labels.instance }} does not answer scrapes",
        description="Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}: "
        "the process is down or /metrics fails, and every alert on its metrics is blind.",
        rules=(AlertRule(expr, "page", TARGET_DOWN_FOR),),
        cases=(
            Case(
                {
                    selector("up", **API): gauge(1, 10),
                    selector("up", **WORKER): gauge(0, 10),
                },
                "10m",
                firing=({**WORKER, "severity": "page"},),
            ),
            Case(
                {
                    selector("up", **API): gauge(1, 10),
                    selector("up", **WORKER): gauge(1, 10),
                    selector("up", job="another", instance="127.0.0.1:9100"): gauge(0, 10),
                },
                "10m",
            ),
        ),
    )


def freshness_over_sla(objectives: Objectives) -> Alert:
    sla = objectives.freshness.sla_seconds
    bucket = "rag_freshness_lag_seconds_bucket"

    def history(within_sla_per_minute: float) -> dict[str, str]:
        labels = {**WORKER, "op": "upsert"}
        return {
            selector(bucket, **labels, le=le(sla)): counter((within_sla_per_minute, 20)),
            selector(bucket, **labels, le=le(2 * sla)): counter((10, 20)),
            selector(bucket, **labels, le="+Inf"): counter((10, 20)),
        }

    return Alert(
        "FreshnessOverSLA",
        summary=f"Changes take over {sla:g} s (p95) to become queryable",
        description=f"The p95 of rag_freshness_lag_seconds (change event to queryable) has been "
        f"over the {sla:g} s SLA of dashboards/slos.yaml for 10 minutes.",
        rules=(
            AlertRule(
                f"rag:freshness_lag_seconds:p95_rate{DASHBOARD_WINDOW} > {number(sla)}",
                "ticket",
                "10m",
            ),
        ),
        cases=(
            Case(history(0), "20m", firing=({"severity": "ticket"},)),
            Case(history(10), "20m"),
        ),
    )


def consumer_lag_growing(objectives: Objectives) -> Alert:
    limit = objectives.alerts.consumer_lag_events
    lag = selector("rag_stream_consumer_lag", job=WORKER_JOB)
    gauge_of = "rag_stream_consumer_lag"
    return Alert(
        "ConsumerLagGrowing",
        summary="The streaming worker falls behind on {{ $labels.topic }}",
        description=f"The worker's group has over {limit} uncommitted events on "
        "{{ $labels.topic }} and the lag has kept growing for 10 minutes: events arrive "
        "faster than the worker indexes them, or it is stuck.",
        rules=(
            AlertRule(
                f"sum by (topic) ({lag}) > {limit}\nand\nsum by (topic) (deriv({lag}[10m])) > 0",
                "ticket",
                "10m",
            ),
        ),
        cases=(
            Case(
                {
                    selector(gauge_of, **WORKER, topic=DOCUMENT_TOPIC, partition="0"): (
                        f"{limit + 10}+10x30"
                    ),
                    selector(gauge_of, **WORKER, topic=ROW_TOPIC, partition="0"): gauge(0, 30),
                },
                "30m",
                firing=({"topic": DOCUMENT_TOPIC, "severity": "ticket"},),
            ),
            Case(
                {  # over the limit but shrinking; growing but under the limit
                    selector(gauge_of, **WORKER, topic=DOCUMENT_TOPIC, partition="0"): (
                        f"{limit + 500}-10x30"
                    ),
                    selector(gauge_of, **WORKER, topic=ROW_TOPIC, partition="0"): (
                        f"0+{limit / 60:g}x30"
                    ),
                },
                "30m",
            ),
        ),
    )


def dead_letters_appearing(objectives: Objectives) -> Alert:
    window = objectives.alerts.dead_letters_window
    letters = selector("rag_dead_letters_total", job=WORKER_JOB)
    name = "rag_dead_letters_total"
    fired = ({"topic": DOCUMENT_TOPIC, "severity": "ticket"},)
    quiet_at = minutes(window) * 2 + 10
    return Alert(
        "DeadLettersAppearing",
        summary="Events from {{ $labels.topic }} were dead-lettered",
        description=f"The streaming worker parked events from {{{{ $labels.topic }}}} on the "
        f"dead-letter topic within the last {window}: they are malformed or failed every "
        "retry, and their change is not indexed.",
        rules=(
            AlertRule(
                # A topic's counter is born at its first letter, where increase() sees
                # nothing: a series new within the window counts too.
                f"sum by (topic) (increase({letters}[{window}])) > 0\n"
                f"or\nsum by (topic) (({letters} > 0) unless {letters} offset {window})",
                "ticket",
            ),
        ),
        cases=(
            Case(
                {selector(name, **WORKER, topic=DOCUMENT_TOPIC): "0x5 1x10"},
                "10m",
                firing=fired,
            ),
            Case({selector(name, **WORKER, topic=DOCUMENT_TOPIC): "_x5 1x10"}, "10m", firing=fired),
            Case(
                {
                    selector(name, **WORKER, topic=DOCUMENT_TOPIC): gauge(2, quiet_at),
                    selector(name, **WORKER, topic=ROW_TOPIC): f"_x5 0x{quiet_at - 5}",
                },
                f"{quiet_at}m",
            ),
        ),
    )


def index_not_updated(objectives: Objectives) -> Alert:
    stale = objectives.alerts.index_stale_minutes
    written = "rag_index_last_write_timestamp_seconds"
    applied = selector("rag_stream_events_total", job=WORKER_JOB, outcome="applied")
    lag = selector("rag_stream_consumer_lag", job=WORKER_JOB)
    until = 2 * stale
    events = "rag_stream_events_total"
    lag_of = "rag_stream_consumer_lag"

    def history(written_at: str, waiting: float, applied_per_minute: float) -> dict[str, str]:
        return {
            selector(written, **WORKER): written_at,
            selector(lag_of, **WORKER, topic=DOCUMENT_TOPIC, partition="0"): gauge(waiting, until),
            selector(events, **WORKER, topic=DOCUMENT_TOPIC, outcome="applied"): counter(
                (applied_per_minute, until)
            ),
        }

    stopped, writing = gauge(60, until), f"0+60x{until}"
    return Alert(
        "IndexNotUpdated",
        summary=f"Events arrive but the index has not been written for {stale} minutes",
        description=f"The streaming worker has not written to the index for over {stale} "
        "minutes although events wait for it (its consumer lag stayed above 0 all that time) "
        "or it counted events as applied: changes are not becoming queryable.",
        rules=(
            AlertRule(
                f"time() - max({selector(written, job=WORKER_JOB)}) > {stale * 60}\n"
                f"and on ()\n(\n"
                f"  sum(increase({applied}[{stale}m])) > 0\n"
                f"  or\n"
                f"  min_over_time(sum({lag})[{stale}m:1m]) > 0\n)",
                "page",
            ),
        ),
        cases=(
            Case(history(stopped, 5, 0), f"{until}m", firing=({"severity": "page"},)),
            Case(history(stopped, 0, 1), f"{until}m", firing=({"severity": "page"},)),
            Case(history(writing, 5, 1), f"{until}m"),
            Case(history(stopped, 0, 0), f"{until}m"),
        ),
    )


def index_check_failing() -> Alert:
    name = "rag_index_check_passed"
    return Alert(
        "IndexCheckFailing",
        summary="The index check {{ $labels.check }} fails",
        description="The streaming worker evaluated the index's {{ $labels.check }} check as "
        "failed, and it has stayed failed for 10 minutes.",
        rules=(
            AlertRule(f"min by (check) ({selector(name, job=WORKER_JOB)}) == 0", "ticket", "10m"),
        ),
        cases=(
            Case(
                {
                    selector(name, **WORKER, check="vector_dimension"): gauge(0, 20),
                    selector(name, **WORKER, check="no_empty_chunks"): gauge(1, 20),
                },
                "20m",
                firing=({"check": "vector_dimension", "severity": "ticket"},),
            ),
            Case(
                {  # failed once, passing again for longer than the alert waits
                    selector(name, **WORKER, check="vector_dimension"): "0x5 1x15",
                    selector(name, **WORKER, check="no_empty_chunks"): gauge(1, 20),
                },
                "20m",
            ),
        ),
    )


def llm_fallback(objectives: Objectives) -> Alert:
    ratio = objectives.alerts.llm_fallback_ratio

    def history(fallbacks_per_minute: float) -> dict[str, str]:
        return {
            selector("rag_answers_total", **API, generator="extractive"): counter(
                (fallbacks_per_minute, 30)
            ),
            selector("rag_answers_total", **API, generator="qwen2.5-0.5b-instruct"): counter(
                (100 - fallbacks_per_minute, 30)
            ),
            selector("rag_llm_fallbacks_total", **API, reason="unreachable"): counter(
                (fallbacks_per_minute, 30)
            ),
        }

    return Alert(
        "LLMFallbackToExtractive",
        summary="Answers fall back to the extractive answerer",
        description=f"Over {percent(ratio)} of the answers of the last {FALLBACK_WINDOW} came "
        "from the extractive answerer although a model is configured: the model is "
        "unreachable, times out or fails (rag_llm_fallbacks_total by reason says which).",
        rules=(
            AlertRule(
                f"rag:llm_fallback_ratio:rate{FALLBACK_WINDOW} > {number(ratio)}", "ticket", "5m"
            ),
        ),
        cases=(
            Case(history(50), "30m", firing=({"severity": "ticket"},)),
            Case(history(100 * ratio / 2), "30m"),
        ),
    )


def cost_over_budget(objectives: Objectives) -> Alert:
    budget, currency = objectives.cost.budget_per_1000_queries, objectives.cost.currency
    until = minutes(COST_ALERT_WINDOW) + 30

    def history(cost_per_1000: float) -> dict[str, str]:
        return {  # 100 queries a minute; a price in another currency is no part of the budget
            selector("rag_queries_total", **API, cached="false"): counter((100, until)),
            selector("rag_llm_cost_total", **API, model="m", currency=currency): counter(
                (cost_per_1000 / 10, until)
            ),
            selector("rag_llm_cost_total", **API, model="m", currency="XXX"): counter(
                (budget * 100, until)
            ),
        }

    return Alert(
        "CostOverBudget",
        summary=f"Answers cost over {budget:g} {currency} per 1,000 queries",
        description=f"Over the last {COST_ALERT_WINDOW}, generation cost more than the budget "
        f"of {budget:g} {currency} per 1,000 queries (dashboards/slos.yaml), for 15 minutes.",
        rules=(
            AlertRule(
                f"rag:cost_per_1000_queries:rate{COST_ALERT_WINDOW} > {number(budget)}",
                "ticket",
                "15m",
            ),
        ),
        cases=(
            Case(history(budget * 2), f"{until}m", firing=({"severity": "ticket"},)),
            Case(history(budget / 2), f"{until}m"),
        ),
    )


def erasure_failed() -> Alert:
    name = "rag_erasure_requests"
    return Alert(
        "ErasureFailed",
        summary="Erasure requests have failed",
        description="The erasure store holds failed requests: the data they name may still be "
        "indexed, cached or in the warehouse until each is resumed.",
        rules=(AlertRule(f"max({selector(name, job=API_JOB, state='failed')}) > 0", "ticket"),),
        cases=(
            Case(
                {
                    selector(name, **API, state="failed"): gauge(1, 10),
                    selector(name, **API, state="completed"): gauge(3, 10),
                },
                "10m",
                firing=({"severity": "ticket"},),
            ),
            Case(
                {
                    selector(name, **API, state="failed"): gauge(0, 10),
                    selector(name, **API, state="pending"): gauge(1, 10),
                    selector(name, **API, state="completed"): gauge(3, 10),
                },
                "10m",
            ),
        ),
    )


def erasure_overdue(objectives: Objectives) -> Alert:
    limit = objectives.erasure.max_age_hours * 3600
    name = "rag_erasure_oldest_open_age_seconds"
    return Alert(
        "ErasureOverdue",
        summary=f"An erasure request is open for over {objectives.erasure.max_age_hours:g} hours",
        description="The oldest erasure request not completed was made more than "
        f"{objectives.erasure.max_age_hours:g} hours ago, the completion time of "
        "dashboards/slos.yaml.",
        rules=(AlertRule(f"max({selector(name, job=API_JOB)}) > {number(limit)}", "page"),),
        cases=(
            Case(
                {selector(name, **API): gauge(limit + 60, 10)},
                "10m",
                firing=({"severity": "page"},),
            ),
            Case({selector(name, **API): gauge(limit - 3600, 10)}, "10m"),
        ),
    )


def evaluation_alerts(objectives: Objectives, nightly: Sequence[str]) -> list[Alert]:
    """Failed or stale runs of the nightly sets; none without a nightly set."""
    if not nightly:
        return []
    sets = f"~{regex_of(nightly)}"
    passed = "rag_evaluation_passed"
    last_run = "rag_evaluation_last_run_timestamp_seconds"
    watched, other = nightly[0], "set_run_by_hand"
    max_age = objectives.evaluation.max_age_hours
    hours = int(max_age) + 2
    return [
        Alert(
            "EvaluationFailed",
            summary="The latest evaluation of {{ $labels.set }} failed its blocking gates",
            description="The latest recorded run of the nightly set {{ $labels.set }} failed a "
            "blocking gate of eval_sets/gates.yaml: answer or retrieval quality regressed.",
            rules=(
                AlertRule(
                    f"max by (set) ({selector(passed, job=API_JOB, set=sets)}) == 0", "ticket"
                ),
            ),
            cases=(
                Case(
                    {selector(passed, **API, set=watched): gauge(0, 10)},
                    "10m",
                    firing=({"set": watched, "severity": "ticket"},),
                ),
                Case(
                    {
                        selector(passed, **API, set=watched): gauge(1, 10),
                        selector(passed, **API, set=other): gauge(0, 10),
                    },
                    "10m",
                ),
            ),
        ),
        Alert(
            "EvaluationStale",
            summary=f"No evaluation of {{{{ $labels.set }}}} was recorded for {max_age:g} hours",
            description=f"The nightly set {{{{ $labels.set }}}} has no recorded run of the last "
            f"{max_age:g} hours: the nightly evaluation did not run or did not record.",
            rules=(
                AlertRule(
                    f"time() - max by (set) ({selector(last_run, job=API_JOB, set=sets)})"
                    f" > {number(max_age * 3600)}",
                    "ticket",
                ),
            ),
            cases=(
                Case(
                    {selector(last_run, **API, set=watched): gauge(0, hours)},
                    f"{hours}h",
                    firing=({"set": watched, "severity": "ticket"},),
                    interval="1h",
                ),
                Case(
                    {
                        selector(last_run, **API, set=watched): f"0+3600x{hours}",
                        selector(last_run, **API, set=other): gauge(0, hours),
                    },
                    f"{hours}h",
                    interval="1h",
                ),
            ),
        ),
    ]


def alert_areas(objectives: Objectives) -> dict[str, list[Alert]]:
    """Alert files (dashboards/alerts/<area>.yml) and their alerts."""
    nightly = load_gates(GATES_FILE).nightly_sets()
    return {
        SLO_AREA: [burn_rate_alert(slo, objectives) for slo in alerting_slos(objectives)],
        "targets": [target_down()],
        "indexing": [
            freshness_over_sla(objectives),
            consumer_lag_growing(objectives),
            dead_letters_appearing(objectives),
            index_not_updated(objectives),
            index_check_failing(),
        ],
        "answers": [llm_fallback(objectives), cost_over_budget(objectives)],
        "governance": [erasure_failed(), erasure_overdue(objectives)],
        "evaluation": evaluation_alerts(objectives, nightly),
    }


# ---------------------------------------------------------------------------------------------
# Files


def test_group(case: Case, alert: Alert | None) -> dict[str, Any]:
    group: dict[str, Any] = {
        "interval": case.interval,
        "input_series": [
            {"series": series, "values": values} for series, values in case.series.items()
        ],
    }
    if alert is not None:
        group["alert_rule_test"] = [
            {
                "eval_time": case.at,
                "alertname": alert.name,
                "exp_alerts": [
                    {"exp_labels": dict(labels), "exp_annotations": alert.annotations(labels)}
                    for labels in case.firing
                ],
            }
        ]
    if case.checks:
        group["promql_expr_test"] = [
            {
                "expr": check.expr,
                "eval_time": case.at,
                "exp_samples": [{"labels": _labels_text(check.labels), "value": check.value}],
            }
            for check in case.checks
        ]
    return group


def _labels_text(labels: Labels) -> str:
    return "{" + ",".join(f'{name}="{value}"' for name, value in labels.items()) + "}"


def test_file(
    rule_files: list[str], groups: list[dict[str, Any]], interval: str = "1m"
) -> dict[str, Any]:
    return {"rule_files": rule_files, "evaluation_interval": interval, "tests": groups}


def reads_recorded(alerts: Sequence[Alert], recorded: set[str]) -> bool:
    """Whether an alert reads a recorded series: its test needs the recording rules, which
    otherwise only slow it down."""
    names = {name for alert in alerts for rule in alert.rules for name in _NAME.findall(rule.expr)}
    return bool(names & recorded)


def prometheus_config() -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["rules/*.yml", "alerts/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER_TARGET]}]}]},
        "scrape_configs": [
            # With RAG_AUTH_MODE=oidc the API's /metrics wants a token with the rag:admin
            # scope: add `authorization: {credentials_file: ...}` to this job.
            {"job_name": API_JOB, "metrics_path": "/metrics",
             "static_configs": [{"targets": [API_TARGET]}]},
            {"job_name": WORKER_JOB, "metrics_path": "/metrics",
             "static_configs": [{"targets": [WORKER_TARGET]}]},
        ],
    }  # fmt: skip


def alertmanager_config() -> dict[str, Any]:
    """Pages to the pager, tickets to the ticket queue; a page silences the ticket of the
    same alert and SLO (the slow burn of an outage already paged)."""
    return {
        "route": {
            "receiver": "ticket",
            "group_by": ["alertname", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"matchers": ['severity="page"'], "receiver": "pager", "repeat_interval": "1h"},
                {"matchers": ['severity="ticket"'], "receiver": "ticket"},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="page"'],
                "target_matchers": ['severity="ticket"'],
                "equal": ["alertname", "slo"],
            }
        ],
        "receivers": [
            {"name": "pager", "webhook_configs": [{"url": PAGER_WEBHOOK}]},
            {"name": "ticket", "webhook_configs": [{"url": TICKET_WEBHOOK}]},
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, readable in review."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def dump(document: Mapping[str, Any]) -> str:
    return HEADER + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )


def generate(objectives: Objectives) -> dict[Path, str]:
    """Every file this module owns, by path relative to the repository."""
    recording = recording_groups(objectives)
    recorded = {rule["record"] for group in recording for rule in group["rules"]}
    files = {
        RECORDING_FILE: dump({"groups": recording}),
        DASHBOARDS / "tests" / "recording.yml": dump(
            test_file(
                [f"../rules/{RECORDING_FILE.name}"],
                [test_group(recording_checks(objectives), None)],
            )
        ),
        DASHBOARDS / "prometheus.yml": dump(prometheus_config()),
        DASHBOARDS / "alertmanager.yml": dump(alertmanager_config()),
    }
    for area, alerts in alert_areas(objectives).items():
        rules = [entry for alert in alerts for entry in alert.rule_entries()]
        files[DASHBOARDS / "alerts" / f"{area}.yml"] = dump(
            {"groups": [{"name": area, "rules": rules}]}
        )
        groups = [test_group(case, alert) for alert in alerts for case in alert.cases]
        rule_files = [f"../alerts/{area}.yml"]
        if reads_recorded(alerts, recorded):
            rule_files.insert(0, f"../rules/{RECORDING_FILE.name}")
        interval = BURN_TEST_INTERVAL if area == SLO_AREA else "1m"
        files[DASHBOARDS / "tests" / f"{area}.yml"] = dump(test_file(rule_files, groups, interval))
    return files
