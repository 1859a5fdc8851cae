"""Hybrid retrieval on a small corpus built to separate what each ranking can find."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag_core import services
from rag_core.domain.schemas import Hit, SearchFilters
from rag_core.flows.retrieval import reciprocal_rank_fusion
from rag_core.settings import Settings

from conftest import ingest

SYNC_GUIDE = """# Calendar synchronisation

Shared calendars synchronise every five minutes with the server. Each device keeps a local copy
of recent events so that the calendar stays usable offline, and changes made offline are merged
when the device reconnects. Conflicting edits are resolved in favour of the most recent change,
and the older version is kept in the event history for thirty days. Recurring events are
expanded on the server, which keeps devices consistent even when their time zones differ. Very
large calendars are synchronised in pages of five hundred events; a page that fails to transfer
is retried later and shows as E4711Q in the device log until it succeeds.
"""
FACILITIES = """# Facilities

The cafeteria on the ground floor opens at eight in the morning and serves porridge, eggs and
coffee until half past ten.
"""


@pytest.fixture
def corpus(rag_home: Settings, tmp_path: Path) -> Settings:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "sync-guide.md").write_text(SYNC_GUIDE)
    (folder / "facilities.md").write_text(FACILITIES)
    for n, code in enumerate(["E4711", "E4711R", "E4712Q", "E4717Q"]):
        (folder / f"code-{n}.md").write_text(
            f"# Code {code}\n\nThe importer reports {code} when a file is rejected.\n"
        )
    (folder / "copy-a" / "policy.md").parent.mkdir()
    (folder / "copy-b").mkdir()
    policy = "# Travel policy\n\nBook trains rather than flights for journeys under four hours.\n"
    (folder / "copy-a" / "policy.md").write_text(policy)
    (folder / "copy-b" / "policy.md").write_text(policy)
    ingest(rag_home, folder)
    return rag_home


def _names(hits: list[Hit]) -> list[str]:
    return [hit.source_uri.split("/documents/")[1] for hit in hits]


def test_keyword_ranking_finds_an_exact_identifier_dense_misses(corpus: Settings) -> None:
    retriever = services.retriever(corpus)
    assert "sync-guide.md" not in _names(retriever.search("E4711Q", 3, mode="vector"))
    assert _names(retriever.search("E4711Q", 3, mode="keyword")) == ["sync-guide.md"]
    hybrid = retriever.search("E4711Q", 3, mode="hybrid")
    assert _names(hybrid)[0] == "sync-guide.md"
    assert hybrid[0].keyword_score and hybrid[0].vector_score is not None


def test_dense_ranking_finds_a_paraphrase_keywords_miss(corpus: Settings) -> None:
    retriever = services.retriever(corpus)
    question = "Where can I have breakfast?"
    assert retriever.search(question, 3, mode="keyword") == []
    assert _names(retriever.search(question, 3, mode="vector"))[0] == "facilities.md"
    assert _names(retriever.search(question, 3, mode="hybrid"))[0] == "facilities.md"


def test_identical_chunks_are_returned_once(corpus: Settings) -> None:
    names = _names(services.retriever(corpus).search("train or plane for short trips", 5))
    assert len([name for name in names if name.endswith("policy.md")]) == 1


def test_time_range_filter_is_applied_in_both_rankings(corpus: Settings) -> None:
    retriever = services.retriever(corpus)
    future = datetime.now(UTC) + timedelta(days=1)
    assert retriever.search("E4711Q", 3, SearchFilters(ingested_after=future)) == []
    assert retriever.search("E4711Q", 3, SearchFilters(ingested_before=future))


def test_reciprocal_rank_fusion_weights_ranks() -> None:
    fused = reciprocal_rank_fusion([(["a", "b"], 1.0), (["b", "c"], 2.0)], k=60)
    assert fused["b"] == pytest.approx(1 / 62 + 2 / 61)
    assert fused["c"] == pytest.approx(2 / 62)
    assert sorted(fused, key=fused.__getitem__, reverse=True) == ["b", "c", "a"]


def test_large_tables_get_an_ann_vector_index(
    rag_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_VECTOR_INDEX_MIN_ROWS", "5")
    settings = Settings()
    for n in range(8):
        (tmp_path / f"note-{n}.md").write_text(f"# Note {n}\n\nRoom {n} seats {n + 4} people.\n")
    ingest(settings, tmp_path)
    assert services.chunk_index(settings).has_vector_index()
    hits = services.retriever(settings).search("How many people fit in room 3?", 3)
    assert "note-3.md" in _names(hits)
