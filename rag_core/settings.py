"""Platform settings: one object, read from `RAG_*` environment variables (or `.env`).

Everything defaults under `RAG_HOME` so a fresh checkout runs on embedded storage; each
location can be pointed elsewhere (object store and index also accept `s3://` URIs).
"""

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    SettingsConfigDict,
)

from rag_core.domain.schemas import MAX_TOP_K, SearchMode
from rag_core.profiles import (
    LIST_PRICES,
    PROFILES,
    AnswererChoice,
    ProfileName,
    RerankerChoice,
)
from rag_core.secrets import AWS_PREFIX, read_secret_files, resolve_reference

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Dev mode is one identity for every local caller, evaluation and load scripts included:
# unless set, its rate limits are far beyond what one machine sends.
DEV_RATE_LIMIT_PER_MINUTE, DEV_RATE_LIMIT_BURST = 600_000, 10_000
# The default profile's values are the fields' defaults too.
LOCAL = PROFILES["local"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".rag"), description="Root of all embedded storage.")
    profile: ProfileName = Field(
        default="local",
        description="Cost profile (`rag_core.profiles`): defaults for the answerer, model, "
        "top_k, context budget, reranker, answer length and cache lifetime, each overridden "
        "by its own setting when given. `hosted-*` need `llm_base_url` and `llm_api_key`.",
    )
    object_store_uri: str = Field(
        default="", description="Folder or s3:// URI of the object store."
    )
    index_uri: str = Field(default="", description="Folder or s3:// URI of the LanceDB database.")
    index_backend: Literal["lancedb"] = Field(
        default="lancedb", description="Chunk store implementation (`rag_core.services`)."
    )
    warehouse_path: Path = Field(default=Path(), description="DuckDB warehouse file.")
    cache_dir: Path = Field(default=Path(), description="Local caches.")
    dagster_home: Path = Field(
        default=Path(), description="DAGSTER_HOME for the embedded instance."
    )
    orchestrator: Literal["in_process", "dagster"] = Field(
        default="in_process",
        description="Where the CLI's and the API's runs execute: in their own process, or "
        "submitted to the Dagster webserver at `dagster_url` (queued in its instance).",
    )
    dagster_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Dagster webserver the `dagster` orchestrator submits runs to.",
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where people reach the API: the base of links to it (Dagster metadata).",
    )
    cli_use_api: bool | None = Field(
        default=None,
        description="Where `ragctl search`, `ask`, `status` and `documents` send their requests "
        "instead of loading the index and the model in-process: `true` the API at `api_url` "
        "(it must accept the CLI without a token, RAG_AUTH_MODE=dev), `false` none, unset the "
        "API `ragctl dev` runs for the same RAG_HOME; in-process when nothing answers there.",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (SeaweedFS, MinIO).")
    s3_region: str = "us-east-1"

    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="all-MiniLM-L6-v2 (packaged, offline) or a local sentence-transformers folder.",
    )
    embed_batch_size: int = Field(default=32, ge=1)
    chunk_size: int = Field(default=1000, ge=100, description="Target chunk length, characters.")
    chunk_overlap: int = Field(default=150, ge=0, description="Characters repeated across chunks.")
    parse_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Processes that parse documents in parallel during bulk runs.",
    )
    keep_versions: int = Field(default=1, ge=1, description="Indexed versions kept per document.")

    vector_index_min_rows: int = Field(
        default=20_000, ge=1, description="Rows from which the table gets an ANN vector index."
    )
    retrieval_mode: SearchMode = "hybrid"
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal rank fusion constant.")
    vector_weight: float = Field(default=1.0, ge=0, description="Weight of the vector ranking.")
    keyword_weight: float = Field(default=1.0, ge=0, description="Weight of the keyword ranking.")
    candidates: int = Field(default=40, ge=1, description="Chunks fetched per ranking to fuse.")
    dedupe_similarity: float = Field(
        default=0.99, gt=0, le=1, description="Cosine above which two hits count as one."
    )
    min_relevance: float = Field(
        default=0.2, description="Best vector similarity below which the answer is I don't know."
    )
    reranker: RerankerChoice = LOCAL.reranker
    reranker_model: str = Field(
        default="", description="Cross-encoder folder on disk, or the Cohere rerank model."
    )
    cohere_api_key: SecretStr | None = None
    cohere_base_url: str = "https://api.cohere.com"

    answerer: AnswererChoice = Field(
        default=LOCAL.answerer,
        description="`llm`: the model at `llm_base_url` writes answers (extractive ones while "
        "it is empty or unreachable); `extractive`: no model is ever called.",
    )
    query_top_k: int = Field(
        default=LOCAL.query_top_k,
        ge=1,
        le=MAX_TOP_K,
        description="Passages an answer is written from when the query does not say (`top_k`).",
    )
    context_budget_tokens: int | None = Field(
        default=LOCAL.context_budget_tokens,
        ge=1,
        description="Most tokens of passages a model's prompt holds (estimated from characters): "
        "the best-ranked passages whole while they fit, then the next one cut around its "
        "sentence most relevant to the question; unset, every passage goes whole.",
    )
    llm_base_url: str = Field(
        default="", description="OpenAI-compatible endpoint; empty means extractive answers."
    )
    llm_model: str = LOCAL.llm_model
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_tokens: int = Field(default=LOCAL.llm_max_tokens, ge=1)
    llm_port: int = Field(default=8001, description="Port of the embedded local model server.")
    llm_prices: dict[str, tuple[float, float]] = Field(
        default=LIST_PRICES,
        description="Price per million prompt and completion tokens, in `currency`, by model.",
    )
    currency: str = "GBP"
    cache_url: SecretStr = Field(
        default=SecretStr(""),
        description="redis://… to share the response cache and rate limits; a secret, as it "
        "may carry a password.",
    )
    cache_ttl_seconds: int = Field(default=LOCAL.cache_ttl_seconds, ge=1)
    semantic_cache: bool = Field(
        default=False,
        description="Also serve a cached answer to a new question whose embedding is close to a "
        "cached question's (same filters, groups and index version); `cached` stays true and "
        "`cache_hit` says `semantic`.",
    )
    semantic_cache_similarity: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="Least cosine similarity of two questions' embeddings for the semantic "
        "cache to treat them as one (docs/benchmarks.md measures hits and false hits).",
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka brokers (`ragctl dev` starts tansu here)."
    )
    kafka_client_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka settings, e.g. security.protocol and sasl.* (MSK with "
        "IAM: `kafka_auth`).",
    )
    kafka_auth: Literal["none", "msk-iam"] = Field(
        default="none",
        description="`msk-iam` signs in to Amazon MSK with the process's AWS credentials: "
        "SASL/OAUTHBEARER over TLS, with tokens signed for the region `s3_region` names. "
        "`none`: as `kafka_client_config` says.",
    )
    kafka_topic_prefix: str = Field(default="rag", description="Prefix of the platform's topics.")
    kafka_group_id: str = Field(default="rag-indexer", description="Streaming worker's group.")
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="Consumer group session timeout; a join waits about half of it on tansu.",
    )
    indexer: Literal["stream", "runs"] = Field(
        default="stream",
        description="Who consumes document changes: the warm streaming worker (fresh within "
        "a second) or the Dagster Kafka sensor (one run per batch of events).",
    )
    stream_batch_size: int = Field(default=256, ge=1, description="Events handled at once.")
    stream_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed attempts in a row at one batch before the streaming worker handles "
        "its events one by one, dead-lettering those that still fail.",
    )
    freshness_sla_seconds: float = Field(
        default=60.0, gt=0, description="Longest allowed time from change event to queryable."
    )
    warehouse_target: Literal["duckdb", "snowflake"] = Field(
        default="duckdb", description="dbt target and connection the warehouse producer uses."
    )
    auth_mode: Literal["dev", "oidc"] = Field(
        default="dev",
        description="`oidc` verifies bearer JWTs; `dev` (local only) accepts everyone as an "
        "all-scopes development identity and warns loudly.",
    )
    oidc_issuer: str = Field(default="", description="Issuer URL (discovery document base).")
    oidc_audience: str = Field(default="", description="Audience the tokens must carry.")
    oidc_audience_claim: str = Field(
        default="aud",
        description="Claim that must name `oidc_audience`: `aud`, or `client_id` for Cognito "
        "access tokens, which carry no `aud` and name their app client there.",
    )
    oidc_scope_prefix: str = Field(
        default="",
        description="Prefix of the API's scopes in tokens, e.g. a Cognito resource server's "
        "identifier and a slash (`https://rag.example.com/`): scopes with it are read without "
        "it and scopes without it are ignored. Empty: scopes are read as they are.",
    )
    oidc_scope_claims: list[str] = Field(
        default=["scope", "scp"],
        description="Claim paths holding scopes (a space-separated string or a list); dotted "
        "paths reach nested claims.",
    )
    oidc_groups_claim: str = Field(
        default="groups", description="Claim path holding the caller's groups."
    )
    oidc_jwks_cache_seconds: int = Field(default=3600, ge=1)
    oidc_jwks_refetch_seconds: int = Field(
        default=60,
        ge=0,
        description="Least time between fetches of the issuer's keys, however many tokens name "
        "an unknown key id or however long the issuer is unreachable.",
    )
    rate_limit_per_minute: int = Field(
        default=120, ge=1, description="Sustained requests per caller and route."
    )
    rate_limit_burst: int = Field(default=30, ge=1, description="Requests allowed at once.")
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, description="Larger bodies: 413.")
    max_upload_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Larger document uploads: 413."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API."
    )
    snowflake_account: str = ""
    snowflake_user: str = ""
    snowflake_password: SecretStr = SecretStr("")
    snowflake_private_key: SecretStr = Field(
        default=SecretStr(""),
        description="The user's private key, PEM, to sign in with a key pair instead of a "
        "password (an aws-sm:// reference can name it).",
    )
    snowflake_private_key_passphrase: SecretStr = Field(
        default=SecretStr(""), description="Passphrase of an encrypted `snowflake_private_key`."
    )
    snowflake_database: str = "RAG"
    snowflake_schema: str = "PUBLIC"
    snowflake_warehouse: str = ""
    snowflake_role: str = ""
    snowflake_host: str = Field(default="", description="Only to reach a Snowflake stand-in.")
    snowflake_port: int = 443
    snowflake_protocol: Literal["https", "http"] = "https"
    max_in_flight: int = Field(
        default_factory=lambda: 4 * (os.cpu_count() or 1),
        ge=0,
        description="Requests one API process works on at once (probes and /metrics aside); "
        "past it and the queue, 503 with Retry-After. 0: no limit.",
    )
    max_queued: int = Field(
        default_factory=lambda: 4 * (os.cpu_count() or 1),
        ge=0,
        description="Requests that may wait for an in-flight slot, first come, first served.",
    )
    queue_wait_seconds: float = Field(
        default=0.5, gt=0, description="Longest wait for a slot before a 503."
    )
    index_version_ttl_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a process reuses the index version it read for cache keys (so a "
        "cache hit opens no table): an answer may be served up to this long after the index "
        "changed. 0: read it on every query.",
    )
    trace_content: bool = Field(
        default=False,
        description="Put questions, answers and retrieved text in trace spans (`input.value`, "
        "`output.value`, document content). Off, spans carry ids, scores, models and token "
        "counts only: an erasure cannot reach text already exported to a trace backend.",
    )
    inference_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="torch threads per process; `ragctl serve --workers N` sets cores / N.",
    )
    dependency_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="While Redis is unreachable, how long the API serves without it (cache "
        "bypassed, in-process rate limits) before one request tries it again.",
    )

    # The aws-sm:// reference each resolved secret came from, by field: safe to pass on.
    _secret_references: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        return read_secret_files(data, SECRET_FIELDS) if isinstance(data, dict) else data

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        """The profile's values for the settings not given. Before validation, `data` holds
        exactly the values given (init arguments, environment, `.env`, secret files; no
        defaults), so a given value always wins; the profile's are then validated like them
        (and, like them, counted in `model_fields_set`). An unknown profile fills nothing and
        fails the `profile` field's own validation."""
        name = data.get("profile", "local") if isinstance(data, dict) else None
        profile = PROFILES.get(name) if isinstance(name, str) else None
        return data if profile is None else profile.settings() | data

    @model_validator(mode="after")
    def _resolve_secret_references(self) -> "Settings":
        for name in SECRET_FIELDS:
            value: SecretStr | None = getattr(self, name)
            if value is not None and value.get_secret_value().startswith(AWS_PREFIX):
                self._secret_references[name] = value.get_secret_value()
                setattr(self, name, SecretStr(resolve_reference(value.get_secret_value())))
        return self

    def secret_reference(self, name: str) -> str | None:
        """The aws-sm:// reference a secret setting was resolved from, if it was."""
        return self._secret_references.get(name)

    @model_validator(mode="after")
    def _derive_locations(self) -> "Settings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("RAG_CHUNK_OVERLAP must be smaller than RAG_CHUNK_SIZE")
        if self.auth_mode == "oidc" and not (self.oidc_issuer and self.oidc_audience):
            raise ValueError("RAG_AUTH_MODE=oidc needs RAG_OIDC_ISSUER and RAG_OIDC_AUDIENCE")
        if self.snowflake_password.get_secret_value() and (
            self.snowflake_private_key.get_secret_value()
        ):
            raise ValueError(
                "RAG_SNOWFLAKE_PASSWORD and RAG_SNOWFLAKE_PRIVATE_KEY are both set: sign in "
                "with one of them"
            )
        if PROFILES[self.profile].hosted and not (
            self.llm_base_url and "llm_api_key" in self.model_fields_set
        ):
            raise ValueError(
                f"RAG_PROFILE={self.profile} needs RAG_LLM_BASE_URL and RAG_LLM_API_KEY "
                "(an OpenAI-compatible endpoint and its key)"
            )
        self.home = self.home.expanduser().resolve()
        self.object_store_uri = self.object_store_uri or str(self.home / "objects")
        self.index_uri = self.index_uri or str(self.home / "lancedb")
        for name, default in (
            ("warehouse_path", self.home / "warehouse.duckdb"),
            ("cache_dir", self.home / "cache"),
            ("dagster_home", self.home / "dagster"),
        ):
            value: Path = getattr(self, name)
            setattr(self, name, default if value == Path() else value.expanduser().resolve())
        return self

    @model_validator(mode="after")
    def _dev_rate_limits(self) -> "Settings":
        if self.auth_mode == "dev":
            for name, dev_default in (
                ("rate_limit_per_minute", DEV_RATE_LIMIT_PER_MINUTE),
                ("rate_limit_burst", DEV_RATE_LIMIT_BURST),
            ):
                if name not in self.model_fields_set:
                    setattr(self, name, dev_default)
        return self


SECRET_FIELDS = [
    name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
]


def variable(name: str) -> str:
    """The environment variable a setting is read from."""
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def spelled(value: Any) -> str | None:
    """A setting's value as its environment variable spells it: JSON for lists and maps,
    secrets in clear; None when unset."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    return None if value is None else str(value)


def from_spelled(values: Mapping[str, str | None]) -> Settings:
    """Settings with these fields, spelled as their variables are (`spelled`) and parsed as
    the environment's are. Fields left out are read from the environment; given every field,
    no variable is read (nor merged into a map, as pydantic-settings does with init values),
    bar the `RAG_<NAME>_FILE` of a secret given as unset."""
    parser = EnvSettingsSource(Settings)
    parsed: dict[str, Any] = {
        name: None
        if text is None
        else parser.prepare_field_value(name, Settings.model_fields[name], text, False)
        for name, text in values.items()
    }
    if parsed.keys() >= Settings.model_fields.keys():
        only_these = (InitSettingsSource(Settings, parsed),)
        # BaseSettings' own keywords are hidden from type checkers by pydantic's __init__.
        return Settings(_build_sources=(only_these, parsed))  # type: ignore[call-arg]
    return Settings(**parsed)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
