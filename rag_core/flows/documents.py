"""Looking documents up: from the opaque id Dagster shows (a partition key's `doc_id`) to
where a document comes from, its title, versions, chunks and access, and back from part of
a name to the id.

Nothing here is written anywhere: it reads the catalog (manifests, parse failures) and the
chunk store as they are, so a document erased is unknown at once. A caller sees only what
their groups may read, as in a search; a document they may not read is as unknown to them
as one that never existed.
"""

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from rag_core.adapters.catalog import all_manifests, known_versions, read_manifest
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.chunk_store import EVERY_DOCUMENT, ChunkStore, DocumentSelector, Groups
from rag_core.domain.documents import DocumentVersion
from rag_core.domain.layout import SOURCES_PREFIX, Artifact, artifact_key
from rag_core.domain.parsing import ParsedDocument
from rag_core.domain.schemas import (
    DocumentAccess,
    DocumentDetails,
    DocumentList,
    DocumentSummary,
    DocumentVersionView,
    ParseStatus,
)

DOC_ID = re.compile(r"[0-9a-f]{32}")  # `ids.doc_id_for`
ROW_COLUMNS = ["doc_id", "version", "title", "source_uri", "acl", "subjects", "ingested_at"]
CHUNK_COLUMNS = ["chunk_id", "doc_id", "version", "position", "title", "section", "page", "text"]


class ChunkText(BaseModel):
    """A chunk as indexed: where it sits in its document, and its text."""

    chunk_id: str
    doc_id: str
    version: str
    position: int
    title: str
    section: str
    page: int | None
    text: str


class DocumentText(BaseModel):
    doc_id: str
    version: str = Field(description="The newest indexed version, whose text this is.")
    title: str
    source_uri: str
    text: str


class SourceSummary(BaseModel):
    folder: str = Field(description="First folder of the source key (`warehouse/<model>`).")
    documents: int
    chunks: int = Field(description="Chunks in the index, every version.")
    newest_version_at: datetime = Field(description="When the newest version was discovered.")


def document_url(api_url: str, doc_id: str) -> str:
    """Where a person looks a document up by id (`GET /v1/documents/{doc_id}`): a link that
    names nothing itself, so it may go where names must not, into Dagster's history."""
    return f"{api_url.rstrip('/')}/v1/documents/{doc_id}"


def may_read(acl: Sequence[str], groups: Groups) -> bool:
    """What a search lets through: public documents (empty acl) and those sharing one of the
    caller's groups; `None` (dev mode, the local CLI) reads everything."""
    return groups is None or not acl or not groups.isdisjoint(acl)


@dataclass(frozen=True)
class _Document:
    """What the catalog and the index hold about one document (at least one of the two)."""

    doc_id: str
    manifests: list[DocumentVersion]  # newest first
    rows: list[dict[str, Any]]  # its chunks, `ROW_COLUMNS`

    def readable_by(self, groups: Groups) -> bool:
        """Every acl it carries must let the caller in: while an access change reaches the
        rows, manifests and rows may disagree, and the stricter one wins."""
        acls = [m.acl for m in self.manifests] + [row["acl"] or [] for row in self.rows]
        return all(may_read(acl, groups) for acl in acls)

    def matches(self, needle: str) -> bool:
        """Whether the casefolded `needle` is part of its source key or title."""
        names = (self.source_key or self.source_uri, self.title or "")
        return any(needle in name.casefold() for name in names)

    @property
    def chunk_counts(self) -> Counter[str]:
        return Counter(row["version"] for row in self.rows)

    @property
    def newest_row(self) -> dict[str, Any] | None:
        return max(self.rows, key=lambda row: row["ingested_at"], default=None)

    @property
    def source_key(self) -> str | None:
        return self.manifests[0].source_key if self.manifests else None

    @property
    def source_uri(self) -> str:
        return self.manifests[0].source_uri if self.manifests else self.rows[0]["source_uri"]

    @property
    def title(self) -> str | None:
        newest = self.newest_row
        return None if newest is None else newest["title"]

    @property
    def access(self) -> DocumentAccess:
        if self.manifests:
            return DocumentAccess(acl=self.manifests[0].acl, subjects=self.manifests[0].subjects)
        row = self.rows[0]
        return DocumentAccess(acl=row["acl"] or [], subjects=row["subjects"] or [])

    def summary(self) -> DocumentSummary:
        latest, discovered_at, _ = self.versions()[0]
        return DocumentSummary(
            doc_id=self.doc_id,
            source_key=self.source_key,
            source_uri=self.source_uri,
            title=self.title,
            chunks=len(self.rows),
            latest_version=latest,
            discovered_at=discovered_at,
        )

    def versions(self) -> list[tuple[str, datetime, int | None]]:
        """(version, discovered at, size) of each version, newest first; a version left in
        the index without its manifest has no known size."""
        known: dict[str, tuple[datetime, int | None]] = {
            m.version: (m.discovered_at, m.size) for m in self.manifests
        }
        for row in self.rows:
            known.setdefault(row["version"], (row["ingested_at"], None))
        ordered = sorted(known.items(), key=lambda item: item[1][0], reverse=True)
        return [(version, discovered_at, size) for version, (discovered_at, size) in ordered]


def _document(
    doc_id: str, manifests: Iterable[DocumentVersion], rows: list[dict[str, Any]]
) -> _Document | None:
    newest_first = sorted(manifests, key=lambda m: m.discovered_at, reverse=True)
    if not newest_first and not rows:
        return None
    return _Document(doc_id, newest_first, rows)


class DocumentLookup:
    def __init__(self, store: ObjectStore, index: ChunkStore):
        self.store = store
        self.index = index

    def describe(self, doc_id: str, groups: Groups = None) -> DocumentDetails | None:
        """Everything about a document, or None when it is unknown, erased, or not readable
        by `groups`."""
        document = self._readable_document(doc_id, groups)
        if document is None:
            return None
        counts = document.chunk_counts
        versions = [
            self._version_view(doc_id, version, discovered_at, size, counts[version])
            for version, discovered_at, size in document.versions()
        ]
        return DocumentDetails(
            **document.summary().model_dump(), versions=versions, access=document.access
        )

    def read(self, doc_id: str, groups: Groups = None) -> DocumentText | None:
        """The text of the document's newest indexed version as parsed (whole, without the
        overlap its chunks repeat), or None when it is unknown, erased, not readable by
        `groups`, or has no indexed version."""
        document = self._readable_document(doc_id, groups)
        newest = None if document is None else document.newest_row
        if document is None or newest is None:
            return None
        key = artifact_key(Artifact.PARSED, doc_id, newest["version"])
        try:
            parsed = ParsedDocument.model_validate_json(self.store.get(key))
        except FileNotFoundError:
            return None  # erased since the rows were read
        return DocumentText(
            doc_id=doc_id,
            version=newest["version"],
            title=newest["title"],
            source_uri=document.source_uri,
            text="\n\n".join(element.text for element in parsed.elements),
        )

    def chunk(self, doc_id: str, chunk_id: str, groups: Groups = None) -> ChunkText | None:
        """One chunk of the document as indexed, or None when either is unknown, erased, or
        the document is not readable by `groups`."""
        if self._readable_document(doc_id, groups) is None:
            return None
        rows = self.index.rows(DocumentSelector(doc_ids=(doc_id,)), CHUNK_COLUMNS)
        found = [row for row in rows if row["chunk_id"] == chunk_id]
        return ChunkText.model_validate(found[0]) if found else None

    def sources(self, groups: Groups = None) -> list[SourceSummary]:
        """What `groups` may read, by source folder (the first segment of the source key,
        `warehouse/<model>` for warehouse rows): documents, chunks, and the newest version."""
        folders: defaultdict[str, list[_Document]] = defaultdict(list)
        for document in self._readable(groups):
            folders[_folder(document.source_key or document.source_uri)].append(document)
        return [
            SourceSummary(
                folder=folder,
                documents=len(documents),
                chunks=sum(len(d.rows) for d in documents),
                newest_version_at=max(d.versions()[0][1] for d in documents),
            )
            for folder, documents in sorted(folders.items())
        ]

    def _readable_document(self, doc_id: str, groups: Groups) -> _Document | None:
        if not DOC_ID.fullmatch(doc_id):
            return None
        rows = self.index.rows(DocumentSelector(doc_ids=(doc_id,)), ROW_COLUMNS)
        document = _document(doc_id, self._manifests_of(doc_id), rows)
        if document is None or not document.readable_by(groups):
            return None
        return document

    def find(
        self, name: str, groups: Groups = None, limit: int = 50, offset: int = 0
    ) -> DocumentList:
        """The documents `groups` may read whose source key or title holds `name` (any case)."""
        needle = name.casefold()
        return _page([d for d in self._readable(groups) if d.matches(needle)], limit, offset)

    def _manifests_of(self, doc_id: str) -> list[DocumentVersion]:
        manifests = []
        for version in known_versions(self.store, doc_id):
            try:
                manifests.append(read_manifest(self.store, doc_id, version))
            except FileNotFoundError:
                continue  # retired since it was listed
        return manifests

    def _readable(self, groups: Groups) -> list[_Document]:
        manifests: defaultdict[str, list[DocumentVersion]] = defaultdict(list)
        for manifest in all_manifests(self.store):
            manifests[manifest.doc_id].append(manifest)
        rows: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.index.rows(EVERY_DOCUMENT, ROW_COLUMNS):
            rows[row["doc_id"]].append(row)
        documents = [
            document
            for doc_id in manifests.keys() | rows.keys()
            if (document := _document(doc_id, manifests[doc_id], rows[doc_id])) is not None
            and document.readable_by(groups)
        ]
        return sorted(documents, key=lambda d: (d.source_key or d.source_uri, d.doc_id))

    def _version_view(
        self, doc_id: str, version: str, discovered_at: datetime, size: int | None, chunks: int
    ) -> DocumentVersionView:
        reason = self._failure_reason(doc_id, version)
        status: ParseStatus = "pending"
        if reason is not None:
            status = "failed"
        elif chunks or self.store.exists(artifact_key(Artifact.PARSED, doc_id, version)):
            status = "parsed"
        return DocumentVersionView(
            version=version,
            discovered_at=discovered_at,
            size=size,
            chunks=chunks,
            parse_status=status,
            failure_reason=reason,
        )

    def _failure_reason(self, doc_id: str, version: str) -> str | None:
        try:
            failure = json.loads(self.store.get(artifact_key(Artifact.FAILURE, doc_id, version)))
        except FileNotFoundError:
            return None
        return str(failure.get("reason") or "unknown")

    # Last: in the class body after it, `list` names this method, not the builtin.
    def list(self, groups: Groups = None, limit: int = 50, offset: int = 0) -> DocumentList:
        """The documents `groups` may read, by source key."""
        return _page(self._readable(groups), limit, offset)


def _folder(source: str) -> str:
    """`postgresql` for `documents/postgresql/x.html`, `warehouse/tickets` for a warehouse
    row's document; a document at the top of `documents/` is in the folder `.`."""
    parts = source.removeprefix(f"{SOURCES_PREFIX}/").split("/")
    depth = 2 if parts[0] == "warehouse" else 1
    return "/".join(parts[:depth]) if len(parts) > depth else "."


def _page(documents: list[_Document], limit: int, offset: int) -> DocumentList:
    return DocumentList(
        documents=[d.summary() for d in documents[offset : offset + limit]], total=len(documents)
    )
