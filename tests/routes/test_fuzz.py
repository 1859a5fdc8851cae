"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis), in OIDC
mode on a platform of its own (fuzzed uploads land in its object store): no 5xx with a token
granting every scope, and nothing but refusals without one."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from rag_core.settings import Settings
from rag_serving.auth import ALL_SCOPES
from rag_serving.main import create_app
from rag_serving.routes import erasure
from routes.conftest import Issuer, bearer, oidc

from conftest import SAMPLE_CORPUS, ingest

OPEN_PATHS = {"/livez", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"}


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Iterator[object]:
    platform = Settings(home=tmp_path_factory.mktemp("fuzz") / "rag", rate_limit_burst=10_000)
    ingest(platform, SAMPLE_CORPUS / "pip")
    app = create_app(oidc(platform, issuer))
    with pytest.MonkeyPatch.context() as patch, TestClient(app):  # TestClient: the lifespan
        # Accepted erasures are not carried out: they run after the response, so they cannot
        # change it, and a Dagster run each would take most of the time (test_erasure.py
        # covers them).
        patch.setattr(erasure, "carry_out", lambda settings, request_id: None)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


FUZZ = settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def fuzz(schema: Any, check: Callable[[schemathesis.Case], None]) -> int:
    """Run `check` on generated requests for every operation; returns the operations run."""
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        FUZZ(given(case=operation.as_strategy())(check))()
    return len(operations)


def test_no_request_makes_the_server_fail(fuzzed_api: Any, issuer: Issuer) -> None:
    token = bearer(issuer.token(scope=" ".join(sorted(ALL_SCOPES)), groups=["staff"]))

    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=token)
        assert response.status_code < 500, (case.path, response.text)

    assert fuzz(fuzzed_api, check) >= 7


def test_nothing_succeeds_without_a_token(fuzzed_api: Any) -> None:
    def check(case: schemathesis.Case) -> None:
        response = case.call()
        assert response.status_code < 500, (case.path, response.text)
        if case.path not in OPEN_PATHS:
            assert response.status_code in (401, 413), (case.path, response.status_code)

    fuzz(fuzzed_api, check)
