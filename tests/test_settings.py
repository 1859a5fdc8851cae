from pathlib import Path

import pytest
from pydantic import ValidationError

from rag_core.settings import Settings


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
