"""Response cache: diskcache under RAG_CACHE_DIR by default, Redis when RAG_CACHE_URL is a
`redis://` URL (shared by every API replica). Keys hash everything an answer depends on,
including the index version, so any change to the index misses the old entries."""

import hashlib
import json
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

    def set(self, key: str, value: str) -> None: ...


class DiskResponseCache:
    def __init__(self, settings: Settings):
        import diskcache

        self._cache = diskcache.Cache(str(settings.cache_dir / "responses"))
        self._ttl = settings.cache_ttl_seconds

    def get(self, key: str) -> str | None:
        value = self._cache.get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str) -> None:
        self._cache.set(key, value, expire=self._ttl)


class RedisResponseCache:
    def __init__(self, settings: Settings):
        import redis

        self._redis = redis.Redis.from_url(settings.cache_url, socket_timeout=2.0)
        self._ttl = settings.cache_ttl_seconds

    def get(self, key: str) -> str | None:
        value = self._redis.get(key)
        return value.decode() if isinstance(value, bytes) else None

    def set(self, key: str, value: str) -> None:
        self._redis.set(key, value, ex=self._ttl)


class CountingCache:
    """Counts hits and misses of the wrapped cache in `rag_cache_requests_total`."""

    def __init__(self, cache: ResponseCache, name: str):
        self._cache, self._name = cache, name

    def get(self, key: str) -> str | None:
        value = self._cache.get(key)
        CACHE_REQUESTS.labels(self._name, "miss" if value is None else "hit").inc()
        return value

    def set(self, key: str, value: str) -> None:
        self._cache.set(key, value)


def build_response_cache(settings: Settings) -> ResponseCache:
    backend: ResponseCache
    if settings.cache_url.startswith(("redis://", "rediss://")):
        backend = RedisResponseCache(settings)
    else:
        backend = DiskResponseCache(settings)
    return CountingCache(backend, "response")
