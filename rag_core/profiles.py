"""Cost profiles (`RAG_PROFILE`): named bundles of the settings that decide what an answer
costs and how long it takes: who writes it (a model or the extractive answerer), which model,
from how many passages and how many tokens of them, reranked or not, how long it may run and
how long it stays cached. A profile is only a default: each of these settings given
explicitly (environment, `.env`, code) wins over the profile's value.

Profiles are data, keyed by the names of the `Settings` fields they give, so `Settings` fills
them in before validating (the values are checked like any other)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ProfileName = Literal["extractive", "local", "hosted-economy", "hosted-quality"]
AnswererChoice = Literal["llm", "extractive"]
RerankerChoice = Literal["none", "cross-encoder", "cohere"]

LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"  # packaged, served by `ragctl dev` (llama.cpp)
ECONOMY_MODEL = "gpt-4o-mini"
QUALITY_MODEL = "gpt-4o"
# Price per million prompt and completion tokens, in GBP: OpenAI's list prices in USD
# (gpt-4o-mini $0.15 / $0.60, gpt-4o $2.50 / $10.00) converted at £0.80 to the dollar.
LIST_PRICES: dict[str, tuple[float, float]] = {
    LOCAL_MODEL: (0.0, 0.0),
    ECONOMY_MODEL: (0.12, 0.48),
    QUALITY_MODEL: (2.00, 8.00),
}

DAY_SECONDS = 86_400


class Profile(BaseModel):
    """The settings a profile gives, by `Settings` field name; `hosted` profiles call a model
    someone else runs, at the endpoint and with the key the user gives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    answerer: AnswererChoice
    llm_model: str
    query_top_k: int = Field(ge=1)
    context_budget_tokens: int | None = Field(ge=1)
    reranker: RerankerChoice
    llm_max_tokens: int = Field(ge=1)
    cache_ttl_seconds: int = Field(ge=1)
    hosted: bool = Field(default=False, exclude=True)

    def settings(self) -> dict[str, Any]:
        """The setting values this profile gives, by field name."""
        return self.model_dump()


# The packaged model, free but slow on a CPU; extractive until a model is reachable at
# RAG_LLM_BASE_URL (`ragctl dev` serves the packaged one there).
LOCAL = Profile(
    answerer="llm",
    llm_model=LOCAL_MODEL,
    query_top_k=5,
    context_budget_tokens=None,
    reranker="none",
    llm_max_tokens=300,
    cache_ttl_seconds=DAY_SECONDS,
)

# By name; the names are `ProfileName`'s, the type of the `profile` setting.
PROFILES: dict[str, Profile] = {
    # No model at all, whatever RAG_LLM_BASE_URL says: sentences picked from the passages.
    "extractive": LOCAL.model_copy(update={"answerer": "extractive"}),
    "local": LOCAL,
    # Paid per token: a small prompt, a short answer, cached for a week (answers are still
    # keyed by the index version, so a changed index is never answered from the cache).
    "hosted-economy": Profile(
        answerer="llm",
        llm_model=ECONOMY_MODEL,
        query_top_k=5,
        context_budget_tokens=3000,
        reranker="none",
        llm_max_tokens=300,
        cache_ttl_seconds=7 * DAY_SECONDS,
        hosted=True,
    ),
    "hosted-quality": Profile(
        answerer="llm",
        llm_model=QUALITY_MODEL,
        query_top_k=8,
        context_budget_tokens=6000,
        reranker="none",
        llm_max_tokens=600,
        cache_ttl_seconds=7 * DAY_SECONDS,
        hosted=True,
    ),
}
