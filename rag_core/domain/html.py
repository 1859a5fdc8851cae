"""The main content and the title of an HTML page, found before unstructured partitions it.

Documentation pages wrap each article in navigation, sidebars, headers and footers. Partitioned
whole, a Sphinx page was titled "Navigation" and its sidebar's "Previous topic" / "Next topic"
became chunks holding the neighbouring pages' titles, which then won those pages' queries.
So the page chrome goes first (semantic tags, ARIA roles, the markup of the generators docs are
built with), then the main region is kept: the one the page marks (`<main>`, `role="main"`, a
single `<article>`, Sphinx's `div.body`), DocBook's body once its navigation is gone, or for
pages that mark up nothing, the smallest element holding the text trafilatura calls the main
content. Trafilatura only locates: its own output drops headings and turns code into quotes,
while the page's own markup keeps headings, lists, tables and code blocks for the partitioner.
"""

import codecs
import copy
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import lxml.html
from lxml.html import HtmlElement

BOILERPLATE_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "nav", "button"})
# Chrome at page level, content inside an article: its header, its footnotes (docutils writes
# them as <aside>), its sidebars.
PAGE_LEVEL_TAGS = frozenset({"header", "footer", "aside"})
BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
# Chrome of the generators documentation is built with: Sphinx (basic and Read the Docs themes),
# DocBook XSL (navigation tables, generated tables of contents), MkDocs and MkDocs Material.
GENERATOR_CLASSES = frozenset(
    {
        "sphinxsidebar", "related", "footer", "headerlink", "toctree-wrapper",
        "rst-footer-buttons", "rst-versions", "wy-nav-side", "wy-breadcrumbs",
        "navheader", "navfooter", "toc", "list-of-tables", "list-of-figures", "list-of-examples",
        "md-header", "md-sidebar", "md-footer", "md-nav", "md-tabs", "md-search", "md-skip",
        "md-top", "md-dialog", "md-consent", "md-content__button", "md-source-file",
        "navbar", "bs-sidebar", "modal",
        "breadcrumb", "breadcrumbs", "skip-link",
    }
)  # fmt: skip
DOCBOOK_NAVIGATION = frozenset({"navheader", "navfooter"})
# Words of the class or id of cookie and consent banners and search boxes.
BANNER_WORDS = re.compile(
    r"(?<![a-z0-9])(cookies?|consent|gdpr|cookiebanner|searchbox)(?![a-z0-9])"
)
BANNER_MAX_CHARS = 2000  # a section that happens to be about cookies is longer than its banner
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
CONTENT_CONTAINERS = frozenset({"html", "body", "main", "article", "section"})
MAIN_REGION_PATHS = (
    "//main",
    "//*[@role='main']",
    "//article",
    "//div[contains(concat(' ', normalize-space(@class), ' '), ' body ')]",  # Sphinx
)
# Elements whose text the trafilatura locator matches against the text it extracted.
TEXT_BLOCKS = ("p", "li", "pre", "td", "th", "dd", "dt", "blockquote", *HEADINGS)
MIN_BLOCK_CHARS = 20  # shorter texts ("Home", "Next") occur anywhere
MIN_LOCATED_CHARS = 200  # less found text locates nothing: a site's heading may be all of it
# The main region may leave out this little of the extracted text: stray chrome, not a section.
MAX_LEFT_OUT_CHARS = 200
MAX_LEFT_OUT_SHARE = 0.1
PARAGRAPHS = frozenset({"p", "pre", "li", "dt", "dd", *HEADINGS})  # never a region of their own
SITE_SEPARATORS = (" \u2014 ", " \u2013 ", " | ", " :: ")  # em dash, en dash

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts with UTF-16 LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DECLARED_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)|<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)""",
    re.IGNORECASE,
)
_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)


@dataclass(frozen=True)
class HtmlPage:
    html: bytes  # the main content as UTF-8 HTML
    title: str | None


def main_content(content: bytes) -> HtmlPage:
    """The page's main content and title; the whole page when nothing but chrome is left."""
    root = parse_html(content)
    head_title = _text(root.find("head/title"))
    docbook = _remove_boilerplate(root)
    region = _main_region(root, docbook)
    if not _text(region):
        region = parse_html(content)
    return HtmlPage(
        html=lxml.html.tostring(region, encoding="utf-8", with_tail=False),
        title=page_title(head_title, _first_h1(region)),
    )


def page_title(head_title: str, h1: str) -> str | None:
    """The `<title>` without its site name, or the first `h1` when the `<title>` is that h1
    plus decoration ("PostgreSQL: Documentation: 17: VACUUM"); the h1 when there is no title."""
    if not head_title:
        return h1 or None
    page, site = _split_site_name(head_title)
    if h1 and h1.casefold() in head_title.casefold() and h1.casefold() not in site.casefold():
        return h1
    return page


def parse_html(content: bytes) -> HtmlElement:
    return lxml.html.document_fromstring(decode_html(content).encode("utf-8"), parser=_PARSER)


def decode_html(content: bytes) -> str:
    """Text of a page as a browser reads it: byte order mark, then the declared charset, then
    UTF-8, then windows-1252 (the web's fallback), never failing."""
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return content.decode(codec, errors="replace")
    for encoding in (_declared_encoding(content[:4096]), "utf-8"):
        if encoding:
            try:
                return content.decode(encoding)
            except UnicodeDecodeError:
                continue
    return content.decode("cp1252", errors="replace")


def _declared_encoding(head: bytes) -> str | None:
    match = _DECLARED_CHARSET.search(head)
    if not match:
        return None
    try:
        name = codecs.lookup((match[1] or match[2]).decode("ascii")).name
    except LookupError:
        return None
    # As browsers do: latin-1 and ASCII mean windows-1252, and a page whose bytes declare
    # UTF-16 without a byte order mark is not UTF-16.
    if name in ("latin-1", "ascii"):
        return "cp1252"
    return "utf-8" if name.startswith(("utf-16", "utf-32")) else name


def _remove_boilerplate(root: HtmlElement) -> bool:
    """Drop the page chrome; True when it was DocBook's, whose remaining body is the content."""
    chrome = [element for element in root.iter() if _is_chrome(element)]
    docbook = any(_classes(element) & DOCBOOK_NAVIGATION for element in chrome)
    for element in chrome:
        element.drop_tree()
    return docbook


def _is_chrome(element: HtmlElement) -> bool:
    tag = element.tag
    if not isinstance(tag, str):  # an entity the parser left
        return False
    if tag in ("html", "body"):
        return False
    return (
        tag in BOILERPLATE_TAGS
        or element.get("role") in BOILERPLATE_ROLES
        or bool(_classes(element) & GENERATOR_CLASSES)
        or (tag in PAGE_LEVEL_TAGS and not _inside_content(element))
        or (tag == "form" and "search" in element.get("action", "").lower())
        or _is_banner(element)
    )


def _inside_content(element: HtmlElement) -> bool:
    """A header, footer or aside of an article or section belongs to it, not to the page."""
    return any(
        ancestor.tag in ("main", "article", "section") or ancestor.get("role") == "main"
        for ancestor in element.iterancestors()
    )


def _is_banner(element: HtmlElement) -> bool:
    """Cookie and consent banners and search boxes, known by the words of their class or id;
    never a section (a page about cookies has sections with such ids)."""
    names = f"{element.get('class', '')} {element.get('id', '')}".lower()
    return (
        BANNER_WORDS.search(names) is not None
        and element.tag not in CONTENT_CONTAINERS
        and next(element.iter(*HEADINGS), None) is None
        and len(element.text_content()) < BANNER_MAX_CHARS
    )


def _classes(element: HtmlElement) -> set[str]:
    return set(element.get("class", "").split())


def _main_region(root: HtmlElement, docbook: bool) -> HtmlElement:
    region = _marked_main_region(root)
    body = root.find("body")
    if region is None and body is not None and not docbook:
        region = _located_main_region(root, body)
    return next(element for element in (region, body, root) if element is not None)


def _marked_main_region(root: HtmlElement) -> HtmlElement | None:
    for path in MAIN_REGION_PATHS:
        regions = [region for region in root.xpath(path) if _text(region)]
        if len(regions) == 1 or (regions and path != "//article"):  # many articles: a listing
            return regions[0]
    return None


def _located_main_region(root: HtmlElement, body: HtmlElement) -> HtmlElement | None:
    """The deepest element holding nearly all the text trafilatura extracts as main content."""
    import trafilatura  # imported on the first page that marks up nothing

    extracted = trafilatura.extract(
        copy.deepcopy(root),  # trafilatura prunes the tree it is given
        output_format="txt",
        include_tables=True,
        include_comments=False,
        favor_recall=True,
    )
    if not extracted:
        return None
    weights = _extracted_text_weights(body, " ".join(extracted.split()))
    if weights[body] < MIN_LOCATED_CHARS:
        return None
    region = body
    while (child := _child_holding_the_text(region, weights)) is not None:
        region = child
    return region


def _child_holding_the_text(
    element: HtmlElement, weights: Counter[HtmlElement]
) -> HtmlElement | None:
    """The child holding all but a trifle of the element's extracted text, unless it is a
    single paragraph or a heading comes before it: a heading belongs with the text it opens."""
    allowance = min(MAX_LEFT_OUT_CHARS, MAX_LEFT_OUT_SHARE * weights[element])
    for child in element:
        if weights[child] and weights[element] - weights[child] <= allowance:
            return None if child.tag in PARAGRAPHS else child
        if child.tag in HEADINGS:
            return None
    return None


def _extracted_text_weights(body: HtmlElement, extracted: str) -> Counter[HtmlElement]:
    """For each element, how many characters of the extracted text its text blocks hold."""
    weights: Counter[HtmlElement] = Counter()
    for block in body.iter(*TEXT_BLOCKS):
        text = " ".join(block.text_content().split())
        if len(text) >= MIN_BLOCK_CHARS and text in extracted:
            for element in _self_and_ancestors(block):
                weights[element] += len(text)
    return weights


def _self_and_ancestors(element: HtmlElement) -> Iterator[HtmlElement]:
    yield element
    yield from element.iterancestors()


def _first_h1(region: HtmlElement) -> str:
    return next((text for h1 in region.iter("h1") if (text := _text(h1))), "")


def _split_site_name(title: str) -> tuple[str, str]:
    """("Foo", "Acme docs") for "Foo — Acme docs"; the last separator splits."""
    cut = max(title.rfind(separator) for separator in SITE_SEPARATORS)
    if cut <= 0:
        return title, ""
    separator = next(s for s in SITE_SEPARATORS if title.startswith(s, cut))
    return title[:cut].strip(), title[cut + len(separator) :].strip()


def _text(element: HtmlElement | None) -> str:
    return " ".join(element.text_content().split()) if element is not None else ""
