"""Parse PDF, HTML, Markdown and text into elements with unstructured, offline.

PDFs use the `fast` strategy (pdfminer text layer); `hi_res` needs layout models from a hub.
unstructured's sentence heuristics need the spaCy model `en_core_web_sm`, which the project
installs from PyPI (packaging/en_core_web_sm) instead of letting unstructured download it.
A file that cannot be parsed yields a `ParsedDocument` with the reason, never an exception.
"""

import importlib
import io
import logging
import os
from collections.abc import Iterable

from pydantic import BaseModel, Field

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

logger = logging.getLogger(__name__)


class Element(BaseModel):
    text: str
    category: str
    page: int | None = None


class ParsedDocument(BaseModel):
    title: str
    elements: list[Element] = Field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_document(content: bytes, file_name: str) -> ParsedDocument:
    """Elements of a document in reading order, titled by its first heading (or file name)."""
    suffix = os.path.splitext(file_name)[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return ParsedDocument(title=file_name, error=f"unsupported file type {suffix or '(none)'}")
    try:
        elements = _partition(content, file_name, suffix)
    except Exception as exc:  # unstructured raises many types for corrupt input
        logger.warning("could not parse %s: %s", file_name, exc)
        return ParsedDocument(title=file_name, error=f"{type(exc).__name__}: {exc}"[:500])
    if not elements:
        return ParsedDocument(title=file_name, error="no text could be extracted")
    title = next((e.text for e in elements if e.category == "Title"), file_name)
    return ParsedDocument(title=title, elements=elements)


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


def _partition(content: bytes, file_name: str, suffix: str) -> list[Element]:
    from unstructured.partition.auto import partition  # heavy import, paid only when parsing

    # Plain text is read as text: libmagic may otherwise sniff a .txt as something else.
    content_type = "text/plain" if suffix in (".txt", ".text") else None
    raw_elements = partition(
        file=io.BytesIO(content),
        metadata_filename=file_name,
        content_type=content_type,
        strategy="fast",
        languages=["eng"],
    )
    elements = []
    for raw in raw_elements:
        text = str(raw).strip()
        if text and raw.category not in ("PageBreak", "Header", "Footer"):
            elements.append(
                Element(text=text, category=raw.category, page=raw.metadata.page_number)
            )
    return elements
