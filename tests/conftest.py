import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag_assets.ingest import ingest_sources, local_instance
from rag_core import services
from rag_core.documents import add_sources
from rag_core.settings import Settings, get_settings

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "sample_corpus"
PORT_QUESTION = "Which port does the server listen on?"
PORT_DOCUMENT = "postgresql/runtime-config-connection.html"


@pytest.fixture
def rag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """An empty platform under a temporary RAG_HOME, also seen by code reading the env."""
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "rag"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def ingest(settings: Settings, *paths: Path) -> list[str]:
    """Copy paths into the store and index them in one run; returns new partition keys."""
    keys = add_sources(services.object_store(settings), paths)
    return ingest_sources(settings, local_instance(settings), keys)


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The sample corpus, indexed once for the whole session; tests must not modify it."""
    settings = Settings(home=tmp_path_factory.mktemp("sample") / "rag")
    ingest(settings, SAMPLE_CORPUS)
    return settings


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of a few sample documents, for tests that change files."""
    target = tmp_path / "corpus"
    (target / "pip").mkdir(parents=True)
    for name in ("pip/getting-started.md", "pip/authentication.md", "mosquitto-readme.md"):
        shutil.copy(SAMPLE_CORPUS / name, target / name)
    return target
