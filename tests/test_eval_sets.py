"""The labeled question sets (`eval_sets/*.jsonl`). Every set loads; the hand-labeled set over
the sample corpus and the sample warehouse's tickets says only what its documents say: each
fact is in the text of one of its question's sources as a reader sees it (no markup), and each
source names exactly one document, by the key the platform stores it under."""

import html
import re
from functools import cache
from pathlib import Path, PurePosixPath

import pytest
from pypdf import PdfReader

from rag_core.adapters.catalog import plan_sources
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.adapters.warehouse.rows import document_models, rendered_rows
from rag_core.domain.layout import is_warehouse_source
from rag_core.evaluation.labeled_sets import LabeledQuestion, load_set
from rag_core.settings import Settings
from rag_core.sources.warehouse import document_key
from rag_core.sources.warehouse_sample import load_sample

from conftest import SAMPLE_CORPUS

EVAL_SETS = Path(__file__).resolve().parents[1] / "eval_sets"
SAMPLE_SET = EVAL_SETS / "sample_corpus_qa.jsonl"
CORPUS_FORMATS = {".html", ".md", ".txt", ".pdf"}
SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
TAG = re.compile(r"<[^>]*>")


def comparable(text: str) -> str:
    """Case and runs of whitespace do not matter when looking for a fact."""
    return " ".join(text.split()).casefold()


def visible_text(path: Path) -> str:
    """What a reader of the file sees: HTML without its tags (nor what is inside them) and
    with entities decoded, a PDF's extracted text, any other file as it is."""
    if path.suffix == ".html":
        markup = SCRIPT_OR_STYLE.sub(" ", path.read_text(encoding="utf-8"))
        return html.unescape(TAG.sub(" ", markup))
    if path.suffix == ".pdf":
        return "\n".join(page.extract_text() for page in PdfReader(path).pages)
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every document the sample corpus and the sample warehouse become, by source key (what
    a `source_uri` ends with), as comparable text: the corpus files as `ragctl add` keys
    them, the tickets as the warehouse source renders them after `dbt build`."""
    texts = {key: visible_text(file) for file, key in plan_sources([SAMPLE_CORPUS])}
    settings = Settings(home=tmp_path_factory.mktemp("warehouse") / "rag")
    load_sample(settings)
    build_models(settings)
    for table in document_models():
        for row in rendered_rows(settings, table).values():
            texts[document_key(table, row.row_key)] = row.markdown()
    return {key: comparable(text) for key, text in texts.items()}


@cache
def sample_set() -> list[LabeledQuestion]:
    return load_set(SAMPLE_SET)


def answerable() -> list[LabeledQuestion]:
    return [question for question in sample_set() if question.answerable]


def gold_documents(question: LabeledQuestion, documents: dict[str, str]) -> list[str]:
    return [key for key in documents if question.is_gold(key)]


@pytest.mark.parametrize("path", sorted(EVAL_SETS.glob("*.jsonl")), ids=lambda path: path.name)
def test_every_set_loads(path: Path) -> None:
    questions = load_set(path)
    assert questions, f"{path.name} has no questions"
    assert all(question.sources for question in questions if question.answerable)


def test_every_source_names_exactly_one_document(documents: dict[str, str]) -> None:
    ambiguous_or_missing = {
        (question.id, source): matched
        for question in answerable()
        for source in question.sources
        if len(
            matched := gold_documents(question.model_copy(update={"sources": (source,)}), documents)
        )
        != 1
    }
    assert not ambiguous_or_missing


def test_every_fact_is_in_the_text_of_a_source(documents: dict[str, str]) -> None:
    missing = [
        (question.id, fact)
        for question in answerable()
        for fact in question.facts
        if not any(
            comparable(fact) in documents[key] for key in gold_documents(question, documents)
        )
    ]
    assert not missing


def test_reference_answers_state_their_facts() -> None:
    """The reference answer is a correct answer, so the facts' own check must pass on it."""
    unstated = [
        (question.id, fact)
        for question in answerable()
        for fact in question.facts
        if comparable(fact) not in comparable(question.reference_answer)
    ]
    assert not unstated


def test_facts_are_not_given_away_by_the_question() -> None:
    """A fact the question already states would credit an answer that merely repeats it."""
    echoed = [
        (question.id, fact)
        for question in answerable()
        for fact in question.facts
        if comparable(fact) in comparable(question.question)
    ]
    assert not echoed


def test_the_set_covers_every_format_and_the_warehouse(documents: dict[str, str]) -> None:
    questions = sample_set()
    assert len(questions) >= 60
    assert sum(not question.answerable for question in questions) >= 10
    assert all(question.facts for question in answerable())
    gold = [
        (question.id, key)
        for question in answerable()
        for key in gold_documents(question, documents)
    ]
    formats = {PurePosixPath(key).suffix for _, key in gold if not is_warehouse_source(key)}
    assert formats == CORPUS_FORMATS
    assert len({id_ for id_, key in gold if is_warehouse_source(key)}) >= 5
