import itertools

from rag_core.domain.chunking import chunk_document, embedded_text, split_text
from rag_core.domain.parsing import Element, ParsedDocument

WORDS = " ".join(f"word{i}" for i in range(400))


def test_split_text_respects_size_and_overlap() -> None:
    pieces = split_text(WORDS, size=200, overlap=50)
    assert len(pieces) > 1
    assert all(len(piece) <= 200 for piece in pieces)
    for previous, following in itertools.pairwise(pieces):
        assert following.split()[0] in previous.split(), "consecutive pieces share words"
    assert " ".join(pieces).split()[-1] == "word399"


def test_short_text_is_one_piece() -> None:
    assert split_text("just a few words", size=200, overlap=50) == ["just a few words"]


def _document() -> ParsedDocument:
    return ParsedDocument(
        title="Guide",
        elements=[
            Element(text="Guide", category="Title", page=1),
            Element(text="Intro paragraph about the guide.", category="NarrativeText", page=1),
            Element(text="Installation", category="Title", page=2),
            Element(text=WORDS, category="NarrativeText", page=2),
            Element(text="Usage", category="Title", page=3),
            Element(text="Run the tool.", category="NarrativeText", page=3),
        ],
    )


def test_headings_start_chunks_and_name_sections() -> None:
    chunks = chunk_document(_document(), "doc", "v1", size=300, overlap=60)
    sections = [chunk.section for chunk in chunks]
    assert sections[0] == "Guide" and sections[-1] == "Usage"
    assert sections.count("Installation") > 1, "a long section is split"
    assert chunks[-1].text.startswith("Usage") and chunks[-1].page == 3
    assert all(chunk.text.strip() for chunk in chunks)
    assert all(len(chunk.text) <= 300 + 60 for chunk in chunks)
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))


def test_overlap_does_not_cross_sections() -> None:
    chunks = chunk_document(_document(), "doc", "v1", size=300, overlap=60)
    usage = next(chunk for chunk in chunks if chunk.section == "Usage")
    assert "word" not in usage.text


def test_chunk_ids_are_deterministic_and_version_specific() -> None:
    first = chunk_document(_document(), "doc", "v1", size=300, overlap=60)
    again = chunk_document(_document(), "doc", "v1", size=300, overlap=60)
    other = chunk_document(_document(), "doc", "v2", size=300, overlap=60)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert not {c.chunk_id for c in first} & {c.chunk_id for c in other}
    assert len({c.chunk_id for c in first}) == len(first)


def test_empty_document_has_no_chunks() -> None:
    empty = ParsedDocument(title="x", elements=[])
    assert chunk_document(empty, "doc", "v1", size=300, overlap=60) == []


def test_embedded_text_names_the_page_and_section_a_chunk_belongs_to() -> None:
    parsed = ParsedDocument(
        title="VACUUM",
        elements=[
            Element(text="Parameters", category="Title"),
            Element(text="FULL selects a full vacuum, which can reclaim more space.", category="x"),
            Element(text="x " * 600, category="NarrativeText"),
        ],
    )
    first, *rest = chunk_document(parsed, "d" * 32, "v" * 16, size=500, overlap=50)
    # The chunk opens with its section heading already: only the page is added.
    assert embedded_text(parsed.title, first) == f"VACUUM\n\n{first.text}"
    deeper = rest[-1]
    assert not deeper.text.startswith("Parameters")
    assert embedded_text(parsed.title, deeper) == f"VACUUM > Parameters\n\n{deeper.text}"
    # A page titled by its only heading is not named twice.
    assert embedded_text("Parameters", first) == first.text
