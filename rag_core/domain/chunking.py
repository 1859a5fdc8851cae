"""Structure-aware chunking: chunks follow a document's sections and record where they sit.

A heading starts a new chunk once the current one holds enough text to stand alone; a heading
with no text of its own, or a section of a line or two, merges into its neighbour instead of
becoming a chunk that matches nothing in particular. Each chunk records its heading path
("Parameters > FULL", under the document's title), and what is embedded and keyword-indexed
carries that path as a short header (`indexed_text`), so a chunk deep inside a page still says
what page and section it belongs to. Long sections are split at word boundaries with overlap.
"""

import re
from dataclasses import dataclass, field

from pydantic import BaseModel

from rag_core.domain.ids import chunk_id_for
from rag_core.domain.parsing import Element, ParsedDocument

PATH_SEPARATOR = " > "
_NAVIGATION_PHRASES = re.compile(
    r"\b(Prev|Next|Up|Home|Previous topic|Next topic|Table of Contents|Navigation|"
    r"Quick search|This Page|Show Source)\b"
)
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n")
MAX_HEADING_CHARS = 200
# A chunk shorter than this share of the chunk size is a fragment: it merges into a neighbour.
MIN_CHUNK_SHARE = 0.25


class Chunk(BaseModel):
    chunk_id: str
    position: int
    text: str
    section: str  # the heading path below the document's title, outermost first
    page: int | None


def indexed_text(title: str, chunk: Chunk) -> str:
    """What is embedded and keyword-indexed for a chunk: its text under a header naming its
    page and section path (the citation snippet shows the chunk's own text). Parts the text
    already opens with are not repeated."""
    parts = list(dict.fromkeys([title.strip(), *chunk.section.split(PATH_SEPARATOR)]))
    opening = chunk.text.split("\n\n", len(parts))[: len(parts)]
    header = PATH_SEPARATOR.join(part for part in parts if part and part not in opening)
    return f"{header}\n\n{chunk.text}" if header else chunk.text


def reads_as_navigation(text: str) -> bool:
    """Whether a chunk holds only a page's navigation ("Prev | Up | Next", "Previous topic",
    a table of contents): a navigation phrase and no sentence of eight words or more. Main
    content extraction should leave none; the `chunks` asset checks that it did."""
    sentences = _SENTENCE_END.split(text)
    return bool(_NAVIGATION_PHRASES.search(text)) and not any(
        len(sentence.split()) >= 8 for sentence in sentences
    )


def split_text(text: str, size: int, overlap: int) -> list[str]:
    """Windows of at most `size` characters, each starting `overlap` characters before the
    previous one ended, cut at whitespace where there is any."""
    pieces = []
    start = 0
    while len(text) - start > size:
        end = text.rfind(" ", start + 1, start + size + 1)
        if end <= start + overlap:
            end = start + size
        pieces.append(text[start:end].strip())
        next_start = text.find(" ", end - overlap, end)
        start = next_start + 1 if next_start > start else end
    pieces.append(text[start:].strip())
    return [piece for piece in pieces if piece]


def _tail(text: str, overlap: int) -> str:
    """The last `overlap` characters of text, starting at a word boundary."""
    if overlap == 0 or len(text) <= overlap:
        return ""
    tail = text[-overlap:]
    return tail[tail.find(" ") + 1 :] if " " in tail else tail


@dataclass
class _Draft:
    section: str
    page: int | None
    carry: str = ""  # the previous chunk's tail, repeated (overlap within a section)
    parts: list[str] = field(default_factory=list)
    has_body: bool = False  # its parts hold more than headings

    @property
    def text(self) -> str:
        return "\n\n".join([self.carry, *self.parts] if self.carry else self.parts)


class _HeadingPath:
    """The headings above the current element. Levels come from the format (h1-h6, `#`s);
    a heading without one (PDF) is taken as a sibling of the previous such heading."""

    def __init__(self, title: str):
        self.title = title.strip()
        self.levels: list[tuple[int, str]] = []

    def enter(self, heading: Element) -> None:
        text = " ".join(heading.text.split())[:MAX_HEADING_CHARS]
        level = heading.depth if heading.depth is not None else 1
        while self.levels and self.levels[-1][0] >= level:
            self.levels.pop()
        if self.levels or text != self.title:  # the page's own title heads no section
            self.levels.append((level, text))

    def __str__(self) -> str:
        return PATH_SEPARATOR.join(text for _, text in self.levels)


class _ChunkBuilder:
    def __init__(self, title: str, size: int, overlap: int):
        self.size, self.overlap = size, overlap
        self.min_size = int(size * MIN_CHUNK_SHARE)
        self.path = _HeadingPath(title)
        self.drafts: list[_Draft] = []
        self.current: _Draft | None = None

    def add(self, element: Element) -> None:
        heading = element.category == "Title"
        if heading:
            self._at_heading(element)
        for piece in split_text(element.text, self.size, self.overlap):
            current = self.current
            if current is None:
                current = _Draft(str(self.path), element.page)
            elif current.has_body and len(current.text) + len(piece) + 2 > self.size:
                self.drafts.append(current)
                current = _Draft(str(self.path), element.page, _tail(current.text, self.overlap))
            current.parts.append(piece)
            current.has_body |= not heading
            self.current = current

    def _at_heading(self, heading: Element) -> None:
        """A new section starts a new chunk, unless the current one is still a fragment."""
        current = self.current
        if current is not None and current.has_body and len(current.text) >= self.min_size:
            self.drafts.append(current)
            current = self.current = None
        self.path.enter(heading)
        if current is not None and not current.has_body:
            current.section = str(self.path)  # headings alone so far: the deepest names it

    def finish(self) -> list[_Draft]:
        """The drafts, a trailing fragment merged into the chunk before it."""
        last = self.current
        if last is not None and self.drafts and len(last.text) < self.min_size:
            self.drafts[-1].parts.extend(last.parts)
        elif last is not None:
            self.drafts.append(last)
        return self.drafts


def chunk_document(
    parsed: ParsedDocument, doc_id: str, version: str, *, size: int, overlap: int
) -> list[Chunk]:
    builder = _ChunkBuilder(parsed.title, size, overlap)
    for element in parsed.elements:
        builder.add(element)
    return [
        Chunk(
            chunk_id=chunk_id_for(doc_id, version, position, draft.text),
            position=position,
            text=draft.text,
            section=draft.section,
            page=draft.page,
        )
        for position, draft in enumerate(builder.finish())
    ]
