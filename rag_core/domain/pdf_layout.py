"""A PDF's elements as people read its pages: without the furniture printed on every page, and
with the words a line break hyphenated whole again.

unstructured's `fast` strategy labels as Header or Footer only text within 7% of a page's top
or bottom edge, so running heads set a little further in (a document or chapter name over each page,
"Page 3 of 40" or a bare "17" under it) arrive as Title or NarrativeText, repeated on every
page; as chunk text and headings they would be cited instead of the page's content. And since
pdfminer's lines are joined with spaces, a word hyphenated at a line end arrives as
"implemen- tation".

Elements carry no coordinates, so "near the top or bottom" is read from reading order: the
first and last few elements of a page (pdfminer puts a header's right-hand part after the
page's body, so the last few hold it too). Each element keeps its page number.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # parsing.py imports this module
    from rag_core.domain.parsing import Element

# How many elements at each end of a page are where running headers and footers are printed.
MARGIN_ELEMENTS = 3
# A text is a running header or footer when it recurs in the margins of at least this share of
# a document's pages, and of at least MIN_REPEATS pages. A little under half, so headers that
# alternate between left and right pages (the book's title, then the chapter's) still count;
# body text that happens to open or close a page a few times does not reach it.
MIN_PAGE_SHARE = 0.4
MIN_REPEATS = 3
# A page number alone: "17", "- 17 -", "Page 3", "Page 3 of 40", "3/40".
_PAGE_NUMBER = re.compile(
    r"[-\u2013\u2014\s]*(?:(?i:page|p\.)\s*)?(\d{1,4})(?:\s*(?i:of|/)\s*\d{1,4})?[-\u2013\u2014\s]*"
)
_DIGITS = re.compile(r"\d+")
# A word, a hyphen and the space pdfminer put where the line broke, then the next word.
_BROKEN_WORD = re.compile(r"\b([^\W_]+)[-\u2010]\s+([^\W_]+)")
# "pre- and post-processing": a hyphen left hanging on purpose, not a line break.
_SUSPENDED_HYPHEN_FOLLOWERS = frozenset({"and", "or", "nor", "to"})
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")


def clean_pdf_elements(elements: list[Element]) -> list[Element]:
    """The elements without running headers, footers and page numbers, their line-break
    hyphens joined, in the same order and on the same pages."""
    return _join_broken_words(_drop_page_furniture(elements))


def _drop_page_furniture(elements: list[Element]) -> list[Element]:
    """Drop the texts repeated in the margins of many pages, page numbers among them.

    The document's first element survives even so when it is a heading: a title page names
    the document once and the pages after it repeat that name as their running header.
    """
    margins = _margin_positions(elements)
    running = _running_texts(elements, margins)

    def is_furniture(position: int, element: Element) -> bool:
        leading_title = position == 0 and element.category == "Title"
        return position in margins and _furniture_key(element) in running and not leading_title

    return [
        element for position, element in enumerate(elements) if not is_furniture(position, element)
    ]


def _margin_positions(elements: list[Element]) -> set[int]:
    """Positions of the first and last MARGIN_ELEMENTS elements of each numbered page."""
    by_page: defaultdict[int, list[int]] = defaultdict(list)
    for position, element in enumerate(elements):
        if element.page is not None:
            by_page[element.page].append(position)
    return {
        position
        for positions in by_page.values()
        for position in positions[:MARGIN_ELEMENTS] + positions[-MARGIN_ELEMENTS:]
    }


def _running_texts(elements: list[Element], margins: set[int]) -> set[str]:
    """Furniture keys found in the margins of enough of the document's pages."""
    pages_by_key: defaultdict[str, set[int | None]] = defaultdict(set)
    for position in margins:
        element = elements[position]
        pages_by_key[_furniture_key(element)].add(element.page)
    page_count = len({element.page for element in elements if element.page is not None})
    needed = max(MIN_REPEATS, math.ceil(MIN_PAGE_SHARE * page_count))
    return {key for key, pages in pages_by_key.items() if len(pages) >= needed}


def _furniture_key(element: Element) -> str:
    """The text as it repeats from page to page: any number stands for any other (dates,
    revisions), but a page number is told by its distance from the page it is printed on, the
    same on every page; a table's "4" that happens to open one page is not mistaken for one."""
    key = " ".join(_DIGITS.sub("#", element.text.casefold()).split())
    page_number = _PAGE_NUMBER.fullmatch(element.text)
    if page_number and element.page is not None:
        key += f" (page {int(page_number[1]) - element.page:+d})"
    return key


def _join_broken_words(elements: list[Element]) -> list[Element]:
    """Close the gap a line break left after a hyphen, with or without the hyphen.

    The hyphen goes ("implemen- tation" -> "implementation") when a lowercase letter stands on
    both sides of it, unless the document writes the hyphenated compound more often than the
    joined word ("sub- class" -> "sub-class" where it says "sub-class" elsewhere). Otherwise the
    hyphen is a compound's ("MIME- info", "x86- 64") and stays, without the space. A hyphen
    before "and", "or", "nor" or "to" is left hanging as written ("pre- and post-processing").
    """
    vocabulary = _hyphenation_vocabulary(elements)

    def mend(match: re.Match[str]) -> str:
        left, right = match[1], match[2]
        if right.casefold() in _SUSPENDED_HYPHEN_FOLLOWERS:
            return match[0]
        joined, hyphenated = f"{left}{right}", f"{left}-{right}"
        if (
            left[-1].islower()
            and right[0].islower()
            and vocabulary[hyphenated.casefold()] <= vocabulary[joined.casefold()]
        ):
            return joined
        return hyphenated

    return [
        element.model_copy(update={"text": _BROKEN_WORD.sub(mend, element.text)})
        for element in elements
    ]


def _hyphenation_vocabulary(elements: list[Element]) -> Counter[str]:
    """How often the document writes each word and each hyphenated pair of words, casefolded
    ("sub-class-of" counts "sub", "class", "of", "sub-class" and "class-of")."""
    vocabulary: Counter[str] = Counter()
    for element in elements:
        for word in _WORD.findall(element.text.casefold()):
            parts = word.split("-")
            vocabulary.update(parts)
            vocabulary.update(f"{a}-{b}" for a, b in pairwise(parts))
    return vocabulary
