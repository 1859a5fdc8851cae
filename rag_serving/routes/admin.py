"""Operating the service: the settings it runs with, and flushing the response cache."""

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from rag_core.settings import Settings
from rag_serving.auth import ADMIN, require_scope
from rag_serving.deps import QueryServiceDep, SettingsDep

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_scope(ADMIN))])

REDACTED = "**********"  # how pydantic shows a SecretStr
SECRET_WORDS = ("password", "secret", "token", "credential")


class CacheFlush(BaseModel):
    deleted: int


def settings_dump(settings: Settings) -> dict[str, Any]:
    """Every setting, secrets redacted: the `SecretStr` ones, and the librdkafka options
    that hold credentials (`sasl.password`, `ssl.key.password`, …)."""
    dump = settings.model_dump(mode="json")
    dump["kafka_client_config"] = {
        name: REDACTED if any(word in name.lower() for word in SECRET_WORDS) else value
        for name, value in settings.kafka_client_config.items()
    }
    return dump


@router.get("/settings", response_model=dict[str, Any])
def get_settings(settings: SettingsDep) -> dict[str, Any]:
    """The settings this process runs with."""
    return settings_dump(settings)


@router.post("/cache/flush", response_model=CacheFlush)
def flush_cache(service: QueryServiceDep) -> CacheFlush:
    """Delete every cached answer (every replica's, when the cache is on Redis)."""
    cache = service.cache
    return CacheFlush(deleted=cache.delete([key for key, _ in cache.entries()]))
