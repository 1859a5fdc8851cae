"""OIDC on every route, with real tokens: RSA keys, a discovery document and a JWKS served
over HTTP on loopback, tokens signed with joserfc."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import Issuer, bearer, oidc

SEARCH = {"query": "Which port does the server listen on?", "top_k": 1}


@pytest.fixture(scope="module")
def api(sample_index: Settings, issuer: Issuer) -> Iterator[TestClient]:
    with TestClient(create_app(oidc(sample_index, issuer))) as client:
        yield client


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_token_is_accepted(api: TestClient, issuer: Issuer) -> None:
    response = api.post("/v1/search", json=SEARCH, headers=bearer(issuer.token()))
    assert response.status_code == 200 and response.json()["hits"]


def test_scopes_may_come_as_a_list_claim(api: TestClient, issuer: Issuer) -> None:
    token = issuer.token(scope=None, scp=["rag:query"])
    assert api.post("/v1/search", json=SEARCH, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
    ],
)
def test_bad_claims_are_401(api: TestClient, issuer: Issuer, claims: dict, reason: str) -> None:
    response = api.post("/v1/search", json=SEARCH, headers=bearer(issuer.token(**claims)))
    assert response.status_code == 401 and reason in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_missing_token_is_401(api: TestClient) -> None:
    response = api.post("/v1/search", json=SEARCH)
    assert response.status_code == 401 and "bearer token is required" in response.text


def test_a_missing_scope_is_403_and_names_it(api: TestClient, issuer: Issuer) -> None:
    token = issuer.token(scope="rag:ingest")
    response = api.post("/v1/search", json=SEARCH, headers=bearer(token))
    assert response.status_code == 403 and response.json()["detail"] == "missing scope rag:query"
    governance = api.get("/v1/audit", headers=bearer(issuer.token()))
    assert governance.status_code == 403 and "rag:governance" in governance.text
    assert api.get("/metrics", headers=bearer(issuer.token())).status_code == 403


def test_an_unknown_key_is_refetched_after_rotation(api: TestClient, issuer: Issuer) -> None:
    token = issuer.token(kid="k2")
    assert api.post("/v1/search", json=SEARCH, headers=bearer(token)).status_code == 401
    issuer.published.append("k2")  # the issuer rotates: k2 is now in its JWKS
    assert api.post("/v1/search", json=SEARCH, headers=bearer(token)).status_code == 200


def test_unsigned_and_hmac_forged_tokens_are_401(api: TestClient, issuer: Issuer) -> None:
    claims = json.loads(base64.urlsafe_b64decode(issuer.token().split(".")[1] + "=="))
    payload = _b64(json.dumps(claims).encode())
    none_header = _b64(json.dumps({"alg": "none"}).encode())
    unsigned = f"{none_header}.{payload}."
    public_pem = issuer.keys["k1"].as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{_b64(signature)}"
    for token in (unsigned, forged, "not-a-jwt"):
        assert api.post("/v1/search", json=SEARCH, headers=bearer(token)).status_code == 401


def test_health_stays_open_and_openapi_shows_the_scheme(api: TestClient) -> None:
    assert api.get("/healthz").status_code == 200
    schemes = api.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_oidc_mode_refuses_to_start_without_an_issuer() -> None:
    with pytest.raises(ValueError, match="RAG_OIDC_ISSUER"):
        Settings(auth_mode="oidc")
