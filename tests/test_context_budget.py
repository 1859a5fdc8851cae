"""The context budget: passages cut to the sentences that bear on the question before a model
reads them, and answers cut at the token limit ending on a whole sentence."""

from collections.abc import Sequence

import pytest

from rag_core.adapters.llm.client import _whole_sentences
from rag_core.domain.context import estimated_tokens, fit_to_budget, segments_of
from rag_core.domain.schemas import Hit
from rag_core.services import embedder
from rag_core.settings import Settings

FILLER = "The server writes a line to its log for every checkpoint it completes. " * 6
PORT_PAGE = (
    "listen_addresses (string)\n\nSpecifies the TCP/IP addresses on which the server listens. "
    f"{FILLER}\n\nport (integer)\n\nThe TCP port the server listens on; 5432 by default. "
    f"{FILLER}"
)
OTHER_PAGE = f"Backups are kept for thirty days unless configured otherwise. {FILLER}"


def _hit(n: int, text: str) -> Hit:
    return Hit(chunk_id=f"c{n}", doc_id=f"d{n}", version="v", source_uri=f"file:///doc{n}.md",
               title=f"Doc {n}", section="", page=None, score=0.5, vector_score=0.6,
               keyword_score=None, text=text)  # fmt: skip


def shared_words(question: str, segments: Sequence[str]) -> list[float]:
    """Relevance as the count of the question's words a segment holds."""
    words = set(question.lower().rstrip("?").split())
    return [float(len(words & set(s.lower().split()))) for s in segments]


def test_passages_that_fit_are_given_whole() -> None:
    hits = [_hit(1, PORT_PAGE), _hit(2, OTHER_PAGE)]
    assert fit_to_budget("Which port?", hits, 10_000, shared_words) == hits


def test_a_short_line_is_read_with_the_sentence_after_it() -> None:
    segments = segments_of(PORT_PAGE)
    assert "port (integer) The TCP port the server listens on; 5432 by default." in segments
    assert all(len(s.split()) >= 5 for s in segments)


def test_over_budget_the_best_ranked_passages_are_kept_whole_and_the_next_cut() -> None:
    short = _hit(1, "The TCP port the server listens on is 5432 by default.")
    hits = [short, _hit(2, PORT_PAGE), _hit(3, OTHER_PAGE)]
    question = "Which TCP port does the server listen on by default?"
    budget = estimated_tokens(short.text) + 60
    first, cut = fit_to_budget(question, hits, budget, shared_words)  # the third is left out
    assert first == short
    assert cut.chunk_id == "c2" and estimated_tokens(cut.text) <= 60
    # Around its best sentence, the line before it (the entry's name) read first.
    assert "port (integer) The TCP port the server listens on; 5432 by default." in cut.text
    assert cut.text.startswith("… ") and cut.text.endswith(" …")


def test_too_little_room_left_is_not_filled_with_a_scrap() -> None:
    whole = _hit(1, OTHER_PAGE)
    budget = estimated_tokens(OTHER_PAGE) + 10
    assert fit_to_budget(
        "How long are backups kept?", [whole, _hit(2, PORT_PAGE)], budget, shared_words
    ) == [whole]


def test_a_first_passage_over_budget_is_cut_to_its_best_sentence() -> None:
    [cut] = fit_to_budget("Which port by default?", [_hit(1, PORT_PAGE)], 1, shared_words)
    assert cut.text == "… port (integer) The TCP port the server listens on; 5432 by default. …"


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("Which TCP port is used if I don't configure one?", "5432"),
        ("How long do we keep backups?", "thirty days"),
    ],
)
def test_the_embedder_finds_the_sentence_that_answers(question: str, fact: str) -> None:
    model = embedder(Settings())
    hits = [_hit(1, PORT_PAGE if fact == "5432" else OTHER_PAGE)]
    [cut] = fit_to_budget(question, hits, 30, model.relevance)
    assert fact in cut.text


def test_an_answer_cut_by_the_token_limit_ends_on_its_last_whole_sentence() -> None:
    cut = "The port is 5432 [1]. It can be changed in postgresql.conf [2]. The serv"
    assert (
        _whole_sentences(cut, "length")
        == "The port is 5432 [1]. It can be changed in postgresql.conf [2]."
    )
    assert (
        _whole_sentences("The port is 5432 [1]", "length") == "The port is 5432 [1]"
    )  # none whole
    assert _whole_sentences(cut, "stop") == cut  # the model ended it: left as written
