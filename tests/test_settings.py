import json
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import dagster as dg
import pytest
from pydantic import SecretStr, ValidationError

from rag_assets.resources import RagResource
from rag_core.settings import Settings, variable

ROOT = Path(__file__).resolve().parents[1]
VARIABLES = {variable(name): name for name in Settings.model_fields}
# Enough for RAG_AUTH_MODE=oidc to be valid, so that every variable can be tried alone.
OIDC = {"RAG_OIDC_ISSUER": "https://issuer.example", "RAG_OIDC_AUDIENCE": "rag"}


def test_everything_defaults_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.object_store_uri == str(tmp_path / "objects")
    assert settings.index_uri == str(tmp_path / "lancedb")
    assert settings.warehouse_path == tmp_path / "warehouse.duckdb"
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.dagster_home == tmp_path / "dagster"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_HOME", str(tmp_path))
    monkeypatch.setenv("RAG_INDEX_URI", "s3://bucket/lancedb")
    monkeypatch.setenv("RAG_OBJECT_STORE_URI", "s3://bucket/objects")
    monkeypatch.setenv("RAG_CHUNK_SIZE", "500")
    monkeypatch.setenv("RAG_KEEP_VERSIONS", "3")
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.index_uri == "s3://bucket/lancedb"
    assert settings.object_store_uri == "s3://bucket/objects"
    assert (settings.chunk_size, settings.keep_versions) == (500, 3)
    assert settings.dagster_home == tmp_path / "dagster"


def test_relative_home_is_resolved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().home == tmp_path / ".rag"


@pytest.mark.parametrize(
    ("field", "value"),
    [("chunk_overlap", 1000), ("chunk_size", 10), ("keep_versions", 0)],
)
def test_invalid_values_are_rejected(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})  # type: ignore[arg-type]


def documented_variables() -> list[str]:
    """Every `RAG_*` variable the README and docs/ name; `RAG_X_*` stands for each variable
    starting with `RAG_X_` (or, when none does, for itself, to fail)."""
    names: set[str] = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in re.findall(r"RAG_[A-Z0-9_]+\*?", doc.read_text(encoding="utf-8")):
            if name.endswith("*"):
                family = {v for v in VARIABLES if v.startswith(name.removesuffix("*"))}
                names |= family or {name}
            else:
                names.add(name)
    return sorted(names)


def another_value(name: str, current: Any, folder: Path) -> str | None:
    """A valid value for a setting other than `current`, spelled as its variable would be;
    None when the setting allows no other."""
    annotation = Settings.model_fields[name].annotation
    if get_origin(annotation) is Literal:
        return next((str(choice) for choice in get_args(annotation) if choice != current), None)
    if current is None and bool in get_args(annotation):  # an unset flag: set it
        return "true"
    if current is None and int in get_args(annotation):  # an unset limit: set one
        return "100"
    if isinstance(current, bool):
        return str(not current)
    if isinstance(current, int):
        return str(current + 1)
    if isinstance(current, float):
        return str(current / 2 or 1.0)
    if isinstance(current, Path):
        return str(folder / name)
    if isinstance(current, list):
        return json.dumps(["another"])
    if isinstance(current, dict):
        return json.dumps({"another": next(iter(current.values()), "value")})
    return f"another-{name}"  # text, secrets, unset


@pytest.mark.parametrize("documented", documented_variables())
def test_every_documented_variable_is_read(
    documented: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert documented in VARIABLES, f"{documented} is documented but no setting reads it"
    name = VARIABLES[documented]
    for oidc_variable, value in OIDC.items():
        monkeypatch.setenv(oidc_variable, value)
    before = getattr(Settings(), name)
    value = another_value(name, before, tmp_path)
    if value is None:  # one allowed value: the variable is read if a wrong one is refused
        monkeypatch.setenv(documented, "not-a-choice")
        with pytest.raises(ValidationError, match=name):
            Settings()
        return
    monkeypatch.setenv(documented, value)
    assert getattr(Settings(), name) != before


def test_a_resource_for_settings_carries_them_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        chunk_size=700,
        kafka_client_config={"security.protocol": "SSL"},
        cors_origins=["https://app.example"],
        snowflake_password=SecretStr("given in code"),
    )
    for name in Settings.model_fields:  # the environment says otherwise everywhere
        monkeypatch.setenv(
            variable(name), another_value(name, getattr(settings, name), tmp_path) or ""
        )
    assert RagResource.for_settings(settings).settings() == settings


def test_secrets_stay_out_of_resource_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("rag_core.settings.resolve_reference", lambda reference: "resolved")
    monkeypatch.setenv("RAG_LLM_API_KEY", "from the environment")
    monkeypatch.setenv("RAG_COHERE_API_KEY", "aws-sm://rag/cohere#key")
    settings = Settings(home=tmp_path, cache_url=SecretStr("redis://:given-in-code@cache"))
    resource = RagResource.for_settings(settings)
    values = resource.settings_values

    llm_api_key = values["llm_api_key"]
    assert isinstance(llm_api_key, dg.EnvVar) and llm_api_key.env_var_name == "RAG_LLM_API_KEY"
    assert values["cohere_api_key"] == "aws-sm://rag/cohere#key"
    assert values["cache_url"] == "redis://:given-in-code@cache"  # nowhere else to read it
    assert resource.settings() == settings


def test_the_code_locations_resource_names_the_variables_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAG_HOME", str(tmp_path))
    monkeypatch.setenv("RAG_CHUNK_SIZE", "500")
    resource = RagResource.from_environment()
    named = {name: value.env_var_name for name, value in resource.settings_values.items()}
    assert {"home": "RAG_HOME", "chunk_size": "RAG_CHUNK_SIZE"}.items() <= named.items()
    assert resource.settings() == Settings()
