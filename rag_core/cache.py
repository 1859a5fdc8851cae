"""Response cache: diskcache under RAG_CACHE_DIR by default, Redis when RAG_CACHE_URL is a
`redis://` URL (shared by every API replica). Keys hash everything an answer depends on,
including the index version, so any change to the index misses the old entries.

Missing is not erasing: an entry quoting an erased document would sit there until it
expires. So each entry is also filed under the chunk ids its answer was built from, and
`forget(chunk_ids)` deletes every entry that used any of them. The filing can be incomplete
(entries built from a version whose chunk ids are no longer known), so erasure also scans the
entries themselves: `entries_naming` finds every one whose stored answer cites an erased
document or chunk."""

import contextlib
import hashlib
import json
from collections.abc import Collection, Iterable, Iterator
from typing import Any, Protocol

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


def entries_naming(cache: "ResponseCache", ids: Collection[str]) -> list[str]:
    """Keys of the entries whose value names any of `ids` as a doc id or chunk id."""
    wanted = set(ids)
    return [key for key, value in cache.entries() if named_ids(value) & wanted]


class DiskResponseCache:
    def __init__(self, settings: Settings):
        import diskcache

        self._cache = diskcache.Cache(str(settings.cache_dir / "responses"))
        self._ttl = settings.cache_ttl_seconds

    def get(self, key: str) -> str | None:
        value = self._cache.get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str, refs: Iterable[str] = ()) -> None:
        with self._cache.transact():
            self._cache.set(key, value, expire=self._ttl)
            for ref in refs:
                keys = self._cache.get(_ref_key(ref), default=[])
                self._cache.set(_ref_key(ref), sorted({*keys, key}), expire=self._ttl)

    def _filed(self, refs: Iterable[str]) -> frozenset[str]:
        return frozenset(key for ref in refs for key in self._cache.get(_ref_key(ref), default=[]))

    def forget(self, refs: Iterable[str]) -> int:
        refs = list(refs)
        with self._cache.transact():
            deleted = sum(bool(self._cache.delete(key)) for key in self._filed(refs))
            for ref in refs:
                self._cache.delete(_ref_key(ref))
        return deleted

    def referencing(self, refs: Iterable[str]) -> int:
        return sum(key in self._cache for key in self._filed(refs))

    def entries(self) -> Iterator[tuple[str, str]]:
        for key in list(self._cache.iterkeys()):
            value = self._cache.get(key) if _is_entry(key) else None
            if isinstance(value, str):
                yield key, value

    def delete(self, keys: Iterable[str]) -> int:
        with self._cache.transact():
            return sum(bool(self._cache.delete(key)) for key in keys)


class RedisResponseCache:
    def __init__(self, settings: Settings):
        import redis

        url = settings.cache_url.get_secret_value()
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0)
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


def build_response_cache(settings: Settings) -> ResponseCache:
    backend: ResponseCache
    if settings.cache_url.get_secret_value().startswith(("redis://", "rediss://")):
        backend = RedisResponseCache(settings)
    else:
        backend = DiskResponseCache(settings)
    return CountingCache(backend, "response")
