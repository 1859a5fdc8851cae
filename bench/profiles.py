"""Cost profiles side by side (docs/benchmarks.md, "Cost profiles"): latency, tokens per
request, cache hit rate on a repeat mix, and £ per 1,000 queries.

The sample corpus is indexed in a temporary home, and the labeled questions of
eval_sets/sample_corpus_qa.jsonl are asked through the query service with the response cache
bypassed:

- `extractive` and `local` answer, timed (the packaged model is started here);
- the hosted profiles cannot be called here: their prompts are built as they would be sent
  (their top_k and context budget) and counted with their model's own tokenizer (OpenAI's
  o200k encoding, offline); their answers' tokens are estimates, the local model's answers
  counted the same way.

The cache hit rate replays a repeat mix through the real response cache: questions drawn
with a Zipf law (a few asked often, most rarely), a quarter of the draws of a question with a
rewording (eval_sets/paraphrases/) asked in its words, with the semantic cache off (exact
hits only) and on. £ per 1,000 queries = (1 - hit rate) x 1,000 x the mean cost of an
answer, at the prices of `rag_core/profiles.py`.

    python bench/profiles.py [--quick]

Prints a table, then one JSON line with the figures.
"""

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from bpe_openai import encoding_for_model
from harness import ROOT, arguments, console, finish, ingest, table, temp_settings

from rag_core import services
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import assemble_local_model
from rag_core.adapters.processes import free_port
from rag_core.domain.context import model_context
from rag_core.domain.prompting import prompt_messages
from rag_core.domain.schemas import QueryRequest, QueryResponse
from rag_core.domain.stats import percentile
from rag_core.evaluation.labeled_sets import load_set
from rag_core.profiles import LIST_PRICES, PROFILES
from rag_core.settings import Settings

LABELED = ROOT / "eval_sets" / "sample_corpus_qa.jsonl"
PARAPHRASES = ROOT / "eval_sets" / "paraphrases" / "sample_corpus_qa.jsonl"
NEVER_CALLED = "http://127.0.0.1:9/v1"
MIX_QUERIES = 400
ZIPF_EXPONENT = 1.2
REWORDED_SHARE = 0.25
# OpenAI's chat format adds about 3 tokens per message and 3 to prime the reply.
TOKENS_PER_MESSAGE = 3


def main() -> None:
    parser = arguments(__doc__, quick="20 questions, a mix of 150 queries")
    args = parser.parse_args()
    questions = [labeled.question for labeled in load_set(LABELED)]
    questions = questions[:20] if args.quick else questions
    with temp_settings("profiles") as base:
        ingest(base, sorted((ROOT / "sample_corpus").rglob("*.*")))
        measured = {
            "extractive": asked(profile_settings(base, "extractive"), questions),
            "local": asked_of_local_model(profile_settings(base, "local"), questions),
        }
        hit_rates = {
            semantic: hit_rate(base, questions, MIX_QUERIES // (3 if args.quick else 1), semantic)
            for semantic in (False, True)
        }
        answers = [response.answer for response in measured["local"]["responses"]]
        rows = {
            name: profile_row(base, name, questions, measured.get(name), answers, hit_rates)
            for name in PROFILES
        }
    console.print(profile_table(rows, hit_rates))
    finish(
        "profiles",
        args.quick,
        {"questions": len(questions), "hit_rates": hit_rates, "profiles": rows},
    )


def profile_settings(base: Settings, profile: str, **overrides: Any) -> Settings:
    """The settings of `profile` over the benchmark's home (explicit overrides win); a hosted
    profile gets an endpoint it is never sent to (its prompts are only counted)."""
    if PROFILES[profile].hosted:
        overrides = {"llm_base_url": NEVER_CALLED, "llm_api_key": "never-called", **overrides}
    return Settings(profile=profile, home=base.home, **overrides)


def asked(settings: Settings, questions: list[str]) -> dict[str, Any]:
    """Each question answered afresh (the cache bypassed), timed."""
    service = services.query_service(settings)
    service.retriever.search("warm up", 5)
    durations, responses = [], []
    for question in questions:
        started = time.perf_counter()
        responses.append(service.query(QueryRequest(question=question), use_cache=False))
        durations.append(time.perf_counter() - started)
    return {"durations": durations, "responses": responses}


def asked_of_local_model(settings: Settings, questions: list[str]) -> dict[str, Any]:
    model = assemble_local_model(settings.home / "models")
    with LocalLLMServer(model, free_port()) as server:
        local = settings.model_copy(update={"llm_base_url": server.base_url})
        asked(local, questions[:1])  # the server reads the prompt's fixed start once
        return asked(local, questions)


def hosted_tokens(
    base: Settings, profile: str, questions: list[str], answers: list[str]
) -> tuple[float, float]:
    """Mean prompt tokens of the profile's prompts, as its model's tokenizer counts them, and
    mean answer tokens estimated from `answers` (written by another model)."""
    settings = profile_settings(base, profile)
    encoding = encoding_for_model(settings.llm_model)
    retriever = services.retriever(settings)
    prompts = []
    for question in questions:
        hits = model_context(
            question,
            retriever.search(question, settings.query_top_k),
            settings.context_budget_tokens,
            retriever.embedder.relevance,
        )
        messages = prompt_messages(question, hits)
        prompts.append(
            sum(len(encoding.encode(m["content"])) + TOKENS_PER_MESSAGE for m in messages)
            + TOKENS_PER_MESSAGE
        )
    return statistics.mean(prompts), statistics.mean(len(encoding.encode(a)) for a in answers)


def hit_rate(base: Settings, questions: list[str], queries: int, semantic: bool) -> float:
    """The share of a repeat mix the response cache answers, the semantic cache on or off."""
    rewordings = reworded(questions)
    rng = np.random.default_rng(11)
    service = services.query_service(
        profile_settings(
            base,
            "extractive",
            cache_dir=Path(base.home) / f"cache-{semantic}",
            semantic_cache=semantic,
        )
    )
    hits = 0
    for _ in range(queries):
        question = questions[min(int(rng.zipf(ZIPF_EXPONENT)), len(questions)) - 1]
        if question in rewordings and rng.random() < REWORDED_SHARE:
            question = rewordings[question]
        hits += service.query(QueryRequest(question=question)).cached
    return round(hits / queries, 3)


def reworded(questions: list[str]) -> dict[str, str]:
    """Each labeled question's rewording that needs the same answer."""
    pairs = [json.loads(line) for line in PARAPHRASES.read_text().splitlines() if line.strip()]
    return {
        p["question"]: p["paraphrase"]
        for p in pairs
        if p["same_answer"] and p["question"] in questions
    }


def profile_row(
    base: Settings,
    name: str,
    questions: list[str],
    measured: dict[str, Any] | None,
    local_answers: list[str],
    hit_rates: dict[bool, float],
) -> dict[str, Any]:
    settings = profile_settings(base, name)
    if measured is not None:
        responses: list[QueryResponse] = measured["responses"]
        prompt = statistics.mean(r.usage.prompt_tokens for r in responses)
        completion = statistics.mean(r.usage.completion_tokens for r in responses)
        latency = {
            "p50_s": round(percentile(measured["durations"], 0.5), 2),
            "p95_s": round(percentile(measured["durations"], 0.95), 2),
        }
    else:
        prompt, completion = hosted_tokens(base, name, questions, local_answers)
        latency = {}
    prompt_price, completion_price = LIST_PRICES.get(settings.llm_model, (0.0, 0.0))
    answer_cost = (
        0.0
        if settings.answerer == "extractive"
        else (prompt * prompt_price + completion * completion_price) / 1e6
    )
    hit = hit_rates[settings.semantic_cache]
    return {
        "model": "none" if settings.answerer == "extractive" else settings.llm_model,
        **latency,
        "prompt_tokens": round(prompt),
        "completion_tokens": round(completion),
        "tokens_estimated": measured is None,
        "gbp_per_1k_uncached": round(1000 * answer_cost, 4),
        "gbp_per_1k": round((1 - hit) * 1000 * answer_cost, 4),
    }


def profile_table(rows: dict[str, dict[str, Any]], hit_rates: dict[bool, float]) -> Any:
    return table(
        f"cost profiles (cache hit rate on the repeat mix: {hit_rates[False]:.0%} exact, "
        f"{hit_rates[True]:.0%} with the semantic cache)",
        ("profile", "model", "p50 s", "p95 s", "tokens in/out", "£/1k uncached", "£/1k"),
        [
            (
                name,
                row["model"],
                str(row.get("p50_s", "-")),
                str(row.get("p95_s", "-")),
                f"{row['prompt_tokens']}/{row['completion_tokens']}"
                + (" (est.)" if row["tokens_estimated"] else ""),
                f"{row['gbp_per_1k_uncached']:.3f}",
                f"{row['gbp_per_1k']:.3f}",
            )
            for name, row in rows.items()
        ],
        left={"profile", "model"},
    )


if __name__ == "__main__":
    main()
