"""Retrieval quality of dense, keyword and hybrid search (and hybrid + rerank when a reranker
is configured) on labeled sets derived from real documentation.

In each set a page states its purpose in one line; the purpose, without the name of what the
page is about, is the query and that page is the only relevant document. The purpose is removed
from the indexed copies of the pages wherever it follows that name, so no query is a verbatim
quote of the corpus (the benchmark asserts it); words of the body that happen to match stay.

- `postgresql`: every PostgreSQL reference page `sql-*.html` (Debian's postgresql-doc-15,
  DocBook): "VACUUM — garbage-collect and optionally analyze a database". Removed: the page's
  own purpose line and the purposes listed in sql-commands.html's table of contents.
  eval_sets/postgresql_sql_purpose.jsonl.
- `python`: every module page of the Python 3.11 library reference (Debian's python3.11-doc,
  Sphinx), whose heading is "tomllib — Parse TOML files". Removed: the purpose in the page's
  title, heading, local table of contents and breadcrumbs, and in the other pages' links and
  link titles (previous/next topic, `title="tomllib: Parse TOML files."`); the module's name
  stays. eval_sets/python_module_purpose.jsonl.

    python bench/retrieval_quality.py [--quick] [--set postgresql|python|all]
        [--postgresql-docs DIR] [--python-docs DIR]

Each set is indexed in a temporary home of its own. Prints a table per set, then one JSON line
with the figures per set under "sets" (until the Python set was added, the PostgreSQL figures,
the same keys, were at the top level of that line).
"""

import html
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from harness import (
    EVAL_SET,
    PYTHON_EVAL_SET,
    arguments,
    console,
    finish,
    ingest,
    postgresql_docs,
    python_library_docs,
    table,
    temp_settings,
)

from rag_core import services
from rag_core.domain.chunking import reads_as_navigation
from rag_core.domain.parsing import is_real_title
from rag_core.evaluation.labeled_sets import LabeledQuestion
from rag_core.evaluation.metrics import retrieval_scores
from rag_core.settings import Settings

MODES = ["vector", "keyword", "hybrid"]
DEPTH = 10
TAG = re.compile(r"<[^>]*>")
MARKUP = r"(?:<[^>]*>)*"
ATTRIBUTE_VALUE = re.compile(r'="([^"]*)"')
NAME_CHARACTER = re.compile(r"[\w.]")
SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
NAIVE_WINDOW_WORDS = 200
RETRIEVAL_LABELS = {"id", "question", "sources"}  # what the sets written here label
# DocBook: the purpose line of a reference page, and a purpose in a table of contents.
REFNAME_PURPOSE = re.compile(r'class="refnamediv">.*?<p>(.*?)</p>', re.S)
REFNAME_BLOCK = re.compile(r'<div class="refnamediv">.*?</div>', re.S)
REFPURPOSE = re.compile(r'<span class="refpurpose">.*?</span>', re.S)
# Sphinx: a page's heading, without its permalink.
HEADING = re.compile(r"<h1>(.*?)</h1>", re.S)
HEADERLINK = re.compile(r'<a class="headerlink".*?</a>', re.S)
MODULE_NAME = re.compile(r"[\w.]+")


class Purpose(NamedTuple):
    """A page's purpose: the query, whose one relevant document is the page."""

    name: str  # what the page is about: "VACUUM", "tomllib"
    text: str  # "garbage-collect and optionally analyze a database", "Parse TOML files"
    page: str  # the page's file name


@dataclass(frozen=True)
class LabeledSet:
    title: str
    pages: list[Path]  # the corpus, sorted; --quick indexes the first `quick_pages`
    purposes: list[Purpose]
    # A page's text as indexed, and where purposes were removed from it.
    rewrite: Callable[[Path], tuple[str, set[str]]]
    eval_file: Path
    quick_pages: int


def postgresql_set(folder: Path) -> LabeledSet:
    pages = sorted(folder.glob("sql-*.html"))
    purposes = []
    for page in pages:
        match = REFNAME_PURPOSE.search(page.read_text(errors="replace"))
        if match:
            name, _, purpose = plain_text(match[1]).partition("—")
            purposes.append(Purpose(name.strip(), purpose.strip(), page.name))

    def rewrite(page: Path) -> tuple[str, set[str]]:
        text, own = REFNAME_BLOCK.subn("", page.read_text(errors="replace"))
        text, listed = REFPURPOSE.subn("", text)
        where = {"own page: purpose line": own, "other pages: table of contents": listed}
        return text, {kind for kind, count in where.items() if count}

    return LabeledSet("PostgreSQL SQL commands", pages, purposes, rewrite, EVAL_SET, 40)


def python_set(folder: Path) -> LabeledSet:
    purposes = []
    for page in sorted(folder.glob("*.html")):
        heading = HEADING.search(page.read_text(errors="replace"))
        title = plain_text(HEADERLINK.sub("", heading[1])) if heading else ""
        name, dash, purpose = title.partition(" — ")
        if dash and MODULE_NAME.fullmatch(name):
            purposes.append(Purpose(name, purpose, page.name))
    patterns = [(purpose, purpose_after_name(purpose)) for purpose in purposes]

    def rewrite(page: Path) -> tuple[str, set[str]]:
        text, removed = page.read_text(errors="replace"), set[str]()
        for purpose, pattern in patterns:
            text, where = without_purpose(text, pattern, own=purpose.page == page.name)
            removed |= where
        return text, removed

    pages = [folder / purpose.page for purpose in purposes]
    return LabeledSet("Python library modules", pages, purposes, rewrite, PYTHON_EVAL_SET, 60)


def purpose_after_name(purpose: Purpose) -> re.Pattern[str]:
    """A module's name (and the tags closing around it) followed by its purpose in a Sphinx
    page: after an em dash in titles, headings and links ("tomllib</code> — Parse TOML files"),
    after a colon in module references' titles ("tomllib: Parse TOML files."). Markup may come
    between any two characters of the purpose ("Utilities for <code>with</code>-statement")."""
    characters = [r"\s+" if char == " " else re.escape(html.escape(char)) for char in purpose.text]
    return re.compile(
        rf"({re.escape(purpose.name)}(?:</[^>]+>)*)\s*(—|&#8212;|:)\s*"
        rf"{MARKUP}{MARKUP.join(characters)}(?:\.(?=\"))?"
    )


def without_purpose(text: str, pattern: re.Pattern[str], own: bool) -> tuple[str, set[str]]:
    """The page with the module's name kept and its purpose dropped wherever `pattern` finds
    them, and where that was: the module's own page or another; text, or an attribute such as
    a link's title ("tomllib — Parse TOML files") or a module reference's ("tomllib: Parse TOML
    files.")."""
    removed: set[str] = set()

    def name_only(match: re.Match[str]) -> str:
        start = match.start()
        if start and NAME_CHARACTER.match(text, start - 1):  # a longer name ending in this one
            return match[0]
        if text.rfind("<", 0, start) < text.rfind(">", 0, start):
            what = "text"
        else:
            what = f"'name{' —' if match[2] != ':' else ':'} purpose' attribute"
        removed.add(f"{'own page' if own else 'other pages'}: {what}")
        return match[1]

    return pattern.sub(name_only, text), removed


def plain_text(fragment: str) -> str:
    return " ".join(html.unescape(TAG.sub("", fragment)).split())


def quoted_purposes(text: str, purposes: list[Purpose]) -> list[Purpose]:
    """The purposes a page's text or attribute values still quote after their names."""
    view = f"{plain_text(text)} {plain_text(' '.join(ATTRIBUTE_VALUE.findall(text)))}"
    return [
        purpose
        for purpose in purposes
        if purpose.text in view
        and re.search(rf"{re.escape(purpose.name)}\s*[—:]\s*{re.escape(purpose.text)}", view)
    ]


def indexed_copies(
    labeled: LabeledSet, pages: list[Path], target: Path
) -> tuple[list[Path], Counter[str]]:
    """The pages as indexed, written to `target`, and how many pages had which removal."""
    target.mkdir()
    removals: Counter[str] = Counter()
    for page in pages:
        text, removed = labeled.rewrite(page)
        quoted = quoted_purposes(text, labeled.purposes)
        assert not quoted, f"{page.name} still quotes {[purpose.text for purpose in quoted]}"
        (target / page.name).write_text(text)
        removals.update(removed)
    return [target / page.name for page in pages], removals


def queries_of(purposes: list[Purpose]) -> dict[str, set[str]]:
    """Each distinct purpose and the pages it is the purpose of: aliases share one
    ("CREATE USER" and "CREATE ROLE": "define a new database role"), and either answers it."""
    queries: dict[str, set[str]] = {}
    for purpose in purposes:
        queries.setdefault(purpose.text, set()).add(purpose.page)
    return queries


def scores(ranked_docs: list[str], relevant: set[str]) -> dict[str, float]:
    """The harness's document-level scores (`ragctl eval run` computes the same)."""
    gold = LabeledQuestion(id="q", question="q", sources=tuple(relevant))
    ranked = retrieval_scores(gold, ranked_docs)
    assert ranked is not None
    return {"recall@1": ranked.recall_at_1, "recall@5": ranked.recall_at_5,
            "mrr": ranked.mrr_at_10, "ndcg@10": ranked.ndcg_at_10}  # fmt: skip


def evaluate(settings: Settings, queries: dict[str, set[str]], mode: str) -> dict[str, float]:
    retriever = services.retriever(settings)
    rankings = {}
    for query in queries:
        hits = retriever.search(query, 40, mode=mode)  # type: ignore[arg-type]
        rankings[query] = [hit.source_uri.rsplit("/", 1)[1] for hit in hits]
    return averaged(rankings, queries)


def averaged(rankings: dict[str, list[str]], queries: dict[str, set[str]]) -> dict[str, float]:
    """Mean scores over the queries, each ranking cut to its first DEPTH distinct pages."""
    totals: dict[str, float] = {}
    for query, relevant in queries.items():
        docs = list(dict.fromkeys(rankings[query]))[:DEPTH]
        for name, value in scores(docs, relevant).items():
            totals[name] = totals.get(name, 0.0) + value
    return {name: round(value / len(queries), 3) for name, value in totals.items()}


def how_it_reads(settings: Settings) -> dict[str, int]:
    """Documents titled by navigation or their file name, and chunks of navigation alone, as
    indexed (the `chunks` asset checks the same)."""
    rows = services.chunk_index(settings).rows(columns=["source_uri", "title", "text"])
    titles = {row["source_uri"]: row["title"] for row in rows}
    return {
        "untitled": sum(
            not is_real_title(title) or uri.endswith(f"/{title}") for uri, title in titles.items()
        ),
        "navigation_chunks": sum(reads_as_navigation(row["text"]) for row in rows),
    }


def naive_baseline(
    settings: Settings, copies: list[Path], queries: dict[str, set[str]]
) -> dict[str, float]:
    """The same model over each indexed copy's tag-stripped text in 200-word windows, exact
    search: what a pipeline without main content, titles or structure scores on this set."""
    windows, pages = [], []
    for copy in copies:
        words = plain_text(SCRIPT_OR_STYLE.sub(" ", copy.read_text())).split()
        for start in range(0, len(words), NAIVE_WINDOW_WORDS):
            windows.append(" ".join(words[start : start + NAIVE_WINDOW_WORDS]))
            pages.append(copy.name)
    embedder = services.embedder(settings)
    vectors = embedder.embed(windows)
    rankings = {}
    for query in queries:
        order = np.argsort(-(vectors @ embedder.embed_query(query)))[:40]
        rankings[query] = [pages[i] for i in order]
    return averaged(rankings, queries)


def measure(name: str, labeled: LabeledSet, quick: bool) -> dict[str, Any]:
    """Index the set's pages (the first few with `quick`) in a home of their own, score each
    mode on the queries they answer, print the table; the figures."""
    pages = labeled.pages[: labeled.quick_pages if quick else None]
    indexed = {page.name for page in pages}
    queries = queries_of([purpose for purpose in labeled.purposes if purpose.page in indexed])
    with temp_settings(f"quality-{name}") as settings:
        copies, removals = indexed_copies(labeled, pages, settings.home / "pages")
        ingest(settings, copies)
        chunks = services.chunk_index(settings).stats().chunks
        reading = how_it_reads(settings)
        results = {mode: evaluate(settings, queries, mode) for mode in MODES}
        reranker = services.retriever(settings).reranker.name
        if reranker != "none":
            results[f"hybrid+{reranker}"] = evaluate(settings, queries, "hybrid")
        results["naive baseline"] = naive_baseline(settings, copies, queries)

    console.print(
        table(
            f"{labeled.title}: {len(queries)} queries over {len(pages)} pages, {chunks} chunks",
            ("mode", "recall@1", "recall@5", "mrr", "ndcg@10"),
            [
                (mode, *(f"{value:.3f}" for value in figures.values()))
                for mode, figures in results.items()
            ],
            left={"mode"},
        )
    )
    console.print(
        "purposes removed (pages): "
        + ", ".join(f"{where} {count}" for where, count in sorted(removals.items()))
    )
    console.print(
        f"titles that are not titles: {reading['untitled']}; "
        f"chunks of navigation alone: {reading['navigation_chunks']}"
    )
    if reranker == "none":
        console.print("hybrid+rerank: not measured (no reranker configured; none installable here)")
    return {
        **reading,
        "queries": len(queries),
        "pages": len(pages),
        "chunks": chunks,
        "removals": dict(sorted(removals.items())),
        "results": results,
    }


def write_eval_set(labeled: LabeledSet) -> None:
    """The set's queries as a retrieval-only labeled set (`rag_core.evaluation.labeled_sets`):
    the pages a purpose is the purpose of are its sources, the first of them, without
    `.html`, its id (unique, as a page has one purpose)."""
    questions = [
        LabeledQuestion(
            id=min(pages).removesuffix(".html"), question=query, sources=tuple(sorted(pages))
        )
        for query, pages in queries_of(labeled.purposes).items()
    ]
    labeled.eval_file.parent.mkdir(exist_ok=True)
    labeled.eval_file.write_text(
        "".join(
            json.dumps(question.model_dump(mode="json", include=RETRIEVAL_LABELS)) + "\n"
            for question in questions
        )
    )


def main() -> None:
    parser = arguments(
        __doc__, quick="40 PostgreSQL and 60 Python pages, a few minutes", cache=True
    )
    parser.add_argument("--set", choices=("postgresql", "python", "all"), default="all")
    parser.add_argument("--postgresql-docs", type=Path, help="postgresql-doc-15 html folder")
    parser.add_argument("--python-docs", type=Path, help="python3.11-doc html/library folder")
    args = parser.parse_args()

    sets: dict[str, Callable[[], LabeledSet]] = {
        "postgresql": lambda: postgresql_set(
            args.postgresql_docs or postgresql_docs(args.cache / "postgresql-doc-15")
        ),
        "python": lambda: python_set(
            args.python_docs or python_library_docs(args.cache / "python3.11-doc")
        ),
    }
    figures = {}
    for name, labeled_set in sets.items():
        if args.set in (name, "all"):
            labeled = labeled_set()
            write_eval_set(labeled)
            figures[name] = measure(name, labeled, args.quick)
    finish("retrieval_quality", args.quick, {"sets": figures})


if __name__ == "__main__":
    main()
