"""The settings dump (secrets redacted) and the cache flush, under the rag:admin scope."""

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import Issuer, bearer, oidc

from conftest import PORT_QUESTION


def test_the_settings_dump_redacts_secrets(sample_index: Settings) -> None:
    settings = sample_index.model_copy(
        update={
            "llm_api_key": SecretStr("sk-live-123"),
            "snowflake_password": SecretStr("snow-pass"),
            "kafka_client_config": {"sasl.username": "rag", "sasl.password": "kafka-pass"},
        }
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/admin/settings")
    dump = response.json()
    assert response.status_code == 200 and dump["chunk_size"] == settings.chunk_size
    assert dump["llm_api_key"] == dump["snowflake_password"] == "**********"
    assert dump["kafka_client_config"] == {"sasl.username": "rag", "sasl.password": "**********"}
    for secret in ("sk-live-123", "snow-pass", "kafka-pass"):
        assert secret not in response.text


def test_a_flush_empties_the_response_cache(sample_index: Settings, tmp_path: Path) -> None:
    settings = sample_index.model_copy(update={"cache_dir": tmp_path / "cache"})
    ask = {"question": PORT_QUESTION}
    with TestClient(create_app(settings)) as client:
        client.post("/v1/query", json=ask)
        assert client.post("/v1/query", json=ask).json()["cached"]
        flushed = client.post("/v1/admin/cache/flush")
        assert flushed.status_code == 200 and flushed.json()["deleted"] >= 1
        assert not client.post("/v1/query", json=ask).json()["cached"]


def test_admin_needs_its_scope(sample_index: Settings, issuer: Issuer) -> None:
    with TestClient(create_app(oidc(sample_index, issuer))) as client:
        token = bearer(issuer.token(scope="rag:query rag:ingest"))
        for response in (
            client.get("/v1/admin/settings", headers=token),
            client.post("/v1/admin/cache/flush", headers=token),
        ):
            assert response.status_code == 403 and "rag:admin" in response.text
