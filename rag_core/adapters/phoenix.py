"""Arize Phoenix, the local trace viewer (the `traces` extra): a child server on loopback that
takes spans by OTLP/HTTP at `/v1/traces` and shows them, its data under a folder of its own.

It runs offline: no analytics pixels (`PHOENIX_TELEMETRY_ENABLED`) and no web fonts or other
external resources in its UI (`PHOENIX_ALLOW_EXTERNAL_RESOURCES`). Production sends the same
spans to its own OTLP collector instead (OTEL_EXPORTER_OTLP_ENDPOINT)."""

import sys
from pathlib import Path

from rag_core.adapters.processes import ChildServer, free_port, responds_ok


def _phoenix_binary() -> str:
    phoenix = Path(sys.executable).parent / "phoenix"
    if not phoenix.exists():
        raise RuntimeError("Arize Phoenix is not installed: pip install -e '.[traces]'")
    return str(phoenix)


class PhoenixServer(ChildServer):
    """`phoenix serve` with its web UI, REST API and OTLP/HTTP receiver on `port` and its
    gRPC receiver on another free port (it always opens one), keeping its SQLite database in
    `working_dir`."""

    name = "Phoenix"
    start_timeout = 120.0  # it migrates its database on the first start

    def __init__(
        self,
        working_dir: Path,
        port: int | None = None,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
    ):
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        working_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PHOENIX_WORKING_DIR": str(working_dir),
            "PHOENIX_HOST": host,
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        }
        super().__init__([_phoenix_binary(), "serve"], env=env, log_path=log_path)

    @property
    def otlp_endpoint(self) -> str:
        """The value of OTEL_EXPORTER_OTLP_ENDPOINT that sends a process's spans here (the
        exporter adds `/v1/traces`)."""
        return self.url

    def ready(self) -> bool:
        return responds_ok(f"{self.url}/healthz")
