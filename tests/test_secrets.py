"""Secrets from files and from AWS Secrets Manager (moto's server on loopback), never shown."""

import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from rag_core.adapters.processes import ChildServer, accepts_connections, free_port
from rag_core.settings import Settings

MOTO = str(Path(sys.executable).parent / "moto_server")


class MotoServer(ChildServer):
    name = "moto"

    def __init__(self) -> None:
        self.port = free_port()
        super().__init__([MOTO, "-H", "127.0.0.1", "-p", str(self.port)])

    def ready(self) -> bool:
        return accepts_connections(self.port)


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    with MotoServer() as server:
        for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.port}",
                            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_DEFAULT_REGION": "eu-west-2"}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        yield boto3.session.Session().client("secretsmanager")


@pytest.mark.parametrize(
    ("name", "value", "telltale"),
    [
        ("llm_api_key", "sk-from-a-file", "sk-from"),
        ("cache_url", "redis://:hunter2@cache.internal:6379/0", "hunter2"),  # may hold a password
    ],
)
def test_a_secret_is_read_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, telltale: str
) -> None:
    (tmp_path / name).write_text(f"{value}\n")
    monkeypatch.setenv(f"RAG_{name.upper()}_FILE", str(tmp_path / name))
    settings = Settings()
    assert getattr(settings, name).get_secret_value() == value
    assert telltale not in repr(settings) and telltale not in settings.model_dump_json()


def test_references_resolve_from_secrets_manager(secrets_manager, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    secrets_manager.create_secret(Name="rag/llm", SecretString='{"api_key": "sk-from-aws"}')
    secrets_manager.create_secret(Name="rag/snowflake", SecretString="snow-pass")
    monkeypatch.setenv("RAG_LLM_API_KEY", "aws-sm://rag/llm#api_key")
    monkeypatch.setenv("RAG_SNOWFLAKE_PASSWORD", "aws-sm://rag/snowflake")
    settings = Settings()
    assert settings.llm_api_key.get_secret_value() == "sk-from-aws"
    assert settings.snowflake_password.get_secret_value() == "snow-pass"
    assert "sk-from-aws" not in repr(settings)


def test_a_missing_secret_names_the_reference_only(secrets_manager, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_COHERE_API_KEY", "aws-sm://rag/absent")
    with pytest.raises(ValueError, match="aws-sm://rag/absent could not be resolved"):
        Settings()
