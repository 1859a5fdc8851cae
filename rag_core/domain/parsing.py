"""Parse PDF, HTML, Markdown and text into elements with unstructured, offline.

PDFs use the `fast` strategy (pdfminer text layer); `hi_res` needs layout models from a hub.
unstructured's sentence heuristics need the spaCy model `en_core_web_sm`, which the project
installs from PyPI (packaging/en_core_web_sm) instead of letting unstructured download it.
A file that cannot be parsed yields a `ParsedDocument` with the reason, never an exception.

Documents are read as people read them: an HTML page is reduced to its main content first
(domain/html.py), Markdown front matter is metadata rather than text, and each document is
titled by what its author called it (the page title, the PDF's metadata title, the front
matter or first `#` heading), never by navigation, and by its file name only as a last resort.
"""

import importlib
import io
import itertools
import logging
import os
import re
from collections.abc import Iterable
from typing import NamedTuple

import yaml
from pydantic import BaseModel, Field

from rag_core.domain.html import main_content

os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")  # unstructured's telemetry ping

PARTITIONER_MODULES = {
    ".pdf": "unstructured.partition.pdf",
    ".html": "unstructured.partition.html",
    ".htm": "unstructured.partition.html",
    ".md": "unstructured.partition.md",
    ".markdown": "unstructured.partition.md",
    ".txt": "unstructured.partition.text",
    ".text": "unstructured.partition.text",
}
SUPPORTED_SUFFIXES = tuple(PARTITIONER_MODULES)
# Said rather than sniffed: libmagic may take a .txt for something else, and a page's main
# content for a fragment of text.
CONTENT_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
}
# Headings that name a page's navigation rather than the page.
NAVIGATION_TITLES = frozenset(
    {
        "navigation", "main navigation", "previous topic", "next topic", "table of contents",
        "contents", "on this page", "this page", "quick search", "search", "menu", "home",
        "index", "skip to content", "untitled", "untitled document",
    }
)  # fmt: skip
_FILE_NAME_TITLE = re.compile(
    r"^microsoft \w+ - |\.(docx?|odt|rtf|pdf|ps|dvi|tex|txt|md|html?|pptx?|xlsx?)$",
    re.IGNORECASE,
)
_FRONT_MATTER = re.compile(
    rb"\A(?:\xef\xbb\xbf)?---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)",
    re.DOTALL | re.MULTILINE,
)
_ATX_H1 = re.compile(r"^#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_H1 = re.compile(r"^=+[ \t]*$")
_UNDERLINE = re.compile(r"^(=+|-+)[ \t]*$")

logger = logging.getLogger(__name__)


class Element(BaseModel):
    text: str
    category: str
    page: int | None = None
    depth: int | None = None  # a heading's level, 0 outermost; None when the format says none


class ParsedDocument(BaseModel):
    title: str
    elements: list[Element] = Field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Source(NamedTuple):
    """What the partitioner reads, with the title the format itself declares, if any."""

    content: bytes
    title: str | None = None
    encoding: str | None = None


def parse_document(content: bytes, file_name: str) -> ParsedDocument:
    """Elements of a document in reading order, with the title a person would give it."""
    suffix = os.path.splitext(file_name)[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return ParsedDocument(title=file_name, error=f"unsupported file type {suffix or '(none)'}")
    source = _prepare(content, file_name, suffix)
    try:
        elements = _partition(source, file_name, suffix)
    except Exception as exc:  # unstructured raises many types for corrupt input
        logger.warning("could not parse %s: %s", file_name, exc)
        return ParsedDocument(title=file_name, error=f"{type(exc).__name__}: {exc}"[:500])
    if not elements:
        return ParsedDocument(title=file_name, error="no text could be extracted")
    return ParsedDocument(title=_title(source.title, elements, file_name), elements=elements)


def is_real_title(text: str) -> bool:
    """False for navigation headings ("Previous topic") and file names posing as titles
    ("Microsoft Word - report.doc"), which tell a reader nothing about the document."""
    text = text.strip()
    return bool(text) and (
        text.casefold().rstrip(":") not in NAVIGATION_TITLES and not _FILE_NAME_TITLE.search(text)
    )


def warm_up_parser(file_names: Iterable[str] = ()) -> None:
    """Load unstructured, its spaCy model and the partitioners these files need, now rather
    than on the first document (or once in every worker process)."""
    parse_document(b"# Warm up\n\nThe parser loads its language model once.", "warm-up.md")
    for suffix in {os.path.splitext(name)[1].lower() for name in file_names}:
        if suffix in PARTITIONER_MODULES:
            try:
                importlib.import_module(PARTITIONER_MODULES[suffix])
            except ImportError as exc:  # reported per document by parse_document
                logger.warning("no parser for %s files: %s", suffix, exc)


def _title(declared: str | None, elements: list[Element], file_name: str) -> str:
    """The format's own title, else the first heading, else the file name."""
    headings = (element.text for element in elements if element.category == "Title")
    candidates = itertools.chain([declared] if declared else [], headings)
    return next((title for title in candidates if is_real_title(title)), file_name)


def _prepare(content: bytes, file_name: str, suffix: str) -> _Source:
    if suffix in (".html", ".htm"):
        return _html_source(content, file_name)
    if suffix == ".pdf":
        return _Source(content, _pdf_metadata_title(content))
    if suffix in (".md", ".markdown"):
        return _markdown_source(content)
    return _Source(content, _underlined_title(content[:1024].decode("utf-8", errors="replace")))


def _html_source(content: bytes, file_name: str) -> _Source:
    """The page's main content; the page as it is when it cannot be cleaned."""
    try:
        page = main_content(content)
    except Exception as exc:  # lxml and trafilatura raise many types for broken markup
        logger.warning("partitioning all of %s, its main content not found: %s", file_name, exc)
        return _Source(content)
    return _Source(page.html, page.title, encoding="utf-8")


def _pdf_metadata_title(content: bytes) -> str | None:
    from pypdf import PdfReader

    try:
        metadata = PdfReader(io.BytesIO(content)).metadata
    except Exception:  # a corrupt PDF is reported by the partitioner
        return None
    title = metadata.title if metadata is not None else None
    return " ".join(title.split()) if title else None


def _markdown_source(content: bytes) -> _Source:
    """Markdown without its YAML front matter, titled by the front matter or first `#` heading."""
    front_matter = _front_matter(content)
    if front_matter is not None:
        meta, content = front_matter
        if isinstance(title := meta.get("title"), str) and title.strip():
            return _Source(content, title.strip())
    return _Source(content, _markdown_h1(content.decode("utf-8", errors="replace")))


def _front_matter(content: bytes) -> tuple[dict[str, object], bytes] | None:
    """The front matter's fields and the text after it, when the file starts with YAML."""
    match = _FRONT_MATTER.match(content)
    if not match:
        return None
    try:
        meta = yaml.safe_load(match[1].decode("utf-8", errors="replace"))
    except yaml.YAMLError:
        return None
    return (meta, content[match.end() :]) if isinstance(meta, dict) else None


def _markdown_h1(text: str) -> str | None:
    """The first level-one heading, `# Title` or `Title` over `===`, outside code fences."""
    in_fence, previous = False, ""
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence, previous = not in_fence, ""
        elif not in_fence:
            if match := _ATX_H1.match(line):
                return match[1]
            if _SETEXT_H1.match(line) and previous.strip():
                return previous.strip()
            previous = line
    return None


def _underlined_title(text: str) -> str | None:
    """A plain-text document's first line when a row of `=` or `-` underlines it."""
    lines = text.lstrip().splitlines()[:2]
    if len(lines) == 2 and _UNDERLINE.match(lines[1]) and lines[0].strip():
        return lines[0].strip()
    return None


def _partition(source: _Source, file_name: str, suffix: str) -> list[Element]:
    from unstructured.partition.auto import partition  # heavy import, paid only when parsing

    from rag_core.domain.pdf_layout import clean_pdf_elements

    raw_elements = partition(
        file=io.BytesIO(source.content),
        metadata_filename=file_name,
        content_type=CONTENT_TYPES.get(suffix),
        encoding=source.encoding,
        strategy="fast",
        languages=["eng"],
    )
    elements = []
    for raw in raw_elements:
        text = str(raw).strip()
        if text and raw.category not in ("PageBreak", "Header", "Footer"):
            elements.append(
                Element(
                    text=text,
                    category=raw.category,
                    page=raw.metadata.page_number,
                    depth=raw.metadata.category_depth if raw.category == "Title" else None,
                )
            )
    return clean_pdf_elements(elements) if suffix == ".pdf" else elements
