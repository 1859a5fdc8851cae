"""Labeled question sets (`eval_sets/*.jsonl`): one question per line, with what a correct
answer states and which documents hold it.

    {"id": "pip-hashes", "question": "...", "reference_answer": "...",
     "facts": ["--require-hashes"], "sources": ["pip/repeatable-installs.md"],
     "answerable": true}

`sources` are path suffixes of the gold documents' `source_uri`; `facts` are short phrases
(compared case-insensitively) a correct answer contains. A retrieval-only set gives sources
alone. An unanswerable question has `"answerable": false` and neither facts nor sources.
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LabeledQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    reference_answer: str = ""
    facts: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    answerable: bool = True

    @model_validator(mode="after")
    def _labels_match_answerability(self) -> "LabeledQuestion":
        if self.answerable and not self.sources:
            raise ValueError("an answerable question names its gold sources")
        if not self.answerable and (self.facts or self.sources):
            raise ValueError("an unanswerable question has no facts and no sources")
        return self

    def is_gold(self, source_uri: str) -> bool:
        """Whether a document (by its `source_uri`) is one of this question's sources: a
        source matches whole path segments (`abort.html` is not `sql-abort.html`)."""
        return any(
            source_uri == suffix or source_uri.endswith("/" + suffix) for suffix in self.sources
        )


class LabeledSetError(ValueError):
    """A labeled set that cannot be read: the message names the file and line."""


def load_set(path: Path) -> list[LabeledQuestion]:
    """The questions of a set, in file order; blank lines are skipped. Raises
    `LabeledSetError` naming the line of the first malformed or duplicate question."""
    questions: list[LabeledQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = LabeledQuestion.model_validate_json(line)
        except ValueError as invalid:
            raise LabeledSetError(f"{path}:{number}: {invalid}") from invalid
        if question.id in seen:
            raise LabeledSetError(f"{path}:{number}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    return questions
