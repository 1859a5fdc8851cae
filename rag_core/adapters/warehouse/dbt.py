"""dbt, run in-process against the configured target: it renders warehouse rows into the
document models. Its target, logs and manifest live under RAG_HOME, so the repository stays
clean."""

import base64
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag_core.adapters.warehouse.connection import WarehouseError, snowflake_private_key_der
from rag_core.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"


def dbt_env(settings: Settings) -> dict[str, str]:
    """The variables `dbt_project/profiles.yml` reads, from settings. A private key goes as
    base64 DER, opened with its passphrase by the connection's own reader, so a key that
    cannot be read fails here with the connection's message."""
    env = {
        "RAG_WAREHOUSE_TARGET": settings.warehouse_target,
        "RAG_WAREHOUSE_PATH": str(settings.warehouse_path),
        # Keep dbt off the internet: no usage statistics, no check for a newer release.
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
    }
    if settings.warehouse_target == "snowflake":
        env |= {
            "RAG_SNOWFLAKE_ACCOUNT": settings.snowflake_account,
            "RAG_SNOWFLAKE_USER": settings.snowflake_user,
            "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD": settings.snowflake_password.get_secret_value(),
            "DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY": _snowflake_private_key_b64(settings),
            "RAG_SNOWFLAKE_DATABASE": settings.snowflake_database,
            "RAG_SNOWFLAKE_SCHEMA": settings.snowflake_schema,
            "RAG_SNOWFLAKE_WAREHOUSE": settings.snowflake_warehouse,
            "RAG_SNOWFLAKE_ROLE": settings.snowflake_role,
            "RAG_SNOWFLAKE_HOST": settings.snowflake_host,
            "RAG_SNOWFLAKE_PORT": str(settings.snowflake_port),
            "RAG_SNOWFLAKE_PROTOCOL": settings.snowflake_protocol,
        }
    return env


def _snowflake_private_key_b64(settings: Settings) -> str:
    if not settings.snowflake_private_key.get_secret_value():
        return ""
    return base64.b64encode(snowflake_private_key_der(settings)).decode()


@contextmanager
def dbt_environment(settings: Settings) -> Iterator[None]:
    """Set `dbt_env` in this process while dbt starts: in-process dbt and dagster-dbt's
    subprocesses both take their profile variables from `os.environ`."""
    env = dbt_env(settings)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_paths(settings: Settings) -> tuple[Path, Path]:
    """dbt's target and log folders."""
    return settings.home / "dbt" / "target", settings.home / "dbt" / "logs"


def manifest_dir(settings: Settings) -> Path:
    """Where `parse_project` writes the manifest, apart from the target folder that builds
    rewrite while the orchestrator reads the manifest."""
    return settings.home / "dbt" / "manifest"


def dbt_executable() -> str:
    """The venv's dbt, which need not be on PATH."""
    beside_python = Path(sys.executable).with_name("dbt")
    return str(beside_python) if beside_python.exists() else "dbt"


def _dbt_failure(command: str, result: Any) -> str:
    if result.exception is not None:
        return f"dbt {command} failed: {result.exception}"
    failures = [
        f"{node.node.name}: {node.message or node.status}"
        for node in getattr(result.result, "results", [])
        if str(node.status) in {"error", "fail", "runtime error"}
    ]
    return f"dbt {command} failed: " + ("; ".join(failures) or "see the dbt log")


def run_dbt(settings: Settings, args: Sequence[str], target_path: Path | None = None) -> None:
    """Run a dbt command in-process against the configured target."""
    from dbt.cli.main import dbtRunner

    default_target, log_path = dbt_paths(settings)
    argv = [
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--target",
        settings.warehouse_target,
        "--target-path",
        str(target_path or default_target),
        "--log-path",
        str(log_path),
        "--quiet",
    ]
    with dbt_environment(settings):
        result = dbtRunner().invoke(argv)
    if not result.success:
        raise WarehouseError(_dbt_failure(args[0], result))


def build_models(settings: Settings) -> None:
    """`dbt build`: (re)create the models and run their tests."""
    run_dbt(settings, ["build"])


def parse_project(settings: Settings) -> None:
    """`dbt parse` into `manifest_dir`: the manifest the orchestrator makes the models'
    assets from. It connects to no warehouse."""
    run_dbt(settings, ["parse"], target_path=manifest_dir(settings))
