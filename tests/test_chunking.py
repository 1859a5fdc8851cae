import itertools

from rag_core.domain.chunking import chunk_document, indexed_text, split_text
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


SENTENCE = "The tool reads its configuration from the file named on the command line. "


def _document() -> ParsedDocument:
    return ParsedDocument(
        title="Guide",
        elements=[
            Element(text="Guide", category="Title", page=1, depth=0),
            Element(text=SENTENCE * 4, category="NarrativeText", page=1),
            Element(text="Installation", category="Title", page=2, depth=1),
            Element(text=WORDS, category="NarrativeText", page=2),
            Element(text="Usage", category="Title", page=3, depth=1),
            Element(text=SENTENCE * 3, category="NarrativeText", page=3),
        ],
    )


def test_headings_start_chunks_and_record_their_path() -> None:
    chunks = chunk_document(_document(), "doc", "v1", size=300, overlap=60)
    sections = [chunk.section for chunk in chunks]
    assert sections[0] == "", "the page's own title heads no section"
    assert sections[-1] == "Usage"
    assert sections.count("Installation") > 1, "a long section is split"
    assert chunks[-1].text.startswith("Usage") and chunks[-1].page == 3
    assert all(chunk.text.strip() for chunk in chunks)
    assert all(len(chunk.text) <= 300 + 60 for chunk in chunks)
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))


def test_overlap_does_not_cross_sections() -> None:
    chunks = chunk_document(_document(), "doc", "v1", size=300, overlap=60)
    usage = next(chunk for chunk in chunks if chunk.section == "Usage")
    assert "word" not in usage.text


def _element(text: str, depth: int | None = None) -> Element:
    category = "Title" if depth is not None else "NarrativeText"
    return Element(text=text, category=category, depth=depth)


def test_the_path_follows_heading_levels() -> None:
    parsed = ParsedDocument(
        title="VACUUM",
        elements=[
            _element("VACUUM", 0),
            _element("Parameters", 1),
            _element("FULL", 2),
            _element(SENTENCE * 5),
            _element("ANALYZE", 2),
            _element(SENTENCE * 5),
            _element("Notes", 1),
            _element(SENTENCE * 5),
        ],
    )
    chunks = chunk_document(parsed, "doc", "v1", size=500, overlap=50)
    assert [c.section for c in chunks] == [
        "Parameters > FULL",
        "Parameters > ANALYZE",
        "Notes",
    ]
    assert chunks[0].text.startswith("VACUUM\n\nParameters\n\nFULL\n\nThe tool")


def test_fragments_merge_into_their_neighbours() -> None:
    """A heading with no text of its own, a one-line section and a short last section never
    stand alone: each is read with what follows or precedes it."""
    parsed = ParsedDocument(
        title="Guide",
        elements=[
            _element("Overview", 1),
            _element("Requirements", 2),
            _element("- Python 3.11"),
            _element("Install", 2),
            _element(SENTENCE * 5),
            _element("Upgrade", 2),
            _element(SENTENCE * 5),
            _element("See also", 1),
            _element("- the reference"),
        ],
    )
    chunks = chunk_document(parsed, "doc", "v1", size=500, overlap=50)
    assert [c.section for c in chunks] == ["Overview > Requirements", "Overview > Upgrade"]
    assert "- Python 3.11\n\nInstall" in chunks[0].text
    assert chunks[-1].text.endswith("See also\n\n- the reference")
    assert all(len(c.text) >= 125 for c in chunks)


def test_headings_without_levels_are_siblings() -> None:
    parsed = ParsedDocument(
        title="Spec",
        elements=[
            _element("Introduction", None),
            _element(SENTENCE * 5),
            _element("Definitions", None),
            _element(SENTENCE * 5),
        ],
    )
    for element in parsed.elements[::2]:
        element.category = "Title"
    chunks = chunk_document(parsed, "doc", "v1", size=500, overlap=50)
    assert [c.section for c in chunks] == ["Introduction", "Definitions"]


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


def test_indexed_text_names_the_page_and_section_path_of_a_chunk() -> None:
    parsed = ParsedDocument(
        title="VACUUM",
        elements=[
            _element("Parameters", 1),
            _element("FULL", 2),
            _element("FULL selects a full vacuum, which can reclaim more space."),
            _element("x " * 600),
        ],
    )
    first, *rest = chunk_document(parsed, "d" * 32, "v" * 16, size=500, overlap=50)
    # The chunk opens with its section headings already: only the page is added.
    assert indexed_text(parsed.title, first) == f"VACUUM\n\n{first.text}"
    deeper = rest[-1]
    assert not deeper.text.startswith("Parameters")
    assert indexed_text(parsed.title, deeper) == f"VACUUM > Parameters > FULL\n\n{deeper.text}"
    # A page titled by its only heading is not named twice.
    alone = chunk_document(
        ParsedDocument(title="Parameters", elements=parsed.elements[:1] + parsed.elements[2:3]),
        "d" * 32, "v" * 16, size=500, overlap=50,
    )  # fmt: skip
    assert indexed_text("Parameters", alone[0]) == alone[0].text
