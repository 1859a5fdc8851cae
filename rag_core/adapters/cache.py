"""Response cache: diskcache under RAG_CACHE_DIR by default, Redis when RAG_CACHE_URL is a
`redis://` URL (shared by every API replica). Keys hash everything an answer depends on,
including the index version, so any change to the index misses the old entries.

Missing is not erasing: an entry quoting an erased document would sit there until it
expires. So each entry is also filed under the chunk ids its answer was built from, and
`forget(chunk_ids)` deletes every entry that used any of them. The filing can be incomplete
(entries built from a version whose chunk ids are no longer known), so erasure also scans the
entries themselves: `entries_naming` finds every one whose stored answer cites an erased
document or chunk. The semantic cache (`rag_core.adapters.semantic_cache`) keeps its buckets
of questions in the same store, as entries like these, so both reach them too."""

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from rag_core.adapters.dependencies import CircuitBreaker, redis_client, redis_outages
from rag_core.settings import Settings
from rag_core.telemetry import CACHE_REQUESTS


def cache_key(namespace: str, **parts: Any) -> str:
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return f"rag:{namespace}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def normalize_question(question: str) -> str:
    return " ".join(question.lower().split())


class ResponseCache(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, refs: Iterable[str] = ()) -> None:
        """Store `value`, filed under each of `refs` (the chunk ids it was built from)."""

    def forget(self, refs: Iterable[str]) -> int:
        """Delete every entry filed under any of `refs`; returns how many were deleted."""

    def referencing(self, refs: Iterable[str]) -> int:
        """How many live entries are filed under any of `refs`."""

    def entries(self) -> Iterator[tuple[str, str]]:
        """Every live entry as (key, value), the chunk-id filing excluded."""

    def delete(self, keys: Iterable[str]) -> int:
        """Delete these entries; returns how many existed."""


REF_PREFIX = "rag:ref:"
ENTRY_PATTERN = "rag:*"
DISK_DATABASE = "cache.db"  # diskcache's SQLite file, beside it its `-wal` and `-shm`
SQLITE_TIMEOUT_SECONDS = 10.0
REFS_SCHEMA = """
CREATE TABLE IF NOT EXISTS ResponseRefs (
    ref TEXT NOT NULL, entry TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (ref, entry)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ResponseRefs_entry ON ResponseRefs (entry);
CREATE INDEX IF NOT EXISTS ResponseRefs_expires ON ResponseRefs (expires);
"""
JSON_ARRAY = "(SELECT value FROM json_each(?))"  # one parameter for any number of values


def _ref_key(ref: str) -> str:
    return f"{REF_PREFIX}{ref}"


def _is_entry(key: object) -> bool:
    return isinstance(key, str) and key.startswith("rag:") and not key.startswith(REF_PREFIX)


def named_ids(value: str) -> set[str]:
    """Every `doc_id` and `chunk_id` a stored JSON value holds, at any depth (a cached answer
    names them in its citations)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.update(str(node[name]) for name in ("doc_id", "chunk_id") if name in node)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    with contextlib.suppress(ValueError):  # not JSON: names nothing
        walk(json.loads(value))
    return found


def entries_naming(
    cache: "ResponseCache", ids: Collection[str], texts: Collection[str] = ()
) -> list[str]:
    """Keys of the entries whose value names any of `ids` as a doc id or chunk id, or holds
    any of `texts` (compared lower-cased, as data subjects are)."""
    wanted, lowered = set(ids), [text.lower() for text in texts if text]
    return [
        key
        for key, value in cache.entries()
        if named_ids(value) & wanted or any(text in value.lower() for text in lowered)
    ]


class DiskResponseCache:
    """diskcache over SQLite (`cache.db` and its write-ahead log `cache.db-wal`).

    The chunk-id filing is a table of its own in the same file, one row per (chunk id,
    entry), indexed both ways: filing an answer writes a row per chunk it cites however many
    other answers cite that chunk (a list per chunk, rewritten whole on each write, made each
    write cost as much as the answers already filed under its chunks).

    Deleting is erasing: every connection has `secure_delete` on, so deleted rows are zeroed
    in their pages, and `forget` and `delete` end with a truncating checkpoint, so the
    write-ahead log, which keeps every page image written since the last checkpoint (the
    entry as it was first written), is emptied too."""

    def __init__(self, settings: Settings):
        import diskcache

        # Stored in diskcache's Settings table, so every connection it opens (one per
        # thread and process) sets the pragma.
        self._cache = diskcache.Cache(str(settings.cache_dir / "responses"), sqlite_secure_delete=1)
        self._database = Path(self._cache.directory) / DISK_DATABASE
        self._ttl = settings.cache_ttl_seconds
        with contextlib.closing(self._connect()) as connection:
            connection.executescript(REFS_SCHEMA)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection of our own to the cache's file, in one write transaction. Never
        opened inside `self._cache.transact()`: each would wait for the other's lock."""
        with contextlib.closing(self._connect()) as connection, connection:
            connection.execute("BEGIN IMMEDIATE")
            yield connection

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._database, timeout=SQLITE_TIMEOUT_SECONDS, isolation_level=None
        )
        connection.execute("PRAGMA secure_delete = ON")
        connection.execute("PRAGMA synchronous = NORMAL")  # as diskcache's: no fsync per commit
        return connection

    def get(self, key: str) -> str | None:
        value = self._cache.get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str, refs: Iterable[str] = ()) -> None:
        """Filed before it is stored: a crash in between leaves a filing without an entry,
        which is harmless, rather than an entry erasure could only find by reading it."""
        refs = set(refs)
        if refs:
            now = time.time()
            with self._transaction() as connection:
                connection.execute("DELETE FROM ResponseRefs WHERE expires < ?", (now,))
                connection.executemany(
                    "INSERT OR REPLACE INTO ResponseRefs (ref, entry, expires) VALUES (?, ?, ?)",
                    ((ref, key, now + self._ttl) for ref in refs),
                )
        self._cache.set(key, value, expire=self._ttl)

    def _filed(self, refs: Iterable[str]) -> list[str]:
        with contextlib.closing(self._connect()) as connection:
            rows = connection.execute(
                f"SELECT DISTINCT entry FROM ResponseRefs WHERE ref IN {JSON_ARRAY}",
                (json.dumps(sorted(set(refs))),),
            )
            return [entry for (entry,) in rows]

    def _unfile(self, refs: Iterable[str], entries: Iterable[str]) -> None:
        with self._transaction() as connection:
            connection.execute(
                f"DELETE FROM ResponseRefs WHERE ref IN {JSON_ARRAY} OR entry IN {JSON_ARRAY}",
                (json.dumps(sorted(set(refs))), json.dumps(sorted(set(entries)))),
            )

    def forget(self, refs: Iterable[str]) -> int:
        """The entries are deleted before their filing, so a crash in between leaves a
        filing that the next `forget` finds again."""
        refs = list(refs)
        keys = self._filed(refs)
        deleted = self._delete_entries(keys)
        self._unfile(refs, keys)
        self.scrub()
        return deleted

    def referencing(self, refs: Iterable[str]) -> int:
        return sum(key in self._cache for key in self._filed(refs))

    def entries(self) -> Iterator[tuple[str, str]]:
        for key in list(self._cache.iterkeys()):
            value = self._cache.get(key) if _is_entry(key) else None
            if isinstance(value, str):
                yield key, value

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        deleted = self._delete_entries(keys)
        self._unfile((), keys)
        self.scrub()
        return deleted

    def _delete_entries(self, keys: Iterable[str]) -> int:
        with self._cache.transact():
            return sum(bool(self._cache.delete(key)) for key in keys)

    def scrub(self) -> bool:
        """Copy the write-ahead log into the database and truncate it to nothing, so deleted
        entries are left in neither file; False when a reader kept it in use beyond the
        timeout (erasure verification then finds what is left and fails)."""
        with contextlib.closing(self._connect()) as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy


class RedisResponseCache:
    def __init__(self, settings: Settings):
        self._redis = redis_client(settings.cache_url.get_secret_value(), timeout_seconds=2.0)
        self._ttl = settings.cache_ttl_seconds

    def get(self, key: str) -> str | None:
        value = self._redis.get(key)
        return value.decode() if isinstance(value, bytes) else None

    def set(self, key: str, value: str, refs: Iterable[str] = ()) -> None:
        with self._redis.pipeline() as pipe:
            pipe.set(key, value, ex=self._ttl)
            for ref in refs:
                pipe.sadd(_ref_key(ref), key)
                pipe.expire(_ref_key(ref), self._ttl)
            pipe.execute()

    def _filed(self, refs: Iterable[str]) -> frozenset[str]:
        return frozenset(
            member.decode() if isinstance(member, bytes) else str(member)
            for ref in refs
            for member in self._redis.smembers(_ref_key(ref))
        )

    def forget(self, refs: Iterable[str]) -> int:
        refs = list(refs)
        keys = self._filed(refs)
        deleted = int(self._redis.delete(*keys)) if keys else 0
        if refs:
            self._redis.delete(*(_ref_key(ref) for ref in refs))
        return deleted

    def referencing(self, refs: Iterable[str]) -> int:
        keys = self._filed(refs)
        return int(self._redis.exists(*keys)) if keys else 0

    def entries(self) -> Iterator[tuple[str, str]]:
        """String values only: rate limits and the chunk-id filing share the database."""
        for raw_key in self._redis.scan_iter(match=ENTRY_PATTERN, count=1000, _type="string"):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            value = self.get(key) if _is_entry(key) else None
            if value is not None:
                yield key, value

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        return int(self._redis.delete(*keys)) if keys else 0


class OutageTolerantCache:
    """A shared cache (Redis) that answers go on without while it is unreachable: a lookup
    misses and a store is skipped (see `rag_core.adapters.dependencies.CircuitBreaker`). Erasing
    cannot go on without it, so `forget`, `referencing`, `entries` and `delete` raise
    `DependencyUnavailable` instead: an erasure must never pass over entries it could not
    reach."""

    def __init__(self, cache: ResponseCache, breaker: CircuitBreaker):
        self._cache, self._breaker = cache, breaker

    def get(self, key: str) -> str | None:
        return self._breaker.call(lambda: self._cache.get(key), lambda: None)

    def set(self, key: str, value: str, refs: Iterable[str] = ()) -> None:
        self._breaker.call(lambda: self._cache.set(key, value, refs), lambda: None)

    def forget(self, refs: Iterable[str]) -> int:
        with self._breaker.required():
            return self._cache.forget(refs)

    def referencing(self, refs: Iterable[str]) -> int:
        with self._breaker.required():
            return self._cache.referencing(refs)

    def entries(self) -> Iterator[tuple[str, str]]:
        with self._breaker.required():
            yield from self._cache.entries()

    def delete(self, keys: Iterable[str]) -> int:
        with self._breaker.required():
            return self._cache.delete(keys)


class CountingCache:
    """Counts hits and misses of the wrapped cache in `rag_cache_requests_total`."""

    def __init__(self, cache: ResponseCache, name: str):
        self._cache, self._name = cache, name

    def get(self, key: str) -> str | None:
        value = self._cache.get(key)
        CACHE_REQUESTS.labels(self._name, "miss" if value is None else "hit").inc()
        return value

    def set(self, key: str, value: str, refs: Iterable[str] = ()) -> None:
        self._cache.set(key, value, refs)

    def forget(self, refs: Iterable[str]) -> int:
        return self._cache.forget(refs)

    def referencing(self, refs: Iterable[str]) -> int:
        return self._cache.referencing(refs)

    def entries(self) -> Iterator[tuple[str, str]]:
        return self._cache.entries()

    def delete(self, keys: Iterable[str]) -> int:
        return self._cache.delete(keys)


def build_cache_store(settings: Settings) -> ResponseCache:
    """The store itself, its lookups uncounted: the response cache counts its own, and the
    semantic cache, which keeps its buckets in the same store, its own."""
    if settings.cache_url.get_secret_value().startswith(("redis://", "rediss://")):
        breaker = CircuitBreaker(
            "response_cache", redis_outages(), settings.dependency_retry_seconds
        )
        return OutageTolerantCache(RedisResponseCache(settings), breaker)
    return DiskResponseCache(settings)


def build_response_cache(settings: Settings, store: ResponseCache | None = None) -> ResponseCache:
    """The response cache over `store` (by default, a store built from `settings`)."""
    return CountingCache(build_cache_store(settings) if store is None else store, "response")
