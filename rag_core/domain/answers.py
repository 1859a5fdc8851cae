"""What every answerer produces, and the protocol the query flow calls: the language model
and the extractive fallback are interchangeable behind it."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from rag_core.domain.schemas import Citation, Hit, Usage

NO_ANSWER = "I don't know: nothing in the index is relevant enough to answer that."


@dataclass(frozen=True)
class Generation:
    answer: str
    citations: list[Citation]
    generator: str
    usage: Usage = field(default_factory=Usage)


class Answerer(Protocol):
    name: str

    def generate(self, question: str, hits: list[Hit]) -> Generation: ...

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str | Generation]:
        """Text deltas, then the complete generation."""
        ...
