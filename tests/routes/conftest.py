import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from rag_assets.ingest import ingest_sources, local_instance
from rag_core import services
from rag_core.adapters.catalog import SourceMetadata, put_source
from rag_core.domain.ids import doc_id_for
from rag_core.settings import Settings
from rag_serving.main import create_app

AUDIENCE = "rag-api"
# A document only `finance` may read, the best match for SECRET_QUESTION.
SECRET = "BLUEHERON"
SECRET_QUESTION = "What is the codename of the acquisition?"
RESTRICTED_KEY = "documents/finance/deal.md"


@pytest.fixture(scope="module")
def client(sample_index: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sample_index)) as test_client:
        yield test_client


class Issuer:
    """An OIDC issuer on loopback: discovery document and JWKS over HTTP, tokens signed with
    real RSA keys (joserfc); keys can be rotated while it runs. `requests` counts the GETs;
    `advertised` makes the discovery document name another issuer."""

    def __init__(self, advertised: str | None = None) -> None:
        self.keys = {"k1": RSAKey.generate_key(2048, parameters={"kid": "k1"})}
        self.published = ["k1"]
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                documents = {
                    "/.well-known/openid-configuration": {
                        "issuer": advertised or issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                    },
                    "/jwks": {"keys": [issuer.keys[k].as_dict(private=False)
                                       for k in issuer.published]},
                }  # fmt: skip
                body = json.dumps(documents.get(self.path, {})).encode()
                self.send_response(200 if self.path in documents else 404)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def token(self, kid: str = "k1", header: dict | None = None, **claims: object) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now,
                   "exp": now + 300, "scope": "rag:query"} | claims  # fmt: skip
        key = self.keys.setdefault(kid, RSAKey.generate_key(2048, parameters={"kid": kid}))
        return jwt.encode({"alg": "RS256", "kid": kid} | (header or {}), payload, key)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def oidc(settings: Settings, issuer: Issuer) -> Settings:
    return settings.model_copy(
        update={"auth_mode": "oidc", "oidc_issuer": issuer.url, "oidc_audience": AUDIENCE}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def index_restricted_corpus(settings: Settings) -> str:
    """The finance-only deal beside a public page that shares its words, indexed; returns
    the deal's doc id."""
    store = services.object_store(settings)
    put_source(store, RESTRICTED_KEY,
               f"# Deal\n\nThe codename of the acquisition is {SECRET}; it closes in May.\n"
               .encode(), SourceMetadata(acl=["finance"]))  # fmt: skip
    put_source(store, "documents/handbook/lunch.md",
               b"# Lunch\n\nThe canteen serves lunch from noon; the acquisition of new "
               b"chairs is handled by facilities.\n")  # fmt: skip
    ingest_sources(settings, local_instance(settings))
    return doc_id_for(store.uri_for(RESTRICTED_KEY))
