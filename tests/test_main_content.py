"""Documents as people read them (issue 13): real pages of several generators lose their
navigation, sidebars, headers and footers, keep their whole body with its structure, and are
titled as a person would title them. The pages' sources are in tests/fixtures/html/README.md."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from rag_core.domain import parsing
from rag_core.domain.chunking import chunk_document, reads_as_navigation
from rag_core.domain.html import main_content, page_title
from rag_core.domain.parsing import parse_document

from conftest import SAMPLE_CORPUS

FIXTURES = Path(__file__).parent / "fixtures" / "html"


# Words of navigation blocks ("Prev Up Next", "Previous topic"): a chunk holding them and no
# sentence is made only of navigation.
@dataclass(frozen=True)
class Page:
    path: Path
    title: str
    boilerplate: tuple[str, ...]  # texts of the page chrome
    first: str  # from the first paragraph of the main text
    last: str  # from the last
    structure: frozenset[str]  # element categories the body keeps (headings, tables, code)


PAGES = [
    Page(
        FIXTURES / "sphinx-python-tomllib.html",
        "tomllib — Parse TOML files",
        (
            "Navigation", "Previous topic", "Next topic", "configparser", "netrc", "This Page",
            "Report a Bug", "Show Source", "Quick search", "Table of Contents", "Copyright",
            "Please donate", "Python »", "¶",
        ),
        "This module provides an interface for parsing TOML",
        "local time datetime.time array list",
        frozenset({"Title", "NarrativeText", "CodeSnippet", "Table"}),
    ),
    Page(
        FIXTURES / "sphinx-django-urls.html",
        "django.urls functions for use in URLconfs",
        (
            "Django 3.2.25 documentation", "Table of contents", "Module index", "previous",
            "Previous topic", "Next topic", "Django Utils", "Quick search", "Last update", "¶",
        ),
        "Returns an element for inclusion in urlpatterns",
        "be sure it accepts a request argument and returns an HttpResponseServerError.",
        frozenset({"Title", "NarrativeText", "CodeSnippet", "Table"}),
    ),
    Page(
        SAMPLE_CORPUS / "postgresql/datatype-json.html",
        "8.14. JSON Types",
        ("Prev", "Home", "Next", "8.13. XML Type", "Chapter 8. Data Types", "8.15. Arrays"),
        "JSON data types are for storing JSON (JavaScript Object Notation) data",
        "though JSON terminology sometimes considers array elements distinct from values",
        frozenset({"Title", "NarrativeText", "CodeSnippet", "Table", "ListItem"}),
    ),
    Page(
        FIXTURES / "mkdocs-cli.html",
        "Command Line Interface",
        (
            "Getting Started", "Release Notes", "Previous", "Edit on GitHub", "Keyboard Shortcuts",
            "Open this help", "From here you can search", "Documentation built with MkDocs",
            "Copyright ©", "\uf0c1",
        ),
        "MkDocs - Project documentation with Markdown.",
        "--help boolean Show this message and exit. False",
        frozenset({"Title", "NarrativeText", "CodeSnippet", "Table", "ListItem"}),
    ),
    Page(
        FIXTURES / "mkdocs-material-literate-nav.html",
        "mkdocs-literate-nav",
        ("Skip to content", "Initializing search", "Made with", "Reference", "#\n"),
        "Plugin for MkDocs to specify the navigation in Markdown instead of YAML",
        "it will not accept 2-space indentation for sub-lists",
        frozenset({"Title", "NarrativeText", "CodeSnippet", "Table"}),
    ),
    Page(
        FIXTURES / "handwritten-no-markup.html",
        "Rotating signing keys",
        (
            "We use cookies", "Accept all cookies", "Acme Platform", "Guides", "Search the docs",
            "Operations guide", "Popular pages", "Backing up the metadata store", "Copyright",
        ),
        "The platform signs every access token with a private key",
        "keep the old key published until every client has fetched the new list.",
        frozenset({"Title", "NarrativeText", "CodeSnippet", "Table", "ListItem"}),
    ),
]  # fmt: skip


def _parse(path: Path) -> parsing.ParsedDocument:
    parsed = parse_document(path.read_bytes(), path.name)
    assert parsed.ok, parsed.error
    return parsed


def _plain(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.path.stem)
def test_page_keeps_its_whole_body_and_loses_its_chrome(page: Page) -> None:
    parsed = _parse(page.path)
    text = "\n".join(_plain(element.text) for element in parsed.elements) + "\n"
    for boilerplate in page.boilerplate:
        assert boilerplate not in text, f"{boilerplate!r} left in {page.path.name}"
    assert page.first in text and page.last in text
    assert page.structure <= {element.category for element in parsed.elements}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.path.stem)
def test_page_is_titled_by_its_own_heading_which_comes_first(page: Page) -> None:
    parsed = _parse(page.path)
    assert parsed.title == page.title
    assert _plain(parsed.elements[0].text) == page.title


@pytest.mark.parametrize(
    ("head_title", "h1", "expected"),
    [
        ("Foo — Acme Platform 4.2 documentation", "", "Foo"),
        ("Foo \u2013 Bar | Site", "", "Foo \u2013 Bar"),  # an en dash
        ("Reference :: Widgets :: Acme", "", "Reference :: Widgets"),
        ("PostgreSQL: Documentation: 17: VACUUM", "VACUUM", "VACUUM"),
        ("json — JSON — Python 3.11 documentation", "json — JSON", "json — JSON"),
        # A site logo in an h1 is the site's name, not the page's.
        ("django.urls — Django 3.2 documentation", "Django 3.2 documentation", "django.urls"),
        ("Release notes", "Version 4.2", "Release notes"),
        ("", "Only a heading", "Only a heading"),
        ("", "", None),
    ],
)  # fmt: skip
def test_page_title_drops_the_site_name(head_title: str, h1: str, expected: str | None) -> None:
    assert page_title(head_title, h1) == expected


@pytest.mark.parametrize(
    "content",
    [
        '<html><head><meta charset="windows-1252"><title>Café</title></head>'
        "<body><h1>Café</h1><p>Crème brûlée.</p></body></html>".encode("cp1252"),
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        "</head><body><h1>Café</h1><p>Crème brûlée.</p></body></html>".encode("latin-1"),
        b"\xef\xbb\xbf<html><body><h1>Caf\xc3\xa9</h1><p>Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e.</p>",
        "<html><body><h1>Café</h1><p>Crème brûlée.</p></body></html>".encode("utf-16"),
        # Declared UTF-8, written in windows-1252: read as the bytes allow.
        '<meta charset="utf-8"><h1>Café</h1><p>Crème brûlée.</p>'.encode("cp1252"),
        '<?xml version="1.0" encoding="UTF-8"?><html><body><h1>Café</h1><p>Crème brûlée.</p>'
        "</body></html>".encode(),
    ],
    ids=[
        "meta-charset",
        "http-equiv-latin1",
        "utf8-bom",
        "utf16-bom",
        "wrong-declaration",
        "xhtml",
    ],
)
def test_encodings_are_read_as_browsers_read_them(content: bytes) -> None:
    parsed = parse_document(content, "page.html")
    assert parsed.title == "Café"
    assert "Crème brûlée." in [element.text for element in parsed.elements]


@pytest.mark.parametrize(
    "content",
    [
        b"<html><body><div><p>An unclosed paragraph <b>in bold",
        b"<p>Fragment</p><<<>>>&&&\x00\x01 text",
        b"<html><head><title>Only a head</title></head></html> Stray words.",
    ],
)
def test_broken_markup_never_raises(content: bytes) -> None:
    page = main_content(content)
    assert page.html


def test_page_that_cannot_be_cleaned_is_partitioned_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(content: bytes) -> None:
        raise RuntimeError("cleaning failed")

    monkeypatch.setattr(parsing, "main_content", broken)
    parsed = parse_document((SAMPLE_CORPUS / "postgresql/sql-vacuum.html").read_bytes(), "v.html")
    assert parsed.ok and parsed.title == "VACUUM"
    assert any("Prev" in element.text for element in parsed.elements)  # the navigation stayed


def test_page_of_nothing_but_navigation_keeps_its_text() -> None:
    page = main_content(
        b"<html><body><nav><a href='a.html'>Installing Acme</a></nav></body></html>"
    )
    assert b"Installing Acme" in page.html


def test_page_without_main_text_is_kept_whole() -> None:
    """Trafilatura finds nothing in a page this short; the page minus its chrome remains."""
    content = b"<html><body><div class='menu'><nav>Home</nav></div><div>Short note.</div></body>"
    parsed = parse_document(content, "note.html")
    assert [element.text for element in parsed.elements] == ["Short note."]


def test_content_that_looks_like_chrome_stays() -> None:
    """An article's header, a section about cookies and a footnote in an <aside> are content."""
    content = b"""<html><body><div class="cookie-banner">We use cookies.</div>
    <main><article><header><h1>Sessions</h1></header>
    <div id="cookies" class="section"><h2>Cookies</h2><p>The session cookie is signed.</p></div>
    <p>Sessions expire.</p><aside class="footnote"><p>After two weeks by default.</p></aside>
    </article></main><aside class="sidebar">Related: Caching</aside></body></html>"""
    parsed = parse_document(content, "sessions.html")
    texts = [element.text for element in parsed.elements]
    assert parsed.title == "Sessions"
    assert "The session cookie is signed." in texts and "After two weeks by default." in texts
    assert not any("We use cookies" in text or "Caching" in text for text in texts)


def test_sample_corpus_reads_as_a_person_expects() -> None:
    files = sorted(path for path in SAMPLE_CORPUS.rglob("*") if path.is_file())
    for path in files:
        parsed = _parse(path)
        print(f"{path.relative_to(SAMPLE_CORPUS)}: {parsed.title}")
        assert parsed.title not in ("Navigation", "Table of Contents", path.name)
        chunks = chunk_document(parsed, "doc", "v1", size=1000, overlap=150)
        navigation = [chunk.text for chunk in chunks if reads_as_navigation(chunk.text)]
        assert not navigation, f"{path.name}: chunks of navigation {navigation}"
