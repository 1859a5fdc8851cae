"""Rate limits (in process, and shared by two app instances through Redis), body-size limit,
security headers, CORS and no stack traces."""

import uuid

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from rag_core.settings import Settings
from rag_serving.main import create_app
from rag_serving.ratelimit import LocalRateLimiter
from routes.conftest import Issuer, bearer, oidc

from conftest import REDIS_URL, require_redis

SEARCH = {"query": "vacuum", "top_k": 1}


def limited(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"rate_limit_burst": 2, "rate_limit_per_minute": 1} | update)


def test_a_caller_over_its_rate_gets_429_with_retry_after(sample_index: Settings) -> None:
    with TestClient(create_app(limited(sample_index))) as client:
        codes = [client.post("/v1/search", json=SEARCH).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        refused = client.post("/v1/search", json=SEARCH)
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/healthz").status_code == 200  # probes are not limited


def test_ids_in_the_path_draw_from_the_route_bucket(sample_index: Settings) -> None:
    with TestClient(create_app(limited(sample_index))) as client:
        codes = [client.get(f"/v1/erasure-requests/r{n}").status_code for n in range(3)]
    assert codes == [404, 404, 429]


def test_in_process_buckets_are_bounded() -> None:
    limiter = LocalRateLimiter(capacity=1, per_second=1e-6, max_buckets=2)
    assert limiter.acquire("a") == 0 and limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0 and limiter.acquire("c") == 0  # "a" is dropped
    assert limiter.acquire("a") == 0  # a new, full bucket; now "b" is dropped
    assert limiter.acquire("c") > 0 and limiter.acquire("b") == 0


def test_two_replicas_share_the_limit_through_redis(sample_index: Settings, issuer: Issuer) -> None:
    require_redis()
    settings = limited(oidc(sample_index, issuer), cache_url=SecretStr(REDIS_URL))
    token = bearer(issuer.token(sub=f"caller-{uuid.uuid4().hex}"))
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        assert first.post("/v1/search", json=SEARCH, headers=token).status_code == 200
        assert second.post("/v1/search", json=SEARCH, headers=token).status_code == 200
        assert first.post("/v1/search", json=SEARCH, headers=token).status_code == 429
        assert second.post("/v1/search", json=SEARCH, headers=token).status_code == 429
        other = bearer(issuer.token(sub=f"other-{uuid.uuid4().hex}"))
        assert second.post("/v1/search", json=SEARCH, headers=other).status_code == 200


def test_oversized_bodies_are_413_declared_or_not(client: TestClient) -> None:
    assert client.post("/v1/search", content=b"x" * 70_000).status_code == 413
    chunked = iter([b'{"query": "', b"x" * 40_000, b"x" * 40_000, b'"}'])  # no Content-Length
    response = client.post("/v1/search", content=chunked)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body exceeds 65536 bytes"}
    just_under = {"query": "x" * 60_000}  # the limit is the body's, not the query's (422)
    assert client.post("/v1/search", json=just_under).status_code == 422


def test_responses_carry_security_headers(client: TestClient) -> None:
    headers = client.post("/v1/search", json=SEARCH).headers
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"


def test_cors_admits_only_configured_origins(sample_index: Settings) -> None:
    settings = sample_index.model_copy(update={"cors_origins": ["https://portal.example"]})
    preflight = {"Access-Control-Request-Method": "POST"}
    with TestClient(create_app(settings)) as client:
        allowed = client.options(
            "/v1/search", headers=preflight | {"Origin": "https://portal.example"}
        )
        other = client.options("/v1/search", headers=preflight | {"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://portal.example"
    assert "access-control-allow-origin" not in other.headers


def test_an_unexpected_error_shows_no_internals(
    sample_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(sample_index), raise_server_exceptions=False) as client:
        retriever = client.app.state.query_service.retriever  # type: ignore[attr-defined]

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk /srv/secret-volume unreadable")

        monkeypatch.setattr(retriever, "search", broken)
        response = client.post("/v1/search", json=SEARCH)
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
