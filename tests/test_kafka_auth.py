"""Signing in to Amazon MSK with IAM (RAG_KAFKA_AUTH=msk-iam): the clients' librdkafka
settings, and the tokens the callback signs with AWS credentials from the environment."""

import base64
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from confluent_kafka import Producer

from rag_core.adapters.kafka import client_config, consumer_config
from rag_core.adapters.processes import free_port
from rag_core.settings import Settings

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
REGION = "eu-west-1"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Made-up credentials in the environment, and no AWS configuration files or profile."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def msk_iam(tmp_path: Path, **settings: Any) -> Settings:
    return Settings(home=tmp_path / "rag", kafka_auth="msk-iam", s3_region=REGION, **settings)


def test_the_callback_signs_a_connect_request_for_the_region(
    aws_credentials: None, tmp_path: Path
) -> None:
    sign: Callable[[str], tuple[str, float]] = client_config(msk_iam(tmp_path))["oauth_cb"]
    before = time.time()
    token, expires = sign("")

    url = urlsplit(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert (url.scheme, url.netloc) == ("https", f"kafka.{REGION}.amazonaws.com")
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert re.fullmatch(rf"{ACCESS_KEY}/\d{{8}}/{REGION}/kafka-cluster/aws4_request",
                        query["X-Amz-Credential"][0])  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"][0])
    assert before < expires <= before + 3600  # seconds since the epoch, not milliseconds


def test_msk_iam_settings_win_over_the_string_map_which_still_merges(tmp_path: Path) -> None:
    settings = msk_iam(
        tmp_path, kafka_client_config={"client.id": "rag-test", "security.protocol": "SSL"}
    )
    for config in (client_config(settings), consumer_config(settings, "indexer")):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "OAUTHBEARER"
        assert callable(config["oauth_cb"])
        assert config["client.id"] == "rag-test"
    assert consumer_config(settings, "indexer")["group.id"] == "indexer"


def test_without_msk_iam_the_string_map_alone_says_how_to_connect(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "rag", kafka_client_config={"security.protocol": "SSL"})
    config = client_config(settings)
    assert config["security.protocol"] == "SSL"
    assert "oauth_cb" not in config and "sasl.mechanism" not in config


def test_librdkafka_asks_the_callback_for_a_token_as_a_client_starts(
    aws_credentials: None, tmp_path: Path
) -> None:
    """The settings are ones librdkafka takes, and a client gets its first token without a
    poll (no broker listens: none is needed to ask for a token)."""
    config = client_config(msk_iam(tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"))
    signed: list[tuple[str, float]] = []
    asked = threading.Event()

    def recording(oauthbearer_config: str) -> tuple[str, float]:
        signed.append(config["oauth_cb"](oauthbearer_config))
        asked.set()
        return signed[-1]

    producer = Producer(config | {"oauth_cb": recording})
    try:
        assert asked.wait(10), "librdkafka never asked for a token"
        assert signed[0][1] > time.time()
    finally:
        producer.purge()
