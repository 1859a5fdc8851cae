"""The embedded model served on loopback, so that it is reached like any other provider."""

import sys
from pathlib import Path

import httpx

from rag_core.adapters.llm.weights import LOCAL_MODEL
from rag_core.adapters.processes import ChildServer


class LocalLLMServer(ChildServer):
    """llama-cpp-python's OpenAI-compatible server as a child process on loopback.

    Tuned for answering on a few CPU cores (docs/benchmarks.md, "Answer latency"): every core
    writes tokens (llama-cpp-python's default is half of them, which halves the writing
    speed), and flash attention reads the prompt about 10% faster. The server keeps the
    previous prompt's state, so the fixed start of every prompt (instructions and worked
    example) is read once, not per question."""

    name = "the local LLM server"
    start_timeout = 120.0

    def __init__(
        self,
        model_path: Path,
        port: int,
        context_tokens: int = 4096,
        log_path: Path | None = None,
    ):
        self.base_url = f"http://127.0.0.1:{port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
            "--model_alias", LOCAL_MODEL, "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(context_tokens), "--n_threads", "-1", "--n_threads_batch", "-1",
            "--flash_attn", "true",
        ]  # fmt: skip
        super().__init__(command, log_path=log_path)  # llama.cpp logs every tensor it loads

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
