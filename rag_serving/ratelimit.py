"""Token-bucket rate limits per key (principal and route): in Redis when `RAG_CACHE_URL`
names one, so every API replica draws from the same buckets, in process otherwise.

While Redis is unreachable, the Redis limiter falls back to in-process buckets of the same
size (see `rag_core.adapters.dependencies`): requests go on being answered and limited, though each
replica then allows a caller the whole rate on its own. Short timeouts and the circuit
breaker keep a dead Redis from costing more than one failed attempt per retry interval."""

import threading
import time
from collections import OrderedDict
from typing import Protocol

from rag_core.adapters.dependencies import CircuitBreaker, redis_client, redis_outages
from rag_core.settings import Settings

REDIS_TIMEOUT_SECONDS = 0.5  # a limit check is on every request's path: fail fast

# Refill, take one token if there is one, and say how long until there will be: atomically,
# on Redis's clock, so replicas with skewed clocks agree.
TOKEN_BUCKET = """
local capacity, per_second = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * per_second)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / per_second end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / per_second) + 1)
return tostring(wait)
"""


class RateLimiter(Protocol):
    def acquire(self, key: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is available."""


class LocalRateLimiter:
    """Buckets in an LRU map of at most `max_buckets`: the one dropped has been idle longest,
    so it is usually full again anyway, and callers cannot grow the map without bound."""

    def __init__(self, capacity: int, per_second: float, max_buckets: int = 10_000):
        self.capacity, self.per_second, self.max_buckets = capacity, per_second, max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        with self._lock:
            now = time.monotonic()
            tokens, at = self._buckets.pop(key, (float(self.capacity), now))
            tokens = min(self.capacity, tokens + (now - at) * self.per_second)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.per_second
            self._buckets[key] = (tokens - 1 if wait == 0.0 else tokens, now)
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
            return wait


class RedisRateLimiter:
    def __init__(self, url: str, capacity: int, per_second: float, retry_seconds: float):
        self._script = redis_client(url, REDIS_TIMEOUT_SECONDS).register_script(TOKEN_BUCKET)
        self.capacity, self.per_second = capacity, per_second
        self._breaker = CircuitBreaker("rate_limiter", redis_outages(), retry_seconds)
        self._fallback = LocalRateLimiter(capacity, per_second)

    def acquire(self, key: str) -> float:
        return self._breaker.call(
            lambda: float(
                self._script(keys=[f"rag:rate:{key}"], args=[self.capacity, self.per_second])
            ),
            lambda: self._fallback.acquire(key),
        )


def build_rate_limiter(settings: Settings) -> RateLimiter:
    per_second = settings.rate_limit_per_minute / 60
    url = settings.cache_url.get_secret_value()
    if url.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(
            url, settings.rate_limit_burst, per_second, settings.dependency_retry_seconds
        )
    return LocalRateLimiter(settings.rate_limit_burst, per_second)
