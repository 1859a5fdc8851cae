"""Answers by a chat model over the OpenAI-compatible protocol, with their token usage and
cost counted, and each fallback to the extractive answerer counted by its reason; citations
are re-attributed to the passages that hold each sentence."""

import re
from collections.abc import Iterator
from typing import Any

import openai

from rag_core.domain.answers import Answerer, Generation
from rag_core.domain.citations import citation_for, supported_answer
from rag_core.domain.context import Scorer, model_context
from rag_core.domain.prompting import prompt_messages
from rag_core.domain.schemas import Hit, Usage
from rag_core.settings import Settings
from rag_core.telemetry import LLM_COST, LLM_FALLBACKS, LLM_TOKENS

UNREACHABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError)
# The end of a sentence, with the citation marker written after its full stop if any.
_SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d+\])*(?=\s|$)")
# A small model sometimes goes on to write the next turn of its worked example.
STOP_SEQUENCES = ["\nQuestion:", "\nPassages:"]


def fallback_reason(error: Exception) -> str:
    """Why the model did not answer, as `rag_llm_fallbacks_total` labels it: it timed out,
    could not be reached at all, or answered with an error status."""
    if isinstance(error, openai.APITimeoutError):  # a kind of connection error: first
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "unreachable"
    return "error"


def _whole_sentences(text: str, finish_reason: str | None) -> str:
    """The answer without the sentence the token limit cut off, if it has a whole one."""
    if finish_reason != "length":
        return text
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()] if ends else text


class LLMAnswerer:
    """Answers with an OpenAI-compatible chat model from the passages that fit the context
    budget (`relevance` picks their sentences); falls back to another answerer (the
    extractive one) when the model cannot be reached."""

    def __init__(self, settings: Settings, fallback: Answerer, relevance: Scorer):
        self.name = settings.llm_model
        self._settings = settings
        self._fallback = fallback
        self._relevance = relevance
        self._client = openai.OpenAI(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            timeout=settings.llm_timeout_seconds,
            max_retries=0,
        )

    def _generation(self, text: str, hits: list[Hit], usage: Usage) -> Generation:
        answer, cited = supported_answer(text, hits)
        citations = [citation_for(n, hits[n - 1]) for n in cited]
        return Generation(answer=answer, citations=citations, generator=self.name, usage=usage)

    def _context(self, question: str, hits: list[Hit]) -> list[Hit]:
        budget = self._settings.context_budget_tokens
        return model_context(question, hits, budget, self._relevance)

    def _request(self, question: str, hits: list[Hit]) -> dict[str, Any]:
        return {
            "model": self._settings.llm_model,
            "messages": prompt_messages(question, hits),
            "max_tokens": self._settings.llm_max_tokens,
            "stop": STOP_SEQUENCES,
            "temperature": 0,
        }

    def generate(self, question: str, hits: list[Hit]) -> Generation:
        context = self._context(question, hits)
        try:
            completion = self._client.chat.completions.create(**self._request(question, context))
        except UNREACHABLE as exc:
            LLM_FALLBACKS.labels(fallback_reason(exc)).inc()
            return self._fallback.generate(question, hits)
        choice = completion.choices[0]
        text = _whole_sentences(choice.message.content or "", choice.finish_reason)
        return self._generation(text, context, self._usage(completion.usage))

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str | Generation]:
        """Deltas as the model writes them; the closing generation carries the answer with
        unsupported citation markers removed."""
        context = self._context(question, hits)
        try:
            chunks = self._client.chat.completions.create(
                **self._request(question, context),
                stream=True,
                stream_options={"include_usage": True},
            )
            parts, usage, finish_reason = [], None, None
            for chunk in chunks:
                usage = chunk.usage or usage
                finish_reason = chunk.choices[0].finish_reason if chunk.choices else finish_reason
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    parts.append(delta)
                    yield delta
        except UNREACHABLE as exc:
            LLM_FALLBACKS.labels(fallback_reason(exc)).inc()
            yield from self._fallback.stream(question, hits)
            return
        if usage is None:  # llama.cpp's server omits streamed usage; it sends a token a chunk
            usage = openai.types.CompletionUsage(
                prompt_tokens=0, completion_tokens=len(parts), total_tokens=len(parts)
            )
        text = _whole_sentences("".join(parts), finish_reason)
        yield self._generation(text, context, self._usage(usage))

    def _usage(self, usage: openai.types.CompletionUsage | None) -> Usage:
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        prompt_price, completion_price = self._settings.llm_prices.get(self.name, (0.0, 0.0))
        cost = (prompt * prompt_price + completion * completion_price) / 1_000_000
        currency = self._settings.currency
        LLM_TOKENS.labels(self.name, "prompt").inc(prompt)
        LLM_TOKENS.labels(self.name, "completion").inc(completion)
        LLM_COST.labels(self.name, currency).inc(cost)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=round(cost, 8),
            currency=currency,
        )
