"""The object store's exact and folder purges (erasure's only way to delete)."""

from pathlib import Path

from rag_core.adapters.objectstore import ObjectStore


def test_purging_a_gone_source_leaves_a_folder_of_the_same_name_alone(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    store.put("documents/guide/install.md", b"# Install")

    assert store.purge("documents/guide") == 0  # the erased source `documents/guide` is gone
    assert store.stored_versions("documents/guide") == 0
    assert store.exists("documents/guide/install.md")


def test_a_folder_purge_takes_everything_under_it(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    for key in ("raw/abc/v1", "raw/abc/v2", "raw/abcd/v1"):
        store.put(key, b"x")

    assert store.stored_versions("raw/abc", folder=True) == 2
    assert store.purge("raw/abc", folder=True) == 2
    assert [obj.key for obj in store.list("raw")] == ["raw/abcd/v1"]
