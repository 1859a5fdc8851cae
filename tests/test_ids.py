import pytest

from rag_core.domain import ids
from rag_core.domain.ids import (
    chunk_id_for,
    content_hash,
    doc_id_for,
    partition_key,
    split_partition_key,
    version_for,
)


def test_doc_id_is_stable_and_opaque() -> None:
    uri = "file:///data/documents/guide/install.html"
    assert doc_id_for(uri) == doc_id_for(uri)
    assert doc_id_for(uri) != doc_id_for(uri.replace("guide", "api"))
    assert "install" not in doc_id_for(uri)


def test_version_follows_content() -> None:
    assert version_for(b"one") == version_for(b"one")
    assert version_for(b"one") != version_for(b"two")


def test_a_new_pipeline_revision_makes_new_versions_but_keeps_the_content_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A parsing change reaches every document as a new version; tombstones of erased
    content, keyed by the content hash, still match."""
    before = version_for(b"one"), content_hash(b"one")
    monkeypatch.setattr(ids, "INDEX_REVISION", ids.INDEX_REVISION + "-next")
    assert version_for(b"one") != before[0]
    assert content_hash(b"one") == before[1]


def test_chunk_id_depends_on_doc_version_position_and_text() -> None:
    base = chunk_id_for("d", "v", 0, "text")
    assert base == chunk_id_for("d", "v", 0, "text")
    variants = {
        chunk_id_for("e", "v", 0, "text"),
        chunk_id_for("d", "w", 0, "text"),
        chunk_id_for("d", "v", 1, "text"),
        chunk_id_for("d", "v", 0, "other"),
    }
    assert base not in variants and len(variants) == 4


def test_partition_key_round_trip() -> None:
    key = partition_key("abc", "123")
    assert key == "abc@123"
    assert split_partition_key(key) == ("abc", "123")


@pytest.mark.parametrize("bad", ["", "abc", "@123", "abc@"])
def test_split_rejects_malformed_keys(bad: str) -> None:
    with pytest.raises(ValueError, match="partition key"):
        split_partition_key(bad)
