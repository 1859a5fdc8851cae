"""Prompting and citation handling of the LLM answerer; the model itself is exercised end to
end in test_local_llm.py."""

from rag_core.adapters.answering import ExtractiveAnswerer
from rag_core.adapters.llm.client import LLMAnswerer
from rag_core.adapters.processes import free_port
from rag_core.domain.citations import UNSUPPORTED_NOTE, supported_answer
from rag_core.domain.prompting import prompt_messages
from rag_core.domain.schemas import Hit
from rag_core.services import embedder
from rag_core.settings import Settings


def _hit(n: int, text: str) -> Hit:
    return Hit(chunk_id=f"c{n}", doc_id=f"d{n}", version="v", source_uri=f"file:///doc{n}.md",
               title=f"Doc {n}", section="Intro", page=None, score=0.5, vector_score=0.6,
               keyword_score=None, text=text)  # fmt: skip


HITS = [_hit(1, "The cafeteria opens at eight."), _hit(2, "Parking is on level two.")]


def test_prompt_numbers_the_passages_after_a_worked_example() -> None:
    messages = prompt_messages("When does it open?", HITS)
    assert messages[0]["role"] == "system" and "square brackets" in str(messages[0]["content"])
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"] == (
        "Passages:\n\n[1] The cafeteria opens at eight.\n\n[2] Parking is on level two."
        "\n\nQuestion: When does it open?"
    )


def test_citations_are_attributed_to_the_supporting_passage() -> None:
    answer, cited = supported_answer(
        "It opens at eight [2][7]. Parking is on level two [1]. Be kind.", HITS
    )
    assert cited == [1, 2]
    assert answer == "It opens at eight [1]. Parking is on level two [2]. Be kind."


def test_an_answer_without_supported_citations_says_so() -> None:
    answer, cited = supported_answer("The moon is made of cheese [9].", HITS)
    assert cited == [] and answer.endswith(UNSUPPORTED_NOTE)
    assert supported_answer("I don't know.", HITS) == ("I don't know.", [])


def test_unreachable_model_falls_back_to_extractive() -> None:
    nothing_listens = free_port()
    settings = Settings(
        llm_base_url=f"http://127.0.0.1:{nothing_listens}/v1", llm_timeout_seconds=5
    )
    model = embedder(settings)
    answerer = LLMAnswerer(settings, fallback=ExtractiveAnswerer(model), relevance=model.relevance)
    generation = answerer.generate("When does it open?", HITS)
    assert generation.generator == "extractive"
    assert generation.citations and generation.usage.prompt_tokens == 0
