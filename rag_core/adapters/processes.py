"""Servers the platform starts itself (broker, S3, local model, the `ragctl dev` stack) as
child processes.

Each child runs in its own session so that stopping it also stops whatever it spawned, and
writes its output to a log file of its own rather than to the console of whoever started it.
"""

import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

LOG_TAIL_LINES = 20


def stop_process_groups(
    processes: list[subprocess.Popen[bytes]], grace_seconds: float = 10.0
) -> None:
    """SIGTERM each live process's group, then SIGKILL whatever outlives the grace period."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def responds_ok(url: str) -> bool:
    """Whether a GET of `url` answers 200 within 2 s (straight, never through a proxy)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # refused, timed out, an error status
        return False


def start_logged(
    command: Sequence[str],
    log_path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` in a session of its own, its stdout and stderr appended to `log_path`
    (discarded when None) after a line that marks the start.

    No Python code runs in the child between fork and exec (no `preexec_fn`): that would run
    the at-fork hooks of the libraries loaded here, and LanceDB's warns from every child. A
    signal this process handles is back to its default in the child after exec."""
    with _opened_log(log_path, command) as log:
        return subprocess.Popen(
            list(command),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


@contextmanager
def _opened_log(log_path: Path | None, command: Sequence[str]) -> Iterator[int | BinaryIO]:
    if log_path is None:
        yield subprocess.DEVNULL
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"--- {started} started: {' '.join(command)}\n".encode())
        log.flush()
        yield log


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log (none when it does not exist)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=lines)]
    except FileNotFoundError:
        return []


class ChildExited(RuntimeError):
    """A child ended while it should have been running. The message names it, its exit
    status, and ends with the last lines of its log and the log's path."""

    def __init__(self, name: str, returncode: int, log_path: Path | None):
        message = f"{name} exited with {returncode}"
        if log_path is not None:
            tail = "\n".join(f"  {line}" for line in log_tail(log_path))
            message += f"; the end of its log, {log_path}:\n{tail}"
        super().__init__(message)
        self.name = name
        self.returncode = returncode


@dataclass(frozen=True)
class Child:
    """A started child process, with how to tell that it is ready to serve."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    ready: Callable[[], bool]

    def check_running(self) -> None:
        """Raise `ChildExited` if the process has ended."""
        returncode = self.process.poll()
        if returncode is not None:
            raise ChildExited(self.name, returncode, self.log_path)


def wait_until_ready(children: Sequence[Child], timeout: float, poll_seconds: float = 0.1) -> None:
    """Return once every child is ready. Raise `ChildExited` as soon as one ends, and
    `TimeoutError` naming those not ready (and their logs) after `timeout` seconds."""
    waiting = list(children)
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            child.check_running()
        waiting = [child for child in waiting if not child.ready()]
        if not waiting:
            return
        if time.monotonic() > deadline:
            late = ", ".join(
                f"{child.name} (log {child.log_path})" if child.log_path else child.name
                for child in waiting
            )
            raise TimeoutError(f"not ready within {timeout:.0f} s: {late}")
        time.sleep(poll_seconds)


class ChildServer:
    """A server child process: `start` returns once `ready()` holds, `stop` ends it.
    `spawn` starts it without waiting, for callers that start several at once."""

    name = "server"
    start_timeout = 60.0

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ):
        self.command = list(command)
        self.env = dict(os.environ) | dict(env or {})
        self.log_path = log_path
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def ready(self) -> bool:
        raise NotImplementedError

    def spawn(self) -> Child:
        self._process = start_logged(self.command, self.log_path, env=self.env, cwd=self.cwd)
        return Child(self.name, self._process, self.log_path, self.ready)

    def start(self) -> Self:
        child = self.spawn()
        try:
            wait_until_ready([child], self.start_timeout)
        except (ChildExited, TimeoutError):
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process:
            stop_process_groups([self._process])
            self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
