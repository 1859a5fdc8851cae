"""What `ragctl dev` (and so `make run`) shows on the console: its children's output goes to
files under RAG_HOME/logs, a child that dies while starting shows the end of its log, and
start-up ends with one banner saying where everything is."""

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import lancedb  # noqa: F401  registers LanceDB's at-fork hooks, as in `ragctl dev`
import psutil
import pytest
from typer.testing import CliRunner

from rag_core.adapters.processes import ChildExited, ChildServer, free_port, start_logged
from rag_core.settings import Settings, get_settings
from rag_serving import cli

runner = CliRunner()
FakeCommands = list[tuple[str, list[str], str, Callable[[], bool]]]


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_writes_to_its_log_file_not_to_the_console(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "logs" / "child.log"
    child = start_logged(
        _python("import sys; print('llama tensor dump'); print('a warning', file=sys.stderr)"),
        log,
    )
    assert child.wait(timeout=30) == 0
    console = capfd.readouterr()
    assert "llama tensor dump" not in console.out + console.err
    text = log.read_text()
    assert "llama tensor dump" in text and "a warning" in text
    assert "fork support is experimental" not in text + console.err


class Crashing(ChildServer):
    name = "the crashing server"

    def __init__(self, log_path: Path):
        super().__init__(
            _python("import sys\nfor n in range(1, 31): print(f'line {n:02}')\nsys.exit(3)"),
            log_path=log_path,
        )

    def ready(self) -> bool:
        return False


def test_a_server_that_dies_while_starting_shows_the_end_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    with pytest.raises(ChildExited) as failure:
        Crashing(log).start()
    message = str(failure.value)
    assert message.startswith("the crashing server exited with 3")
    assert str(log) in message
    assert "line 11" in message and "line 30" in message and "line 10" not in message


@pytest.fixture
def dev_home(rag_home: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A platform for `ragctl dev` with a broker of its own to start and an LLM configured
    elsewhere; the signal handlers `dev` installs are put back afterwards."""
    monkeypatch.setenv("RAG_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("RAG_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    get_settings.cache_clear()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield get_settings()
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _fake_stack(monkeypatch: pytest.MonkeyPatch, commands: FakeCommands) -> None:
    monkeypatch.setattr(cli, "_dev_commands", lambda host, api_port, dagster_port: commands)


def _gone(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _sleeper(pid_file: Path, noise: str = "") -> list[str]:
    return _python(
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"for _ in range(200): print({noise!r}, flush=True)\ntime.sleep(120)"
    )


def test_dev_ends_start_up_with_a_banner_and_keeps_children_off_the_console(
    dev_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "webserver.pid"
    _fake_stack(
        monkeypatch,
        [("the fake webserver", _sleeper(pid_file, "sensor tick"), "web.log", pid_file.exists)],
    )
    banner = cli._dev_banner
    announcement = dev_home.home / "api.url"
    announced: list[str] = []

    def banner_then_ctrl_c(*args: object) -> str:
        """Interrupt `dev` as a person would, once it has shown its banner."""
        threading.Timer(0.3, lambda: announced.append(announcement.read_text())).start()
        threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGINT)).start()
        return banner(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "_dev_banner", banner_then_ctrl_c)
    result = runner.invoke(cli.app, ["dev", "--api-port", "8123", "--dagster-port", "3123"])

    assert result.exit_code == 0, result.output
    logs = dev_home.home / "logs"
    lines = result.output.splitlines()
    assert "Ready." in lines
    # One space for each run of the column's padding, whose width the longest name sets.
    banner_rows = [" ".join(line.split()) for line in lines[lines.index("Ready.") :]]
    for expected in (
        "Dagster UI http://127.0.0.1:3123",
        "API docs http://127.0.0.1:8123/docs",
        "LLM http://127.0.0.1:9/v1",
        f"Kafka {dev_home.kafka_bootstrap_servers} (tansu, in memory)",
        f"Logs {logs}/ (one file per process)",
        "Stop Ctrl-C",
        *(f"Try {example}" if n == 0 else example for n, example in enumerate(cli.DEV_EXAMPLES)),
    ):
        assert expected in banner_rows, banner_rows
    if shutil.which("prometheus") and shutil.which("prometheus-alertmanager"):
        assert "Prometheus http://127.0.0.1:9090 (rules and alerts loaded)" in banner_rows
        assert "Alertmanager http://127.0.0.1:9093" in banner_rows
    else:  # said in one line, and the rest starts
        assert "no metrics server: " in result.output
    # While it runs, the CLI's read commands of this RAG_HOME find its API.
    assert announced == ["http://127.0.0.1:8123"] and not announcement.exists()
    assert "sensor tick" not in result.output
    assert (logs / "web.log").read_text().splitlines().count("sensor tick") == 200
    assert (logs / "broker.log").exists()
    assert _gone(pid_file)


def test_dev_stops_when_a_child_dies_while_starting_and_shows_its_log(
    dev_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "api.pid"
    crash = "import sys, time\nfor n in range(1, 31): print(f'line {n:02}')\ntime.sleep(2)\n"
    _fake_stack(
        monkeypatch,
        [
            ("the fake API", _sleeper(pid_file), "api.log", lambda: False),
            ("the fake webserver", _python(crash + "sys.exit(3)"), "web.log", lambda: False),
        ],
    )
    result = runner.invoke(cli.app, ["dev"])

    assert result.exit_code == 1
    log = dev_home.home / "logs" / "web.log"
    assert f"the fake webserver exited with 3; the end of its log, {log}:" in result.output
    assert "line 11" in result.output and "line 30" in result.output
    assert "line 10" not in result.output and "Ready." not in result.output
    assert _gone(pid_file)


def test_loading_the_dagster_definitions_warns_of_nothing_beta(tmp_path: Path) -> None:
    """Dagster loads the code location in every command, the webserver and the daemon."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    loaded = subprocess.run(
        _python("import rag_assets.definitions as d; d.defs().get_repository_def()"),
        env=env | {"RAG_HOME": str(tmp_path / "rag")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "BetaWarning" not in loaded.stderr
