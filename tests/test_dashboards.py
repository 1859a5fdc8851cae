"""The Grafana dashboards: generated as committed, shaped as Grafana needs them, and every
panel's query answered by a real Prometheus scraping the real API and streaming worker while
real traffic and change events flow (Grafana itself cannot be installed here)."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from confluent_kafka import Producer
from test_eval_report import record

from rag_core import services
from rag_core.adapters.catalog import add_sources
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.local_servers import TansuBroker
from rag_core.adapters.monitoring import PrometheusServer, scrape_config
from rag_core.adapters.processes import free_port
from rag_core.domain.events import topics
from rag_core.settings import Settings, get_settings
from rag_ops import dashboards
from rag_ops.slos import REPOSITORY, load_objectives
from rag_serving.main import create_app

from conftest import announce

BOARDS = ("service", "answers", "indexing", "governance", "evaluation")
# Grafana's interval variables, given durations spanning the whole test's traffic.
INTERVALS = {"$__rate_interval": "10m", "$__interval": "10m", "$__range": "10m"}
# Queries that may rightly return nothing after the traffic below, by a piece of their
# expression. Everything else must return series.
MAY_BE_EMPTY = {
    "rag_llm_fallbacks_total": "the model answers every query: nothing falls back",
    "rag_dependency_fallbacks_total": "no Redis is configured, so none can be unavailable",
}
# Longest wait after the traffic for the last scrapes: the evaluation gauges are read from
# their store at most every 30 s.
SETTLE_SECONDS = 45.0
QUESTION = "How do I authenticate pip against a private package index?"


def generated() -> dict[Path, str]:
    return dashboards.generate(load_objectives())


def boards() -> dict[str, dict[str, Any]]:
    files = generated()
    return {stem: json.loads(files[Path("dashboards") / f"{stem}.json"]) for stem in BOARDS}


def targets() -> Iterator[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every panel query."""
    for stem, board in boards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                yield stem, panel["title"], target["expr"]


# The files and their shape


def test_the_committed_files_are_what_the_generator_writes() -> None:
    """What `python -m rag_ops --check` compares for this generator's files."""
    for relative, content in generated().items():
        path = REPOSITORY / relative
        assert path.exists(), f"{relative} is missing: run `make dashboards`"
        assert path.read_text(encoding="utf-8") == content, f"{relative} is stale"
        assert content.endswith("\n")


def test_generating_twice_gives_the_same_bytes() -> None:
    assert generated() == generated()


@pytest.mark.parametrize("stem", BOARDS)
def test_a_dashboard_has_what_grafana_needs(stem: str) -> None:
    board = boards()[stem]
    [variable] = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus",
    )  # fmt: skip
    assert board["uid"] == f"rag-{stem}"
    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids), "panel ids repeat"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for target in panel["targets"]:
            assert target["expr"] and target["refId"]
            assert target["datasource"] == panel["datasource"]
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0
        assert grid["x"] >= 0 and grid["y"] >= 0 and grid["x"] + grid["w"] <= 24
    for one, other in combinations(panels, 2):
        assert not _overlap(one["gridPos"], other["gridPos"]), (one["title"], other["title"])


def _overlap(one: dict[str, int], other: dict[str, int]) -> bool:
    apart_x = one["x"] + one["w"] <= other["x"] or other["x"] + other["w"] <= one["x"]
    apart_y = one["y"] + one["h"] <= other["y"] or other["y"] + other["h"] <= one["y"]
    return not (apart_x or apart_y)


def test_thresholds_follow_the_objectives() -> None:
    """A threshold lives in slos.yaml: change an objective and the panel's line moves."""
    objectives = load_objectives()
    looser = objectives.model_copy(
        update={"availability": objectives.availability.model_copy(update={"objective": 0.9})}
    )
    [panel] = [p for p in dashboards.service(looser) if "5xx" in (p.build().title or "")]
    steps = panel.build().field_config.defaults.thresholds.steps  # type: ignore[union-attr]
    assert [step.value for step in steps] == [None, pytest.approx(0.1)]
    files = dashboards.generate(objectives)
    answers = json.loads(files[Path("dashboards/answers.json")])
    [cost] = [p for p in answers["panels"] if p["title"].startswith("Cost per 1,000")]
    budget = cost["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"]
    assert budget == objectives.cost.budget_per_1000_queries


def test_the_provisioned_datasource_is_the_one_panels_default_to() -> None:
    files = generated()
    datasources = yaml.safe_load(files[Path("dashboards/provisioning/datasources.yml")])
    [prometheus] = datasources["datasources"]
    assert (prometheus["uid"], prometheus["type"], prometheus["isDefault"]) == (
        "prometheus", "prometheus", True,
    )  # fmt: skip
    providers = yaml.safe_load(files[Path("dashboards/provisioning/dashboards.yml")])
    assert providers["providers"][0]["type"] == "file"


# The proof: every query against a real Prometheus


def require_prometheus() -> None:
    """Skip without Debian's prometheus outside CI; CI installs it (.ci/run)."""
    if shutil.which("prometheus") is None and os.environ.get("CI") != "true":
        pytest.skip("no /usr/bin/prometheus (apt-get install prometheus)")


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 120.0, every: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(every)


def answers_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def platform(
    kafka_platform: Settings, local_llm: LocalLLMServer, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The test's platform answering with the packaged model (short answers: a few tokens
    feed every answer panel), in dev auth (so /metrics needs no token) and with a rate limit
    a burst of status requests exceeds."""
    for name, value in {"RAG_AUTH_MODE": "dev", "RAG_LLM_BASE_URL": local_llm.base_url,
                        "RAG_LLM_TIMEOUT_SECONDS": "300", "RAG_LLM_MAX_TOKENS": "24",
                        "RAG_RATE_LIMIT_PER_MINUTE": "60",
                        "RAG_RATE_LIMIT_BURST": "20"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def worker_metrics(platform: Settings, tmp_path: Path) -> Iterator[int]:
    """`ragctl stream` in its own process (its own metrics registry), ready to consume;
    yields its metrics port."""
    port = free_port()
    ragctl = shutil.which("ragctl", path=str(Path(sys.executable).parent))
    assert ragctl, "ragctl is not installed in the virtualenv"
    with open(tmp_path / "stream.log", "wb") as log:
        worker = subprocess.Popen(
            [ragctl, "stream", "--metrics-port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: answers_ok(f"http://127.0.0.1:{port}/readyz"), "the worker consumes")
        yield port
    finally:
        worker.terminate()
        worker.wait(timeout=60)


@pytest.fixture
def api_url(platform: Settings) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(platform), host="127.0.0.1", port=free_port(),
                       log_level="warning")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the API starts", timeout=60)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def prometheus(api_url: str, worker_metrics: int, tmp_path: Path) -> Iterator[str]:
    """Prometheus on loopback with the generated rules, scraping the API (job rag-api) and the
    worker (job rag-worker) every second; yields its URL."""
    require_prometheus()
    config = scrape_config(
        REPOSITORY / "dashboards" / "prometheus.yml", api=api_url.removeprefix("http://"),
        worker=f"127.0.0.1:{worker_metrics}", interval="1s",
    )  # fmt: skip
    with PrometheusServer(
        config, tmp_path / "prometheus", log_path=tmp_path / "prometheus.log"
    ) as server:
        wait_for(
            lambda: len(instant(server.url, "up == 1")) == 2, "both targets are up", timeout=60
        )
        yield server.url


def instant(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; a query Prometheus rejects fails the test."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def drive_traffic(platform: Settings, api: str, corpus: Path, broker: TansuBroker) -> None:
    """Change events through the worker (and one it cannot read), then searches, answers
    (one streamed, one cached), a 422, 429s, an erasure and a recorded evaluation run."""
    add_sources(services.object_store(platform), [corpus])
    announce(platform)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(topics(platform).documents, value=b"{not json")
    producer.flush(30)
    index = services.chunk_index(platform)
    wait_for(lambda: index.stats().documents == 3, "the worker indexes the three documents")
    client = httpx.Client(base_url=api, timeout=600)
    hits = []
    for query in (QUESTION, "pip install from a requirements file", "mosquitto configuration"):
        searched = client.post("/v1/search", json={"query": query})
        assert searched.status_code == 200
        hits += searched.json()["hits"]
    assert client.post("/v1/search", json={"top_k": 3}).status_code == 422
    for _ in range(2):  # the second is answered from the cache
        assert client.post("/v1/query", json={"question": QUESTION}).status_code == 200
    with client.stream(
        "POST", "/v1/query", json={"question": "What is mosquitto?", "stream": True}
    ) as streamed:
        assert streamed.status_code == 200
        assert "event: done" in "".join(streamed.iter_text())
    statuses = [client.get("/v1/status").status_code for _ in range(30)]
    assert 429 in statuses
    doc_id = hits[0]["doc_id"]
    accepted = client.delete(f"/v1/documents/{doc_id}")
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]

    def erased() -> bool:
        polled = client.get(f"/v1/erasure-requests/{request_id}")
        assert polled.status_code == 200, polled.text
        assert polled.json()["status"] != "failed", polled.text
        return bool(polled.json()["status"] == "completed")

    # Polled within the route's rate limit (one request a second).
    wait_for(erased, "the erasure request completes", timeout=300, every=1.5)
    record(platform, "nightly", fact_recall=0.8, recall_at_5=0.9)


def evaluate(prometheus: str) -> tuple[list[str], list[str]]:
    """Every panel query, its interval variables made concrete: (those with data, those
    without that must have it), each as `dashboard/panel: expression`."""
    answered, empty = [], []
    for stem, title, expr in targets():
        concrete = expr
        for variable, duration in INTERVALS.items():
            concrete = concrete.replace(variable, duration)
        assert "$" not in concrete, f"unsubstituted variable in {stem}/{title}: {expr}"
        if instant(prometheus, concrete):
            answered.append(f"{stem}/{title}: {expr}")
        elif not any(piece in expr for piece in MAY_BE_EMPTY):
            empty.append(f"{stem}/{title}: {expr}")
    return answered, empty


@pytest.mark.slow
def test_every_panel_query_returns_data_from_the_real_services(
    platform: Settings, prometheus: str, api_url: str, corpus_copy: Path, broker: TansuBroker
) -> None:
    drive_traffic(platform, api_url, corpus_copy, broker)
    # Counters need two samples in a window, and the store gauges are read at most every
    # few seconds: a query still empty after that has a wrong name or label.
    deadline = time.monotonic() + SETTLE_SECONDS
    answered, empty = evaluate(prometheus)
    while empty and time.monotonic() < deadline:
        time.sleep(2)
        answered, empty = evaluate(prometheus)
    print("queries with data:", *answered, sep="\n  ")
    assert not empty, "queries without data:\n" + "\n".join(empty)
