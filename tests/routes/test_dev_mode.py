"""Dev mode is one identity for every local caller: its rate limits must not stop a local
evaluation or load script, unless set explicitly."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_core.settings import Settings
from rag_serving.main import create_app

OLD_BURST = 30


def test_a_local_script_runs_past_the_old_burst_in_dev_mode(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(home=tmp_path / "rag"))) as client:
        codes = {client.get(f"/v1/erasure-requests/r{n}").status_code for n in range(3 * OLD_BURST)}
    assert codes == {404}  # never 429


def test_limits_set_explicitly_hold_in_dev_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_RATE_LIMIT_BURST", "2")
    settings = Settings(home=tmp_path / "rag", rate_limit_per_minute=1)
    assert (settings.rate_limit_burst, settings.rate_limit_per_minute) == (2, 1)
    with TestClient(create_app(settings)) as client:
        codes = [client.get(f"/v1/erasure-requests/r{n}").status_code for n in range(3)]
    assert codes == [404, 404, 429]


def test_oidc_mode_keeps_the_production_defaults() -> None:
    settings = Settings(auth_mode="oidc", oidc_issuer="https://id.example", oidc_audience="rag")
    assert (settings.rate_limit_burst, settings.rate_limit_per_minute) == (OLD_BURST, 120)
