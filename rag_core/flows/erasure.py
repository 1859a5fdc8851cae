"""Right to be forgotten: erase documents by id, by source prefix or by data subject, from
everywhere the pipeline put them, then prove it and audit it.

A request is resolved once into a target (document ids, their sources, warehouse rows, the
chunk ids answers were built from) that is saved with the request, so a run that stops part
way resumes the same work. Stages are erased serving end first (index, caches, then the
artifacts back to the raw bytes and the source), each step idempotent. Erased content is
tombstoned by hash so a replayed event cannot bring it back; only a readmission names the
request whose tombstones to lift. Deleting is erasing: the disk response cache zeroes and
checkpoints what it deletes, the sync bookmark forgets the sources, and verification reads
the bytes of those files, not only their entries. The request is complete only once
verification (the `rtbf` job's asset check) finds nothing left; the audit record, written
for completed and failed requests alike, holds counts and hashes, never the erased content
or the subject's identifier. A caller that must ask for consent first shows `preview` (what
the scope covers now, nothing erased) and hands out a confirm token (`offer_consent`) to be
redeemed once, for that scope and caller, before it submits (`redeem_consent`).
"""

import contextlib
import json
import secrets
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rag_core.adapters import audit
from rag_core.adapters.cache import ResponseCache, entries_naming
from rag_core.adapters.catalog import all_manifests, source_keys
from rag_core.adapters.embedding import forget_query_embeddings
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.chunk_store import ChunkStore, DocumentSelector, TaggedVersionsError
from rag_core.domain.documents import is_source, normalize_subject
from rag_core.domain.ids import content_hash, digest, doc_id_for
from rag_core.domain.layout import (
    ERASURE_PREFIX,
    STAGE_ARTIFACTS,
    STATE_PREFIX,
    TOMBSTONES_PREFIX,
    Artifact,
    Stage,
    artifact_folder,
    consent_key,
    erasure_request_key,
    metadata_key,
    tombstone_key,
)
from rag_core.flows.pipeline import ChunkSet
from rag_core.flows.sync import forget_sources
from rag_core.settings import Settings
from rag_core.sources import warehouse

SCAN_BLOCK_BYTES = 1 << 24
PHRASE_WORDS = 8
# How long a preview's confirm token may be redeemed.
CONSENT_TTL = timedelta(minutes=10)


class ErasureScope(BaseModel):
    """What to erase: exactly one of documents, a source URI prefix, or a data subject."""

    model_config = ConfigDict(extra="forbid")

    doc_ids: list[str] = Field(default_factory=list, max_length=1000)
    source_prefix: str | None = Field(default=None, min_length=1, max_length=2000)
    subject: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("subject")
    @classmethod
    def _normalized(cls, subject: str | None) -> str | None:
        if subject is not None and not normalize_subject(subject):
            raise ValueError("subject is blank")
        return None if subject is None else normalize_subject(subject)

    @model_validator(mode="after")
    def _exactly_one(self) -> "ErasureScope":
        given = [bool(self.doc_ids), self.source_prefix is not None, self.subject is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of doc_ids, source_prefix or subject")
        return self

    def redacted(self) -> dict[str, object]:
        """The scope as the audit trail keeps it: document ids (opaque hashes) as they are,
        a prefix or a subject only as its hash."""
        if self.doc_ids:
            return {"doc_ids": sorted(self.doc_ids)}
        kind, value = (
            ("source_prefix", self.source_prefix)
            if self.source_prefix is not None
            else ("subject", self.subject)
        )
        return {f"{kind}_sha256": digest(value or "", length=64)}


class ErasureTarget(BaseModel):
    doc_ids: list[str] = Field(default_factory=list)
    source_keys: list[str] = Field(default_factory=list)
    warehouse_rows: dict[str, list[str]] = Field(default_factory=dict)
    chunk_ids: list[str] = Field(default_factory=list)
    partitions: list[str] = Field(default_factory=list)  # doc_id@version, for Dagster


Status = Literal["pending", "running", "completed", "failed"]


class ErasureStatus(BaseModel):
    """What a request did, as the API and the CLI show it (no scope, no target)."""

    request_id: str
    redacted_scope: dict[str, object]
    requested_by: str
    requested_at: datetime
    status: "Status"
    matched_documents: int = 0
    erased: dict[str, int] = Field(default_factory=dict)
    verification: dict[str, bool] = Field(default_factory=dict)
    untagged_versions: list[str] = Field(default_factory=list)
    error: str | None = None
    completed_at: datetime | None = None


class NewErasureRequest(ErasureScope):
    untag_versions: bool = Field(
        default=False, description="Remove tags that keep old table versions (recorded)."
    )


class ErasureRequest(ErasureStatus):
    """The stored request: its status, and what only the erasure itself may read."""

    scope: ErasureScope | None  # dropped once completed: it may name the person
    untag_versions: bool = False
    status: Status = "pending"
    target: ErasureTarget | None = None

    def view(self) -> ErasureStatus:
        return ErasureStatus.model_validate(self.model_dump(exclude={"scope", "target"}))


def save(store: ObjectStore, request: ErasureRequest) -> None:
    store.put(erasure_request_key(request.request_id), request.model_dump_json().encode())


def load(store: ObjectStore, request_id: str) -> ErasureRequest | None:
    key = erasure_request_key(request_id)
    if not store.exists(key):
        return None
    return ErasureRequest.model_validate_json(store.get(key))


@dataclass(frozen=True)
class ErasureOverview:
    """The erasure requests of a store as the operator watches them."""

    by_status: dict[str, int]  # every status, 0 where no request has it
    oldest_open_since: datetime | None  # when the oldest request not completed was made
    last_duration_seconds: float | None  # request to completion, of the last one completed


class ErasureTally:
    """Reads the requests of `store` into an `ErasureOverview`, again on each `read`. A
    completed request never changes, so it is read once; the others each time. A request
    that cannot be read is left out (`ragctl forget --resume` reports it)."""

    def __init__(self, store: ObjectStore):
        self._store = store
        self._completed: dict[str, ErasureStatus] = {}  # by key

    def read(self) -> ErasureOverview:
        requests = []
        for obj in self._store.list(ERASURE_PREFIX):
            request = self._completed.get(obj.key) or self._load(obj.key)
            if request is None:
                continue
            if request.status == "completed":
                self._completed[obj.key] = request
            requests.append(request)
        return overview(requests)

    def _load(self, key: str) -> ErasureStatus | None:
        try:
            return ErasureRequest.model_validate_json(self._store.get(key)).view()
        except ValidationError:
            return None


def overview(requests: Sequence[ErasureStatus]) -> ErasureOverview:
    by_status = dict.fromkeys(get_args(Status), 0)
    for request in requests:
        by_status[request.status] += 1
    open_since = [r.requested_at for r in requests if r.status != "completed"]
    completions = [(r.completed_at, r.requested_at) for r in requests if r.completed_at]
    last = max(completions, default=None)  # the latest completion
    return ErasureOverview(
        by_status=by_status,
        oldest_open_since=min(open_since, default=None),
        last_duration_seconds=(last[0] - last[1]).total_seconds() if last else None,
    )


def submit(
    store: ObjectStore, scope: ErasureScope, requested_by: str, *, untag_versions: bool = False
) -> ErasureRequest:
    request = ErasureRequest(
        request_id=uuid.uuid4().hex,
        scope=scope,
        redacted_scope=scope.redacted(),
        requested_by=requested_by,
        requested_at=datetime.now(UTC),
        untag_versions=untag_versions,
    )
    save(store, request)
    return request


class ErasurePreview(BaseModel):
    """What a request with this scope would erase if carried out now: nothing is erased, and
    nothing is stored, to show it."""

    doc_ids: list[str]
    sources: list[str] = Field(description="Object-store keys of the sources.")
    chunks: int = Field(description="Index rows of the documents.")
    cached_answers: int = Field(description="Cached answers citing or built from them.")
    warehouse_rows: int = Field(description="Warehouse rows about the subject.")


def preview(
    settings: Settings,
    store: ObjectStore,
    index: ChunkStore,
    cache: ResponseCache,
    scope: ErasureScope,
) -> ErasurePreview:
    """The target `erase` would resolve for `scope`, counted as the eraser counts it. Cached
    answers are those filed under the chunks or naming the documents (or quoting the
    subject), whichever is more: an entry is usually both."""
    target = resolve(settings, store, index, scope)
    naming = entries_naming(cache, {*target.doc_ids, *target.chunk_ids}, _texts(scope.subject))
    return ErasurePreview(
        doc_ids=target.doc_ids,
        sources=target.source_keys,
        chunks=len(index.chunk_ids_of(target.doc_ids)),
        cached_answers=max(cache.referencing(target.chunk_ids), len(naming)),
        warehouse_rows=sum(len(keys) for keys in target.warehouse_rows.values()),
    )


class ConsentRefused(ValueError):
    """A confirm token that is unknown, already redeemed, expired, or given for another scope
    or caller."""


def _consent_digest(scope: ErasureScope, requested_by: str, untag_versions: bool) -> str:
    """What a confirm token is bound to, as a hash: the stored consent names nobody."""
    return digest(scope.model_dump_json(), requested_by, str(untag_versions), length=64)


def offer_consent(
    store: ObjectStore, scope: ErasureScope, requested_by: str, *, untag_versions: bool = False
) -> str:
    """A confirm token for one erasure of exactly `scope` by `requested_by`, redeemable once
    within `CONSENT_TTL` (`redeem_consent`). Only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    consent = {
        "bound_to": _consent_digest(scope, requested_by, untag_versions),
        "expires_at": (datetime.now(UTC) + CONSENT_TTL).isoformat(),
    }
    store.put(consent_key(digest(token, length=64)), json.dumps(consent).encode())
    return token


def redeem_consent(
    store: ObjectStore,
    token: str,
    scope: ErasureScope,
    requested_by: str,
    *,
    untag_versions: bool = False,
) -> None:
    """Use up `token`, which must have been offered for this scope and caller and not have
    expired; raises `ConsentRefused` otherwise. A token is deleted when first presented, so a
    replay finds nothing."""
    key = consent_key(digest(token, length=64))
    try:
        consent = json.loads(store.get(key))
    except FileNotFoundError as unknown:
        raise ConsentRefused("unknown or already used confirm token") from unknown
    store.delete(key)  # not `purge`: only the erasure role may delete versions
    if datetime.fromisoformat(consent["expires_at"]) < datetime.now(UTC):
        raise ConsentRefused("the confirm token expired; preview the erasure again")
    if consent["bound_to"] != _consent_digest(scope, requested_by, untag_versions):
        raise ConsentRefused("the confirm token was given for another scope or caller")


def resolve(
    settings: Settings, store: ObjectStore, index: ChunkStore, scope: ErasureScope
) -> ErasureTarget:
    """Every document, source and warehouse row the scope covers."""
    manifests = all_manifests(store)
    sources = source_keys(store)
    rows: dict[str, list[str]] = {}
    if scope.doc_ids:
        known = {m.doc_id for m in manifests} | index.documents_matching(
            DocumentSelector(doc_ids=tuple(scope.doc_ids))
        )
        doc_ids = set(scope.doc_ids) & known
        keys = set()
    elif scope.source_prefix is not None:
        prefix = scope.source_prefix
        doc_ids = {m.doc_id for m in manifests if m.source_uri.startswith(prefix)}
        doc_ids |= index.documents_matching(DocumentSelector(source_prefix=prefix))
        keys = {key for key in sources if store.uri_for(key).startswith(prefix)}
    else:
        subject = scope.subject or ""
        doc_ids = {m.doc_id for m in manifests if subject in m.subjects}
        doc_ids |= index.documents_matching(DocumentSelector(subject=subject))
        if warehouse.configured(settings):
            rows = {t: k for t, k in warehouse.records_about(settings, subject).items() if k}
        keys = {warehouse.document_key(t, k) for t, ks in rows.items() for k in ks}
        doc_ids |= {doc_id_for(store.uri_for(key)) for key in keys}
    keys |= {m.source_key for m in manifests if m.doc_id in doc_ids}
    return ErasureTarget(
        doc_ids=sorted(doc_ids),
        source_keys=valid_source_keys(keys),
        warehouse_rows=rows,
        chunk_ids=known_chunk_ids(store, index, doc_ids),
        partitions=sorted(m.partition_key for m in manifests if m.doc_id in doc_ids),
    )


def valid_source_keys(keys: Iterable[str]) -> list[str]:
    """The keys that name a source (`check_source_key`, through `is_source`). A manifest
    written before keys were checked, or a target saved then, may hold a key like
    `documents/../../outside`: erasure never tombstones, deletes or reads anything outside
    the store's `documents/` for it (the document's id-named artifacts are still erased)."""
    return sorted(key for key in set(keys) if is_source(key))


def known_chunk_ids(store: ObjectStore, index: ChunkStore, doc_ids: set[str]) -> list[str]:
    """Chunk ids of every version still known: in any table version on storage and in any
    chunk artifact. Cached answers may have been built from an older version than the
    current one, whose chunk ids differ."""
    ids = index.chunk_ids_in_history(doc_ids)
    for doc_id in doc_ids:
        for obj in store.list(artifact_folder(Artifact.CHUNKS, doc_id)):
            ids.update(c.chunk_id for c in ChunkSet.model_validate_json(store.get(obj.key)).chunks)
    return sorted(ids)


class Eraser:
    """Erases one target, stage by stage; every step may run again."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        index: ChunkStore,
        cache: ResponseCache,
        request: ErasureRequest,
    ):
        self.settings, self.store, self.index, self.cache = settings, store, index, cache
        self.request = request
        assert request.target is not None
        self.target = request.target
        self.subject = request.scope.subject if request.scope else None

    def _count(self, place: str, amount: int) -> None:
        self.request.erased[place] = self.request.erased.get(place, 0) + amount

    def warehouse(self) -> None:
        """Rows about the subject, in the source tables, the models and the producer state."""
        if self.subject is None or not warehouse.configured(self.settings):
            return
        erased = warehouse.erase_records(self.settings, self.subject, self.target.warehouse_rows)
        self._count("warehouse_rows", erased)

    def stage(self, stage: Stage) -> None:
        if stage == Stage.INDEX:
            self._index()
        if stage == Stage.RAW:
            self._tombstone_and_delete_sources()
        for artifact in STAGE_ARTIFACTS[stage]:
            for doc_id in self.target.doc_ids:
                erased = self.store.purge(artifact_folder(artifact, doc_id), folder=True)
                self._count(f"objects:{artifact}", erased)

    def _index(self) -> None:
        """Rows, then every older table version and the files only they used (full-text
        index included), then the cached answers: those filed under the chunks and those
        naming the documents or chunks (or quoting the subject), then this process's query
        embeddings."""
        self._count("index_rows", len(self.index.chunk_ids_of(self.target.doc_ids)))
        self.index.delete_documents(self.target.doc_ids)
        self.request.untagged_versions += self.index.purge_history(
            untag=self.request.untag_versions
        )
        forgotten = self.cache.forget(self.target.chunk_ids)
        naming = entries_naming(
            self.cache, {*self.target.doc_ids, *self.target.chunk_ids}, _texts(self.subject)
        )
        self._count("cached_answers", forgotten + self.cache.delete(naming))
        forget_query_embeddings()

    def _tombstone_and_delete_sources(self) -> None:
        """Then the sync bookmark forgets the sources' keys."""
        sources = valid_source_keys(self.target.source_keys)
        raws = [
            obj.key
            for doc_id in self.target.doc_ids
            for obj in self.store.list(artifact_folder(Artifact.RAW, doc_id))
        ]
        for key in [*raws, *(k for k in sources if self.store.exists(k))]:
            tombstone = tombstone_key(content_hash(self.store.get(key)))
            self.store.put(tombstone, self.request.request_id.encode())
        for key in sources:
            if self.store.purge(key) + self.store.purge(metadata_key(key)):
                self._count("sources", 1)
        self._count("bookmark_entries", forget_sources(self.store, sources))


def _texts(subject: str | None) -> list[str]:
    return [subject] if subject else []


def residue(settings: Settings, store: ObjectStore, needles: Collection[str]) -> list[str]:
    """Where any of `needles` (erased document ids, source keys, the subject; compared
    lower-cased) is still stored as bytes, beyond what the other checks look up by key:
    every file of the local caches (the response cache's SQLite file and its write-ahead
    log keep deleted rows unless scrubbed) and the producers' bookmarks. Returns the files
    and object keys holding one."""
    wanted = [needle.lower().encode() for needle in needles if needle]
    if not wanted:
        return []
    cache = settings.cache_dir
    files = [path for path in cache.rglob("*") if path.is_file()] if cache.is_dir() else []
    found = [str(path) for path in files if _file_holds(path, wanted)]
    bookmarks = [obj.key for obj in store.list(STATE_PREFIX)]
    return found + [key for key in bookmarks if _holds(store.get(key).lower(), wanted)]


def _holds(data: bytes, needles: list[bytes]) -> bool:
    return any(needle in data for needle in needles)


def _file_holds(path: Path, needles: list[bytes]) -> bool:
    """Read in blocks (a cache may be large), each searched with the end of the one before."""
    overlap, tail = max(map(len, needles)) - 1, b""
    with contextlib.suppress(FileNotFoundError), path.open("rb") as file:  # deleted meanwhile
        while block := file.read(SCAN_BLOCK_BYTES):
            window = tail + block.lower()
            if _holds(window, needles):
                return True
            tail = window[len(window) - overlap :]
    return False


def verify(
    settings: Settings,
    store: ObjectStore,
    index: ChunkStore,
    cache: ResponseCache,
    request: ErasureRequest,
    phrases: Sequence[str] = (),
) -> dict[str, bool]:
    """Proof of absence, place by place; the request completes only if all hold."""
    target = request.target or ErasureTarget()
    doc_ids = set(target.doc_ids)
    subject = request.scope.subject if request.scope else None
    sources = valid_source_keys(target.source_keys)
    source_objects = [*sources, *map(metadata_key, sources)]
    checks = {
        "index_versions": not index.versions_holding(doc_ids),
        "artifacts": not any(
            store.stored_versions(artifact_folder(artifact, doc_id), folder=True)
            for artifact in Artifact
            for doc_id in doc_ids
        ),
        "sources": not any(store.stored_versions(key) for key in source_objects),
        "cache": cache.referencing(target.chunk_ids) == 0
        and not entries_naming(cache, {*doc_ids, *target.chunk_ids}, _texts(subject)),
        "bytes_on_disk": not residue(settings, store, [*doc_ids, *sources, *_texts(subject)]),
        "search": not any(
            hit["doc_id"] in doc_ids
            for phrase in phrases
            for hit in index.keyword_search(phrase, 10)
        ),
    }
    if subject is not None and warehouse.configured(settings):
        checks["warehouse"] = warehouse.records_left_about(settings, subject) == 0
    return checks


def distinctive_phrases(index: ChunkStore, doc_ids: Sequence[str], limit: int = 20) -> list[str]:
    """Opening words of one chunk per document, kept in memory only, to search for after."""
    texts = index.first_chunk_texts(doc_ids, limit)
    return [" ".join(text.split()[:PHRASE_WORDS]) for text in texts]


def erase(
    settings: Settings,
    store: ObjectStore,
    index: ChunkStore,
    cache: ResponseCache,
    request_id: str,
    *,
    stage_order: Sequence[Stage] = tuple(reversed(Stage)),
    on_erased: Callable[[ErasureTarget], None] = lambda target: None,
) -> tuple[ErasureRequest, list[str]]:
    """Carry out (or resume) a request up to verification; it is saved after each step.
    `on_erased` erases what only the caller knows of (the orchestrator's partitions). Returns
    the request and phrases of the erased documents to search for, read before erasing and
    held only in memory. A failure is recorded on the request (and audited), then raised."""
    request = load(store, request_id)
    if request is None:
        raise KeyError(f"no erasure request {request_id}")
    if request.status == "completed":
        return request, []
    request.status, request.error = "running", None
    try:
        if request.target is None:
            assert request.scope is not None
            request.target = resolve(settings, store, index, request.scope)
            request.matched_documents = len(request.target.doc_ids)
        save(store, request)
        phrases = distinctive_phrases(index, request.target.doc_ids)
        if request.target.doc_ids or request.target.warehouse_rows:
            _erase_target(settings, store, index, cache, request, stage_order)
            on_erased(request.target)
    except Exception as exc:
        fail(store, request, exc)
        raise
    return request, phrases


def _erase_target(
    settings: Settings,
    store: ObjectStore,
    index: ChunkStore,
    cache: ResponseCache,
    request: ErasureRequest,
    stage_order: Sequence[Stage],
) -> None:
    tags = index.tags()
    if tags and not request.untag_versions:
        raise TaggedVersionsError(tags)  # before anything is erased
    eraser = Eraser(settings, store, index, cache, request)
    eraser.warehouse()
    for stage in stage_order:
        eraser.stage(stage)
        save(store, request)


def conclude(store: ObjectStore, request: ErasureRequest, checks: dict[str, bool]) -> None:
    """Complete the request if every check holds, else fail it; either way it is audited."""
    if request.status == "completed":
        return
    request.verification = checks
    failed = [name for name, passed in checks.items() if not passed]
    if failed:
        fail(store, request, RuntimeError(f"verification failed: {', '.join(failed)}"))
        return
    request.status, request.completed_at = "completed", datetime.now(UTC)
    request.scope = None
    assert request.target is not None
    request.target = ErasureTarget(doc_ids=request.target.doc_ids)
    _audit(store, request)
    save(store, request)


def fail(store: ObjectStore, request: ErasureRequest, error: Exception) -> None:
    """Mark the request failed and resumable (its target is kept); audited without the
    message, which may quote what it failed on."""
    request.status, request.error = "failed", f"{type(error).__name__}: {error}"
    save(store, request)
    _audit(store, request, error_type=type(error).__name__)


def _audit(store: ObjectStore, request: ErasureRequest, **extra: str) -> None:
    audit.append(
        store,
        actor=request.requested_by,
        action="erasure",
        request_id=request.request_id,
        scope=request.redacted_scope,
        outcome={
            "status": request.status,
            "matched_documents": request.matched_documents,
            "erased": request.erased,
            "verification": request.verification,
            "untagged_versions": request.untagged_versions,
            **extra,
        },
    )


def readmit(store: ObjectStore, request_id: str, requested_by: str) -> audit.AuditRecord:
    """Lift the tombstones a completed erasure request left, so the same content may be
    indexed again; audited as a `readmission` of that request."""
    request = load(store, request_id)
    if request is None or request.status != "completed":
        raise KeyError(f"no completed erasure request {request_id}")
    lifted = 0
    for obj in store.list(TOMBSTONES_PREFIX):
        if store.get(obj.key) == request_id.encode():
            store.purge(obj.key)
            lifted += 1
    return audit.append(
        store,
        actor=requested_by,
        action="readmission",
        request_id=request_id,
        scope=request.redacted_scope,
        outcome={"status": "completed", "lifted_tombstones": lifted},
    )
