"""Cost profiles (`RAG_PROFILE`): each gives its settings, explicit settings beat them, the
extractive one never calls a model, and the API and `ragctl status` name the active one."""

import json
from pathlib import Path
from typing import get_args

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from rag_core import services
from rag_core.adapters.answering import ExtractiveAnswerer
from rag_core.adapters.processes import free_port
from rag_core.domain.schemas import QueryRequest, QueryResponse
from rag_core.profiles import PROFILES, ProfileName
from rag_core.settings import Settings, get_settings
from rag_serving.cli import app
from rag_serving.main import create_app

from conftest import PORT_QUESTION

# What a hosted profile needs from the user.
ENDPOINT = {"llm_base_url": "https://llm.example/v1", "llm_api_key": SecretStr("sk-test")}
FALLBACK_REASONS = ("unreachable", "timeout", "error")


def _profiled(name: str, home: Path, **given: object) -> Settings:
    endpoint = ENDPOINT if PROFILES[name].hosted else {}
    return Settings(**{"home": home, "profile": name, **endpoint, **given})  # type: ignore[arg-type]


def _fallbacks() -> float:
    return sum(
        REGISTRY.get_sample_value("rag_llm_fallbacks_total", {"reason": reason}) or 0.0
        for reason in FALLBACK_REASONS
    )


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def test_every_profile_is_a_choice_of_the_setting_and_gives_only_settings() -> None:
    assert set(PROFILES) == set(get_args(ProfileName))
    for profile in PROFILES.values():
        assert profile.settings().keys() <= Settings.model_fields.keys()


@pytest.mark.parametrize("name", list(PROFILES))
def test_a_profile_gives_its_settings(name: str, tmp_path: Path) -> None:
    settings = _profiled(name, tmp_path)
    for field, value in PROFILES[name].settings().items():
        assert getattr(settings, field) == value, field
    prompt_price, completion_price = settings.llm_prices[settings.llm_model]  # priced
    assert (prompt_price > 0 and completion_price > 0) == PROFILES[name].hosted


def test_the_profiles_differ_as_their_names_say(tmp_path: Path) -> None:
    default = Settings(home=tmp_path)
    extractive, local = _profiled("extractive", tmp_path), _profiled("local", tmp_path)
    economy, quality = _profiled("hosted-economy", tmp_path), _profiled("hosted-quality", tmp_path)
    assert default.profile == "local" and default == local
    assert (extractive.answerer, local.answerer) == ("extractive", "llm")
    assert (economy.llm_model, quality.llm_model) == ("gpt-4o-mini", "gpt-4o")
    assert quality.query_top_k > economy.query_top_k
    assert quality.llm_max_tokens > economy.llm_max_tokens
    assert economy.cache_ttl_seconds > local.cache_ttl_seconds  # a paid answer is kept longer
    economy_prices, quality_prices = (economy.llm_prices[economy.llm_model],
                                      quality.llm_prices[quality.llm_model])  # fmt: skip
    assert all(q > e for q, e in zip(quality_prices, economy_prices, strict=True))


def test_explicit_settings_beat_the_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAG_HOME", str(tmp_path))
    monkeypatch.setenv("RAG_PROFILE", "hosted-quality")
    monkeypatch.setenv("RAG_LLM_BASE_URL", "https://llm.example/v1")
    monkeypatch.setenv("RAG_LLM_API_KEY", "sk-test")
    monkeypatch.setenv("RAG_LLM_MAX_TOKENS", "123")
    settings = Settings()
    assert settings.llm_max_tokens == 123  # the environment's
    assert (settings.llm_model, settings.query_top_k) == ("gpt-4o", 8)  # the profile's

    assert Settings(query_top_k=3).query_top_k == 3  # given in code
    dotenv = tmp_path / ".env"
    dotenv.write_text("RAG_CACHE_TTL_SECONDS=60\n")
    from_file = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    assert (from_file.cache_ttl_seconds, from_file.llm_max_tokens) == (60, 123)

    monkeypatch.setenv("RAG_PROFILE", "extractive")
    monkeypatch.setenv("RAG_ANSWERER", "llm")
    assert Settings().answerer == "llm"


def test_a_request_without_top_k_takes_the_given_default() -> None:
    assert QueryRequest(question="q").with_default_top_k(8).top_k == 8
    assert QueryRequest(question="q", top_k=5).with_default_top_k(8).top_k == 5  # named: kept


def test_an_unknown_profile_is_refused_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAG_PROFILE", "cheapest")
    with pytest.raises(ValidationError, match="profile") as refused:
        Settings(home=tmp_path)
    assert all(name in str(refused.value) for name in PROFILES)


def test_a_hosted_profile_needs_an_endpoint_and_its_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="RAG_LLM_BASE_URL and RAG_LLM_API_KEY"):
        Settings(home=tmp_path, profile="hosted-economy")
    with pytest.raises(ValidationError, match="RAG_LLM_BASE_URL and RAG_LLM_API_KEY"):
        Settings(home=tmp_path, profile="hosted-economy", llm_base_url="https://llm.example/v1")


def test_the_extractive_profile_never_calls_the_model(sample_index: Settings) -> None:
    url = _closed_port_url()
    extractive = services.query_service(
        Settings(home=sample_index.home, profile="extractive", llm_base_url=url)
    )
    before = _fallbacks()
    response = extractive.query(QueryRequest(question=PORT_QUESTION), use_cache=False)
    assert isinstance(extractive.answerer, ExtractiveAnswerer)
    assert response.generator == "extractive" and response.citations
    assert _fallbacks() == before  # no model was tried

    # The same endpoint under the local profile is tried, fails and is counted.
    local = services.query_service(Settings(home=sample_index.home, llm_base_url=url))
    local.query(QueryRequest(question=PORT_QUESTION), use_cache=False)
    assert _fallbacks() == before + 1


def test_readiness_does_not_wait_on_a_model_the_profile_never_calls(
    sample_index: Settings, tmp_path: Path
) -> None:
    settings = Settings(home=sample_index.home, cache_dir=tmp_path / "cache", profile="extractive",
                        llm_base_url=_closed_port_url())  # fmt: skip
    with TestClient(create_app(settings)) as client:
        report = client.get("/readyz").json()
    assert "llm" not in report["dependencies"], report


def test_the_api_names_the_profile_and_applies_its_top_k(
    sample_index: Settings, tmp_path: Path
) -> None:
    settings = Settings(home=sample_index.home, cache_dir=tmp_path / "cache", profile="extractive",
                        query_top_k=2)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        dump = client.get("/v1/admin/settings").json()
        assert dump["profile"] == dump["answerer"] == "extractive" and dump["query_top_k"] == 2
        assert client.get("/v1/status").json()["profile"] == "extractive"
        assert 'rag_profile_info{profile="extractive"} 1.0' in client.get("/metrics").text

        # A query without top_k is the query with the profile's: the second is its cache hit.
        named = client.post("/v1/query", json={"question": PORT_QUESTION, "top_k": 2}).json()
        unnamed = client.post("/v1/query", json={"question": PORT_QUESTION}).json()
        assert not named["cached"] and unnamed["cached"]
        other = client.post("/v1/query", json={"question": PORT_QUESTION, "top_k": 5}).json()
        assert not other["cached"]


def test_every_caller_of_the_query_service_gets_the_profiles_top_k(
    sample_index: Settings, tmp_path: Path
) -> None:
    """Not only the API: the evaluation runner, `ragctl ask` and the MCP tools ask the
    service directly."""
    settings = Settings(home=sample_index.home, cache_dir=tmp_path / "cache", profile="extractive",
                        query_top_k=2)  # fmt: skip
    service = services.query_service(settings)
    assert not service.query(QueryRequest(question=PORT_QUESTION, top_k=2)).cached
    assert service.query(QueryRequest(question=PORT_QUESTION)).cached
    *_, streamed = service.stream(QueryRequest(question=PORT_QUESTION))
    assert isinstance(streamed, QueryResponse) and streamed.cached


def test_ragctl_status_names_the_profile(
    sample_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_HOME", str(sample_index.home))
    monkeypatch.setenv("RAG_PROFILE", "extractive")
    monkeypatch.setenv("RAG_CLI_USE_API", "false")
    monkeypatch.setenv("COLUMNS", "160")
    get_settings.cache_clear()
    try:
        listed = CliRunner().invoke(app, ["status", "--json"])
        table = CliRunner().invoke(app, ["status"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["profile"] == "extractive"
    assert table.exit_code == 0 and "profile" in table.stdout and "extractive" in table.stdout
