"""Stopping child processes that run in their own process groups (sessions)."""

import os
import signal
import subprocess
import time


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
