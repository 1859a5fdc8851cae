"""The document catalog, kept in the object store: sources and their access sidecars, the
manifest of every document version discovered, and the artifacts the stages derive from
them (keys from `domain.layout`)."""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.documents import (
    DocumentVersion,
    InvalidSourceKey,
    SourceMetadata,
    check_source_key,
    is_source,
)
from rag_core.domain.ids import content_hash, doc_id_for, version_for
from rag_core.domain.layout import (
    METADATA_SUFFIX,
    SOURCES_PREFIX,
    Artifact,
    artifact_folder,
    artifact_key,
    artifact_version,
    metadata_key,
    source_key,
    tombstone_key,
)


def put_source(
    store: ObjectStore, key: str, content: bytes, metadata: SourceMetadata | None = None
) -> None:
    """Write a source and its sidecar (removing a stale sidecar when there is no metadata)."""
    if metadata is None:
        store.delete(metadata_key(key))
    else:
        store.put(metadata_key(key), metadata.model_dump_json().encode())
    store.put(key, content)


def delete_source(store: ObjectStore, key: str) -> None:
    store.delete(key)
    store.delete(metadata_key(key))


def read_source(store: ObjectStore, key: str) -> tuple[bytes, SourceMetadata] | None:
    """A source's bytes and metadata, or None when it is gone."""
    try:
        content = store.get(key)
    except FileNotFoundError:
        return None
    sidecar = metadata_key(key)
    metadata = (
        SourceMetadata.model_validate_json(store.get(sidecar))
        if store.exists(sidecar)
        else SourceMetadata()
    )
    return content, metadata


def source_keys(store: ObjectStore) -> list[str]:
    """Every source in the store (sidecars left out)."""
    return [obj.key for obj in store.list(SOURCES_PREFIX) if is_source(obj.key)]


def plan_sources(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(file, source key) for files and folders (recursively) to add to the store; access
    sidecars (`*.meta.json`) are not sources, `sidecar_of` finds them.

    A file keeps its path relative to the folder it was given from, so `guide/install.html`
    stays distinguishable from `api/install.html`. A file whose key `check_source_key`
    refuses raises `InvalidSourceKey` before anything is copied.
    """
    planned = []
    for path in paths:
        path = path.expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        base = path if path.is_dir() else path.parent
        planned += [
            (file, _checked_key(file, source_key(file.relative_to(base).as_posix())))
            for file in files
            if not file.name.endswith(METADATA_SUFFIX)
        ]
    return planned


def _checked_key(file: Path, key: str) -> str:
    try:
        return check_source_key(key)
    except InvalidSourceKey as refused:
        raise InvalidSourceKey(f"{file}: {refused}") from refused


def sidecar_of(file: Path) -> SourceMetadata | None:
    """The access metadata in the `<file>.meta.json` beside a file, if there is one; a
    ValueError naming it when it is not valid."""
    sidecar = file.with_name(file.name + METADATA_SUFFIX)
    if not sidecar.is_file():
        return None
    try:
        return SourceMetadata.model_validate_json(sidecar.read_bytes())
    except ValidationError as invalid:
        reason = invalid.errors()[0]["msg"]
        raise ValueError(f"{sidecar}: not a valid access sidecar ({reason})") from None


def add_sources(
    store: ObjectStore,
    paths: Iterable[Path],
    progress: Callable[[list[tuple[Path, str]]], Iterable[tuple[Path, str]]] = iter,
) -> list[str]:
    """Copy files into the store's sources (through `progress`, e.g. a progress bar), each
    with the sidecar found beside it as its own, so its acl applies (a source without one
    keeps whatever sidecar the store has: copying must never make a document public);
    returns the keys of the sources written."""
    planned = plan_sources(paths)
    access = {file: sidecar_of(file) for file, _ in planned}  # an invalid one stops all
    for file, key in progress(planned):
        metadata = access[file]
        if metadata is None:
            store.put(key, file.read_bytes())
        else:
            put_source(store, key, file.read_bytes(), metadata)
    return [key for _, key in planned]


def read_manifest(store: ObjectStore, doc_id: str, version: str) -> DocumentVersion:
    return DocumentVersion.model_validate_json(
        store.get(artifact_key(Artifact.MANIFEST, doc_id, version))
    )


def all_manifests(store: ObjectStore) -> list[DocumentVersion]:
    """The manifest of every version discovered and not yet retired: what the pipeline
    knows, whether or not the source is still there."""
    return [
        DocumentVersion.model_validate_json(store.get(obj.key))
        for obj in store.list(Artifact.MANIFEST)
    ]


def manifest_source_keys(store: ObjectStore) -> set[str]:
    """The sources of every version with a manifest."""
    return {manifest.source_key for manifest in all_manifests(store)}


def known_versions(store: ObjectStore, doc_id: str) -> list[str]:
    """Versions of a document that still have a manifest."""
    manifests = store.list(artifact_folder(Artifact.MANIFEST, doc_id))
    return [artifact_version(obj.key) for obj in manifests]


def discover(store: ObjectStore, keys: Iterable[str] | None = None) -> list[DocumentVersion]:
    """The current version of every source (or of those of `keys` that still exist), writing
    manifests for new ones; content erased on request (tombstoned) is skipped.

    A version is its content alone, so a source whose acl or subjects changed keeps its
    version: its manifests take the new metadata, and the index rows follow
    (`pipeline.update_access`) without parsing or embedding anything again. Keys that do
    not name a source (`is_source`: sidecars among them) are skipped, listed or given."""
    if keys is None:
        keys = source_keys(store)
    versions = []
    for key in filter(is_source, keys):
        source = read_source(store, key)
        if source is not None and not store.exists(tombstone_key(content_hash(source[0]))):
            versions.append(_current_manifest(store, key, *source))
    return versions


def _current_manifest(
    store: ObjectStore, key: str, content: bytes, metadata: SourceMetadata
) -> DocumentVersion:
    source_uri = store.uri_for(key)
    doc_id, version = doc_id_for(source_uri), version_for(content)
    if store.exists(artifact_key(Artifact.MANIFEST, doc_id, version)):
        manifest = read_manifest(store, doc_id, version)
        if manifest.metadata == metadata:
            return manifest
        return _update_metadata(store, manifest, metadata)
    manifest = DocumentVersion(
        doc_id=doc_id,
        version=version,
        source_key=key,
        source_uri=source_uri,
        size=len(content),
        discovered_at=datetime.now(UTC),
        acl=metadata.acl,
        subjects=metadata.subjects,
    )
    _write_manifest(store, manifest)
    return manifest


def _update_metadata(
    store: ObjectStore, current: DocumentVersion, metadata: SourceMetadata
) -> DocumentVersion:
    """Give every known version of a document the source's new acl and subjects (so a rerun
    of an older partition, or erasure by subject, sees them too), the current one last: a
    crash midway leaves it stale, and the next discovery finishes the job."""
    for version in known_versions(store, current.doc_id):
        if version != current.version:
            _with_metadata(store, read_manifest(store, current.doc_id, version), metadata)
    return _with_metadata(store, current, metadata)


def _with_metadata(
    store: ObjectStore, manifest: DocumentVersion, metadata: SourceMetadata
) -> DocumentVersion:
    if manifest.metadata == metadata:
        return manifest
    updated = manifest.model_copy(update=metadata.model_dump())
    _write_manifest(store, updated)
    return updated


def _write_manifest(store: ObjectStore, manifest: DocumentVersion) -> None:
    store.put(
        artifact_key(Artifact.MANIFEST, manifest.doc_id, manifest.version),
        manifest.model_dump_json().encode(),
    )


def capture_raw(store: ObjectStore, manifest: DocumentVersion) -> bool:
    """Copy the version's bytes to `raw/`; False when the source no longer holds that version."""
    raw_key = artifact_key(Artifact.RAW, manifest.doc_id, manifest.version)
    if store.exists(raw_key):
        return True
    source = read_source(store, manifest.source_key)
    if source is None or version_for(source[0]) != manifest.version:
        return False
    store.put(raw_key, source[0])
    return True


def remove_artifacts(store: ObjectStore, doc_id: str, version: str) -> None:
    """Delete everything the pipeline derived from one version (used when it is retired)."""
    for artifact in reversed(Artifact):
        store.delete(artifact_key(artifact, doc_id, version))
