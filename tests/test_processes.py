"""`ragctl serve` and `ragctl dev` as a person runs them: real processes on loopback,
stopped with a signal and checked gone."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from rag_core.adapters.processes import free_port
from rag_core.settings import Settings
from rag_serving.cli import PROMETHEUS_PORT, STREAM_PROBES_PORT

pytestmark = pytest.mark.slow
RAGCTL = str(Path(sys.executable).parent / "ragctl")


def _wait_for(url: str, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.5)


def _ignore_sigint() -> None:
    """What a non-interactive shell does to the jobs it starts in the background."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(args: list[str], home: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "RAG_HOME": str(home),
        "RAG_LLM_PORT": str(free_port()),
        "RAG_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    return subprocess.Popen(
        [RAGCTL, *args], env=env, start_new_session=True, preexec_fn=_ignore_sigint
    )


def _stop_and_check_gone(process: subprocess.Popen[bytes], signum: int) -> None:
    family = [process.pid] + [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
    process.send_signal(signum)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in family:  # leave nothing running, then fail
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        raise
    deadline = time.monotonic() + 15
    while any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in family
    ):
        assert time.monotonic() < deadline, "child processes outlived ragctl"
        time.sleep(0.2)


def test_serve_answers_and_stops(sample_index: Settings) -> None:
    port = free_port()
    process = _start(["serve", "--port", str(port)], sample_index.home)
    try:
        ready = _wait_for(f"http://127.0.0.1:{port}/readyz", timeout=90).json()
        assert ready["status"] == "ready"
        hits = httpx.post(
            f"http://127.0.0.1:{port}/v1/search", json={"query": "vacuum"}, timeout=30
        ).json()["hits"]
        assert hits
    finally:
        _stop_and_check_gone(process, signal.SIGTERM)


def test_dev_runs_the_stack_and_indexes_new_files_through_kafka(rag_home: Settings) -> None:
    """`ragctl dev` as `make run` starts it: the daemon's object-store sensor announces a file
    dropped into the object store, the streaming worker indexes it, the API then finds it."""
    api_port, dagster_port = free_port(), free_port()
    process = _start(
        ["dev", "--api-port", str(api_port), "--dagster-port", str(dagster_port)], rag_home.home
    )
    try:
        # Four heavy processes start at once on two cores; allow for a slow machine.
        _wait_for(f"http://127.0.0.1:{api_port}/healthz", timeout=300)
        _wait_for(f"http://127.0.0.1:{dagster_port}/server_info", timeout=300)
        children = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for name in ("dagster-daemon", "dagster-webserver", "tansu", "ragctl stream"):
            assert name in names

        dropped = Path(rag_home.object_store_uri) / "documents" / "notes" / "llamas.md"
        dropped.parent.mkdir(parents=True)
        dropped.write_text("# Llamas\n\nOur office llama is called Gerald and eats hay daily.\n")
        deadline = time.monotonic() + 240
        hits: list[dict] = []
        while not hits and time.monotonic() < deadline:
            time.sleep(3)
            response = httpx.post(
                f"http://127.0.0.1:{api_port}/v1/search", json={"query": "llama"}, timeout=30
            )
            hits = response.json()["hits"]
        assert hits, "the dropped file was not indexed in time"
        assert hits[0]["source_uri"].endswith("notes/llamas.md")
        _assert_prometheus_scrapes_with_the_rules(api_port)
    finally:
        _stop_and_check_gone(process, signal.SIGINT)


def _assert_prometheus_scrapes_with_the_rules(api_port: int) -> None:
    """`ragctl dev`'s Prometheus (Debian's, which CI installs) scrapes the API and the worker
    and has loaded the generated rules and alerts."""
    if shutil.which("prometheus") is None and os.environ.get("CI") != "true":
        return  # `ragctl dev` said it starts none; the rest of the stack is what was tested
    prometheus = f"http://127.0.0.1:{PROMETHEUS_PORT}"
    deadline, up = time.monotonic() + 60, []
    while len(up) < 2 and time.monotonic() < deadline:
        time.sleep(2)
        query = {"query": 'up{job=~"rag-api|rag-worker"} == 1'}
        up = httpx.get(f"{prometheus}/api/v1/query", params=query, timeout=10).json()["data"][
            "result"
        ]
    assert {series["metric"]["instance"] for series in up} == {
        f"127.0.0.1:{api_port}", f"127.0.0.1:{STREAM_PROBES_PORT}"
    }  # fmt: skip
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    alerts = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"
    }
    assert {"AvailabilityErrorBudgetBurn", "IndexNotUpdated", "EvaluationFailed"} <= alerts
