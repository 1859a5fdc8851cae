import pytest

from rag_core.domain.parsing import parse_document

from conftest import SAMPLE_CORPUS


@pytest.mark.parametrize(
    ("name", "expected_title"),
    [
        ("postgresql/tutorial-createdb.html", "Creating a Database"),
        ("pip/getting-started.md", "Getting Started"),
        ("specs/shared-mime-info-spec.pdf", "Shared MIME-info Database"),
    ],
)
def test_formats_parse_offline(name: str, expected_title: str) -> None:
    parsed = parse_document((SAMPLE_CORPUS / name).read_bytes(), name.rsplit("/", 1)[-1])
    assert parsed.ok, parsed.error
    assert expected_title in parsed.title
    categories = {element.category for element in parsed.elements}
    assert "Title" in categories and "NarrativeText" in categories


def test_pdf_elements_carry_pages() -> None:
    name = "specs/shared-mime-info-spec.pdf"
    parsed = parse_document((SAMPLE_CORPUS / name).read_bytes(), "spec.pdf")
    pages = {element.page for element in parsed.elements}
    assert 1 in pages and max(p for p in pages if p) > 5


def test_plain_text_parses() -> None:
    parsed = parse_document((SAMPLE_CORPUS / "dpkg/frontend-api.txt").read_bytes(), "api.txt")
    assert parsed.ok
    assert any("frontend" in element.text.lower() for element in parsed.elements)


def test_spacy_model_loads_from_the_installed_package() -> None:
    import spacy

    nlp = spacy.load("en_core_web_sm")
    assert [t.pos_ for t in nlp("The server listens on a port.")][1] == "NOUN"


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (b"%PDF-1.4\n garbage that is not a pdf", "broken.pdf", ""),
        (b"\x00\x01\x02", "image.bin", "unsupported file type .bin"),
        (b"   \n\n  ", "empty.md", "no text"),
    ],
)
def test_unparseable_input_is_reported_not_raised(content: bytes, name: str, reason: str) -> None:
    parsed = parse_document(content, name)
    assert not parsed.ok
    assert parsed.error and reason in parsed.error
    assert parsed.elements == []
