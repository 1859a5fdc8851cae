import io
from typing import NamedTuple

import pytest

from rag_core.domain.parsing import Element, parse_document
from rag_core.domain.pdf_layout import clean_pdf_elements

from conftest import SAMPLE_CORPUS


class _Text(NamedTuple):
    """Lines of Helvetica set from (x, y), in PDF points from the page's bottom left."""

    x: int
    y: int
    size: int
    lines: list[str]


def _pdf(pages: list[list[_Text]]) -> bytes:
    """A letter-size PDF with these texts, written by hand: no PDF writer is a dependency."""
    bodies: list[bytes] = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for texts in pages:
        stream = b"\n".join(_show(text) for text in texts)
        bodies.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    pages_id = len(bodies) + len(pages) + 1
    first_page_id = len(bodies) + 1
    for content_id in range(2, 2 + len(pages)):
        bodies.append(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 1 0 R >> >> >>" % (pages_id, content_id)
        )
    kids = b" ".join(b"%d 0 R" % (first_page_id + i) for i in range(len(pages)))
    bodies.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    bodies.append(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(bodies, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(bodies) + 1, len(bodies)))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _show(text: _Text) -> bytes:
    shown = b" T* ".join(b"(%s) Tj" % line.encode("latin-1") for line in text.lines)
    leading = text.size * 1.2
    return b"BT /F1 %d Tf %.1f TL %d %d Td %s ET" % (text.size, leading, text.x, text.y, shown)


def _running_head_and_foot(page: int) -> list[_Text]:
    """Set 8-10% in from the page's edges, where unstructured labels neither."""
    return [
        _Text(72, 720, 9, ["Acme Widget Manual"]),
        _Text(430, 720, 9, [f"Revised 2024-03-{page:02d}"]),
        _Text(72, 72, 9, ["Acme Corp confidential"]),
        _Text(520, 72, 9, [str(page)]),
    ]


def _section(page: int, heading: str, first: list[str], second: list[str]) -> list[_Text]:
    texts = [_Text(72, 670, 14, [heading]), _Text(72, 630, 11, first)]
    if page < 5:
        texts.append(_Text(72, 560, 11, ["For example:"]))
    return [*texts, _Text(72, 520, 11, second), *_running_head_and_foot(page)]


MANUAL = _pdf(
    [
        [
            _Text(72, 690, 24, ["Acme Widget Manual"]),
            _Text(72, 620, 11, ["This manual explains how the widget is installed and run."]),
            _Text(72, 72, 9, ["Acme Corp confidential"]),
            _Text(520, 72, 9, ["1"]),
        ],
        _section(
            2,
            "2. Installing",
            [
                "The installer checks the well-known ports before the implemen-",
                "tation of the MIME-info lookup is started on x86-64 machines.",
            ],
            ["It then writes the configuration file and starts the service."],
        ),
        _section(
            3,
            "3. Configuring",
            [
                "Each sub-class names its parent, and the parent is read before",
                "the child, so no sub-",
                "class is read twice.",
            ],
            ["Options are read from the MIME-", "info database at start."],
        ),
        _section(
            4,
            "4. Upgrading",
            ["A sub-class keeps its settings when the widget is upgraded."],
            ["Pre- and post-upgrade checks run in the background."],
        ),
        _section(
            5,
            "5. Removing",
            ["Removing the widget deletes its data directory."],
            ["Nothing else on the machine is touched."],
        ),
    ]
)


def test_a_pdf_reads_without_running_heads_and_with_whole_words() -> None:
    parsed = parse_document(MANUAL, "manual.pdf")

    assert parsed.ok, parsed.error
    assert [(element.page, element.text) for element in parsed.elements] == [
        (1, "Acme Widget Manual"),
        (1, "This manual explains how the widget is installed and run."),
        (2, "2. Installing"),
        (
            2,
            "The installer checks the well-known ports before the implementation of the "
            "MIME-info lookup is started on x86-64 machines.",
        ),
        (2, "For example:"),
        (2, "It then writes the configuration file and starts the service."),
        (3, "3. Configuring"),
        (
            3,
            "Each sub-class names its parent, and the parent is read before the child, "
            "so no sub-class is read twice.",
        ),
        (3, "For example:"),
        (3, "Options are read from the MIME-info database at start."),
        (4, "4. Upgrading"),
        (4, "A sub-class keeps its settings when the widget is upgraded."),
        (4, "For example:"),
        (4, "Pre- and post-upgrade checks run in the background."),
        (5, "5. Removing"),
        (5, "Removing the widget deletes its data directory."),
        (5, "Nothing else on the machine is touched."),
    ]
    assert parsed.title == "Acme Widget Manual"


def test_the_running_heads_are_what_unstructured_left_unlabelled() -> None:
    """Without the cleaning, the running heads would be chunk text and headings."""
    from unstructured.partition.auto import partition

    raw = partition(file=io.BytesIO(MANUAL), strategy="fast", languages=["eng"])
    texts = [str(element) for element in raw if element.category not in ("Header", "Footer")]
    assert texts.count("Acme Widget Manual") == 5
    assert texts.count("Acme Corp confidential") == 5
    assert "Revised 2024-03-04" in texts and "4" in texts


def _pages(*pages: list[str]) -> list[Element]:
    return [
        Element(text=text, category="NarrativeText", page=number)
        for number, texts in enumerate(pages, 1)
        for text in texts
    ]


TOPICS = ("install", "configure", "upgrade", "remove", "monitor", "back up", "restore", "tune")


def _body(page: int) -> list[str]:
    """Paragraphs of their own on each page (digits would not tell them apart)."""
    return [f"How to {TOPICS[page - 1]}, step {step}." for step in ("one", "two", "three", "four")]


def test_text_repeated_on_few_pages_or_in_a_short_document_is_kept() -> None:
    handbook = [["Handbook", *_body(page), f"- {page} -"] for page in range(1, 9)]
    handbook[2].insert(1, "Security")
    handbook[1].insert(1, "See also")
    handbook[4].insert(1, "See also")

    kept = [element.text for element in clean_pdf_elements(_pages(*handbook))]

    assert kept == [text for page in handbook for text in page[1:-1]]
    assert kept.count("See also") == 2 and kept.count("Security") == 1
    short = _pages(["Handbook", *_body(1), "Page 1 of 2"], ["Handbook", *_body(2), "Page 2 of 2"])
    assert clean_pdf_elements(short) == short


def test_a_table_cell_is_not_mistaken_for_a_page_number() -> None:
    pages = [["Handbook", *_body(page)[:1], str(page)] for page in range(1, 6)]
    pages[2].insert(1, "4")  # a table's size column, continued at the top of page 3

    kept = clean_pdf_elements(_pages(*pages))

    assert [(element.page, element.text) for element in kept] == [
        (1, "How to install, step one."),
        (2, "How to configure, step one."),
        (3, "4"),
        (3, "How to upgrade, step one."),
        (4, "How to remove, step one."),
        (5, "How to monitor, step one."),
    ]


@pytest.mark.parametrize(
    ("text", "elsewhere", "mended"),
    [
        ("the implemen- tation", "", "the implementation"),
        ("the MIME- info database", "", "the MIME-info database"),
        ("on x86- 64 machines", "", "on x86-64 machines"),
        ("a well- known port", "", "a wellknown port"),
        ("a well- known port", "Use a well-known name.", "a well-known port"),
        ("a well- known port", "well-known, wellknown and wellknown", "a wellknown port"),
        ("pre- and post-processing", "", "pre- and post-processing"),
        ("a well-known port - and MIME-info", "", "a well-known port - and MIME-info"),
    ],
)
def test_line_break_hyphens(text: str, elsewhere: str, mended: str) -> None:
    elements = _pages([text, elsewhere] if elsewhere else [text])

    assert clean_pdf_elements(elements)[0] == elements[0].model_copy(update={"text": mended})


def test_the_sample_spec_loses_nothing_but_what_unstructured_labelled() -> None:
    """unstructured labels this spec's running header and page numbers itself (they sit within
    7% of the page's edge); the cleaning finds no more furniture and no broken words there, and
    keeps its repeated body text, such as the table cell "4" opening page 13."""
    from unstructured.partition.auto import partition

    content = (SAMPLE_CORPUS / "specs/shared-mime-info-spec.pdf").read_bytes()
    raw = partition(file=io.BytesIO(content), strategy="fast", languages=["eng"])
    labelled = [str(element) for element in raw if element.category in ("Header", "Footer")]
    unlabelled = [
        (element.metadata.page_number, str(element).strip())
        for element in raw
        if element.category not in ("Header", "Footer", "PageBreak") and str(element).strip()
    ]

    parsed = parse_document(content, "spec.pdf")

    assert set(labelled) == {"Shared MIME-info Database", *map(str, range(1, 18))}
    assert [(element.page, element.text) for element in parsed.elements] == unlabelled
    texts = [element.text for element in parsed.elements]
    assert texts.count("For example:") == 2 and (13, "4") in unlabelled
    assert [e.page for e in parsed.elements if e.text == "Shared MIME-info Database"] == [1]
