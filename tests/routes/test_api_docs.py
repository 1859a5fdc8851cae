"""The API docs (Swagger UI at /docs, ReDoc at /redoc) load nothing from the internet: their
JavaScript, CSS and icon are served by the API itself, without a token."""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import Issuer, oidc

ASSET_REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def api(sample_index: Settings, issuer: Issuer) -> Iterator[TestClient]:
    """An app that wants a token for its routes: the docs must stay open all the same."""
    with TestClient(create_app(oidc(sample_index, issuer))) as client:
        yield client


def _references(html: str) -> list[str]:
    return [src or url for src, url in ASSET_REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_only_assets_the_api_serves(api: TestClient, page: str) -> None:
    response = api.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", response.text), "nothing from a CDN or font host"
    assets = [ref for ref in _references(response.text) if ref != "/openapi.json"]
    assert any(ref.endswith(".js") for ref in assets)
    for asset in assets:
        served = api.get(asset)
        suffix = asset[asset.rindex(".") :]
        assert served.status_code == 200, asset
        assert CONTENT_TYPES[suffix] in served.headers["content-type"], asset
        assert served.headers["X-Content-Type-Options"] == "nosniff"  # so the type must be right
        assert len(served.content) > 1_000, asset


def test_swagger_ui_has_its_stylesheet_and_the_schema(api: TestClient) -> None:
    references = _references(api.get("/docs").text)
    assert any(ref.endswith(".css") for ref in references)
    assert "/openapi.json" in references
    assert api.get("/openapi.json").status_code == 200


def test_the_oauth2_redirect_page_swagger_ui_names_is_served(api: TestClient) -> None:
    html = api.get("/docs").text
    [redirect] = re.findall(r"oauth2RedirectUrl:\s*window\.location\.origin \+ '([^']+)'", html)
    assert api.get(redirect).status_code == 200
