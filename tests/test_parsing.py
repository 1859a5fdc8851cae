import io

import pytest
from pypdf import PdfReader, PdfWriter

from rag_core.domain.parsing import is_real_title, parse_document

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


FRONT_MATTER = b"---\ntitle: Release checklist\nauthor: ops\n---\n# Checklist\n\nShip it.\n"
FENCED_HASH = b"Intro.\n\n```\n# not a heading\n```\n===\n\nDeploying\n=========\n\nShip it.\n"


@pytest.mark.parametrize(
    ("markdown", "expected_title"),
    [
        (FRONT_MATTER, "Release checklist"),
        (b"---\nlayout: page\n---\n\nIntro line.\n\n# Deploying\n\nShip it.\n", "Deploying"),
        (FENCED_HASH, "Deploying"),
        (b"## Only a second-level heading\n\nShip it.\n", "Only a second-level heading"),
        (b"Ship it, then check the dashboards and the error budget.\n", "notes.md"),
    ],
)
def test_markdown_title_is_front_matter_or_first_heading(
    markdown: bytes, expected_title: str
) -> None:
    parsed = parse_document(markdown, "notes.md")
    assert parsed.ok and parsed.title == expected_title
    assert not any(
        "layout" in element.text or "author" in element.text for element in parsed.elements
    )


def test_plain_text_title_is_its_underlined_first_line() -> None:
    parsed = parse_document((SAMPLE_CORPUS / "dpkg/rootless-builds.txt").read_bytes(), "r.txt")
    assert parsed.title == "Supporting rootless builds"


def _pdf_titled(title: str) -> bytes:
    reader = PdfReader(SAMPLE_CORPUS / "specs/shared-mime-info-spec.pdf")
    writer = PdfWriter()
    writer.add_page(reader.pages[0])
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("metadata_title", "expected_title"),
    [
        ("MIME-info database specification", "MIME-info database specification"),
        ("Microsoft Word - mime-spec.doc", "Shared MIME-info Database"),
        ("untitled", "Shared MIME-info Database"),
        ("", "Shared MIME-info Database"),
    ],
)  # fmt: skip
def test_pdf_title_is_meaningful_metadata_or_first_heading(
    metadata_title: str, expected_title: str
) -> None:
    parsed = parse_document(_pdf_titled(metadata_title), "spec.pdf")
    assert parsed.ok and parsed.title == expected_title


@pytest.mark.parametrize(
    ("text", "real"),
    [
        ("VACUUM", True),
        ("Getting Started", True),
        ("Navigation", False),
        ("Previous topic", False),
        ("Table of Contents", False),
        ("Contents:", False),
        ("Microsoft Word - report.doc", False),
        ("quarterly-report.pdf", False),
        ("  ", False),
    ],
)
def test_navigation_and_file_names_are_not_titles(text: str, real: bool) -> None:
    assert is_real_title(text) is real
