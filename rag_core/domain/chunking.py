"""Title-aware chunking: a heading always starts a new chunk, and each chunk records the
section it belongs to; long sections are split at word boundaries with overlap."""

from pydantic import BaseModel

from rag_core.domain.ids import chunk_id_for
from rag_core.domain.parsing import Element, ParsedDocument


class Chunk(BaseModel):
    chunk_id: str
    position: int
    text: str
    section: str
    page: int | None


def embedded_text(title: str, chunk: Chunk) -> str:
    """What is embedded for a chunk: its text under a short header naming its page and
    section, so a chunk deep inside a page still says what it is about (the citation snippet
    shows the chunk's own text)."""
    path = [part for part in dict.fromkeys((title.strip(), chunk.section.strip())) if part]
    header = " > ".join(part for part in path if not chunk.text.startswith(part))
    return f"{header}\n\n{chunk.text}" if header else chunk.text


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


class _ChunkBuilder:
    def __init__(self, size: int, overlap: int):
        self.size, self.overlap = size, overlap
        self.drafts: list[tuple[str, str, int | None]] = []
        self.carry = ""  # tail of the previous chunk, repeated at the start of the next
        self.parts: list[str] = []
        self.section = ""
        self.page: int | None = None

    def flush(self, carry_overlap: bool) -> None:
        if self.parts:
            text = "\n\n".join([self.carry, *self.parts] if self.carry else self.parts)
            self.drafts.append((text, self.section, self.page))
            self.carry = _tail(text, self.overlap) if carry_overlap else ""
        self.parts = []

    def add(self, element: Element) -> None:
        if element.category == "Title":
            self.flush(carry_overlap=False)
            self.carry = ""
            self.section = element.text[:300]
        for piece in split_text(element.text, self.size, self.overlap):
            length = len(self.carry) + sum(len(p) + 2 for p in self.parts)
            if self.parts and length + len(piece) > self.size:
                self.flush(carry_overlap=True)
            if not self.parts:
                self.page = element.page
            self.parts.append(piece)


def chunk_document(
    parsed: ParsedDocument, doc_id: str, version: str, *, size: int, overlap: int
) -> list[Chunk]:
    builder = _ChunkBuilder(size, overlap)
    for element in parsed.elements:
        builder.add(element)
    builder.flush(carry_overlap=False)
    return [
        Chunk(
            chunk_id=chunk_id_for(doc_id, version, position, text),
            position=position,
            text=text,
            section=section,
            page=page,
        )
        for position, (text, section, page) in enumerate(builder.drafts)
    ]
