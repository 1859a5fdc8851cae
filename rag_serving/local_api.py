"""The API as a child process on a loopback port, as `ragctl serve` runs it (uvicorn, one
process): for tests, benchmarks and scripts that need a real server, not an in-process app."""

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from rag_core.adapters.processes import ChildServer, free_port


class LocalApiServer(ChildServer):
    """Ready once `/livez` answers. `env` adds to the RAG home's environment (settings,
    PYTHONPATH); `uvicorn_args` go after the address."""

    name = "the API"
    start_timeout = 300.0

    def __init__(
        self,
        home: Path,
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        uvicorn_args: Sequence[str] = (),
    ):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # -P: the working directory is not put first on sys.path, so PYTHONPATH decides.
        command = [sys.executable, "-P", "-m", "uvicorn", "--factory",
                   "rag_serving.main:create_app", "--host", "127.0.0.1", "--port", str(port),
                   *uvicorn_args]  # fmt: skip
        super().__init__(command, env={"RAG_HOME": str(home), **(env or {})}, log_path=log_path)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/livez", timeout=1).is_success
        except httpx.HTTPError:
            return False
