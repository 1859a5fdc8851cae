"""OIDC on every route, with real tokens: RSA keys, a discovery document and a JWKS served
over HTTP on loopback, tokens signed with joserfc."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt

from rag_core.settings import Settings
from rag_serving.auth import ALGORITHMS, OIDCVerifier, Unauthenticated
from rag_serving.main import create_app
from routes.conftest import AUDIENCE, Issuer, bearer, oidc

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
        ({"exp": int(time.time()) - 120}, "The token is expired"),
        ({"aud": "someone-else"}, "Invalid claim: 'aud'"),
        ({"iss": "https://evil.example"}, "Invalid claim: 'iss'"),
        ({"nbf": int(time.time()) + 600}, "The token is not yet valid"),
        ({"sub": None}, "Missing claim: 'sub'"),
    ],
)
def test_bad_claims_are_401(api: TestClient, issuer: Issuer, claims: dict, reason: str) -> None:
    response = api.post("/v1/search", json=SEARCH, headers=bearer(issuer.token(**claims)))
    assert response.status_code == 401 and response.json()["detail"] == reason
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_a_missing_token_is_401(api: TestClient) -> None:
    response = api.post("/v1/search", json=SEARCH)
    assert response.status_code == 401 and "bearer token is required" in response.text
    assert response.headers["www-authenticate"] == "Bearer"  # no error code without a token


def test_a_missing_scope_is_403_and_names_it(api: TestClient, issuer: Issuer) -> None:
    token = issuer.token(scope="rag:ingest")
    response = api.post("/v1/search", json=SEARCH, headers=bearer(token))
    assert response.status_code == 403 and response.json()["detail"] == "missing scope rag:query"
    governance = api.get("/v1/audit", headers=bearer(issuer.token()))
    assert governance.status_code == 403 and "rag:governance" in governance.text
    assert api.get("/metrics", headers=bearer(issuer.token())).status_code == 403


def _forge(issuer: Issuer, alg: str, key: bytes = b"") -> str:
    """A token with the issuer's claims under header `alg`, HMAC-signed with `key` if any."""
    header = _b64(json.dumps({"alg": alg, "kid": "k1"}).encode())
    payload = issuer.token().split(".")[1]
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature) if key else ''}"


def test_an_unsigned_token_is_refused_by_the_allowlist(api: TestClient, issuer: Issuer) -> None:
    assert "none" not in ALGORITHMS
    response = api.post("/v1/search", json=SEARCH, headers=bearer(_forge(issuer, "none")))
    assert response.status_code == 401
    assert response.json()["detail"] == "Algorithm of 'none' is not allowed"


def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    api: TestClient, issuer: Issuer
) -> None:
    public_pem = issuer.keys["k1"].as_pem(private=False)
    forged = _forge(issuer, "HS256", public_pem)
    assert "HS256" not in ALGORITHMS
    response = api.post("/v1/search", json=SEARCH, headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["detail"] == "Algorithm of 'HS256' is not allowed"


def test_a_hostile_header_cannot_break_the_challenge(api: TestClient, issuer: Issuer) -> None:
    forged = _forge(issuer, 'RS256"\r\nSet-Cookie: x=1', b"k")
    response = api.post("/v1/search", json=SEARCH, headers=bearer(forged))
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert response.headers["www-authenticate"].count('"') == 4


def test_a_malformed_token_is_401(api: TestClient) -> None:
    response = api.post("/v1/search", json=SEARCH, headers=bearer("not-a-jwt"))
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid JSON Web Signature"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def own_issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.stop()


def verifier_for(issuer: Issuer, tmp_path: Path, clock: Clock) -> OIDCVerifier:
    settings = oidc(Settings(home=tmp_path / "rag", oidc_jwks_refetch_seconds=60), issuer)
    return OIDCVerifier(settings, clock=clock)


def test_unknown_key_ids_refetch_at_most_once_a_minute(own_issuer: Issuer, tmp_path: Path) -> None:
    clock = Clock()
    verifier = verifier_for(own_issuer, tmp_path, clock)
    assert verifier.verify(own_issuer.token()).subject == "alice"
    assert own_issuer.requests == 2  # discovery document and JWKS
    rotated = own_issuer.token(kid="k2")
    own_issuer.published.append("k2")  # the issuer rotates right after we fetched
    for _ in range(20):  # made-up or just-rotated key ids: no fetch within the minute
        with pytest.raises(Unauthenticated, match="no key of the issuer has the token's key id"):
            verifier.verify(rotated)
    assert own_issuer.requests == 2
    clock.now += 60
    assert verifier.verify(rotated).subject == "alice"
    assert own_issuer.requests == 4


def test_cached_keys_serve_while_the_issuer_is_down(own_issuer: Issuer, tmp_path: Path) -> None:
    clock = Clock()
    verifier = verifier_for(own_issuer, tmp_path, clock)
    token = own_issuer.token()
    verifier.verify(token)
    own_issuer.stop()
    clock.now += 7200  # past the cache lifetime: refetching fails, the old keys still verify
    assert verifier.verify(token).subject == "alice"
    assert verifier.verify(token).subject == "alice"


def test_a_discovery_document_must_name_the_configured_issuer(tmp_path: Path) -> None:
    impostor = Issuer(advertised="https://login.example")
    try:
        verifier = verifier_for(impostor, tmp_path, Clock())
        with pytest.raises(Unauthenticated, match="the issuer's keys could not be fetched"):
            verifier.verify(impostor.token())
        assert impostor.requests == 1  # the JWKS it names is never fetched
    finally:
        impostor.stop()


def test_health_stays_open_and_openapi_shows_the_scheme(api: TestClient) -> None:
    assert api.get("/healthz").status_code == 200
    schemes = api.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_oidc_mode_refuses_to_start_without_an_issuer() -> None:
    with pytest.raises(ValueError, match="RAG_OIDC_ISSUER"):
        Settings(auth_mode="oidc")


CLIENT_ID = "4s8ph5rk2ar6kq0d1ie1vc9p7r"
RESOURCE_SERVER = "https://rag.example.com"


def cognito_token(issuer: Issuer, **claims: object) -> str:
    """An access token shaped as Cognito issues them: no `aud`, the app client in `client_id`,
    each scope prefixed with its resource server's identifier. A claim given as None is left
    out."""
    now = int(time.time())
    payload = {
        "iss": issuer.url, "sub": "0c1b9a52-7d2e-4f4e-9a3c-2f6b1d8e5a10", "token_use": "access",
        "client_id": CLIENT_ID, "iat": now, "auth_time": now, "exp": now + 300,
        "scope": f"{RESOURCE_SERVER}/rag:query {RESOURCE_SERVER}/rag:ingest "
                 "https://other.example.com/rag:admin rag:governance aws.cognito.signin.user.admin",
        "cognito:groups": ["finance"],
    } | claims  # fmt: skip
    present = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, present, issuer.keys["k1"])


def cognito_verifier(issuer: Issuer, tmp_path: Path) -> OIDCVerifier:
    settings = oidc(Settings(home=tmp_path / "rag"), issuer).model_copy(
        update={
            "oidc_audience": CLIENT_ID,
            "oidc_audience_claim": "client_id",
            "oidc_scope_prefix": f"{RESOURCE_SERVER}/",
            "oidc_groups_claim": "cognito:groups",
        }
    )
    return OIDCVerifier(settings)


def test_cognito_access_tokens_grant_their_resource_servers_scopes_only(
    issuer: Issuer, tmp_path: Path
) -> None:
    principal = cognito_verifier(issuer, tmp_path).verify(cognito_token(issuer))
    # Another resource server's rag:admin and an unprefixed rag:governance grant nothing.
    assert principal.scopes == {"rag:query", "rag:ingest"}
    assert principal.groups == {"finance"}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"client_id": "another-app-client"}, "Invalid claim: 'client_id'"),
        # A Cognito ID token names its client in `aud` and has no `client_id`.
        ({"client_id": None, "aud": CLIENT_ID, "token_use": "id"}, "Missing claim: 'client_id'"),
    ],
)
def test_cognito_tokens_of_another_client_are_refused(
    issuer: Issuer, tmp_path: Path, claims: dict, reason: str
) -> None:
    verifier = cognito_verifier(issuer, tmp_path)
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(cognito_token(issuer, **claims))
    assert str(refused.value) == reason


def test_by_default_a_token_needs_an_audience(issuer: Issuer, tmp_path: Path) -> None:
    verifier = verifier_for(issuer, tmp_path, Clock())
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(cognito_token(issuer))
    assert str(refused.value) == "Missing claim: 'aud'"
    # ...and reads scopes as they are, prefixed ones included.
    scopes = verifier.verify(cognito_token(issuer, aud=AUDIENCE)).scopes
    assert {"rag:governance", f"{RESOURCE_SERVER}/rag:query"} <= scopes


def test_a_cognito_token_passes_the_routes_scope_checks(
    sample_index: Settings, issuer: Issuer
) -> None:
    settings = oidc(sample_index, issuer).model_copy(
        update={
            "oidc_audience": CLIENT_ID,
            "oidc_audience_claim": "client_id",
            "oidc_scope_prefix": f"{RESOURCE_SERVER}/",
        }
    )
    with TestClient(create_app(settings)) as client:
        search = client.post("/v1/search", json=SEARCH, headers=bearer(cognito_token(issuer)))
        assert search.status_code == 200 and search.json()["hits"]
        audit = client.get("/v1/audit", headers=bearer(cognito_token(issuer)))
        assert audit.status_code == 403 and audit.json()["detail"] == "missing scope rag:governance"
