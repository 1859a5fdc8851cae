"""What the benchmarks share: an offline environment, the `--quick` switch, temporary homes,
the corpora, and the report: tables on the console, then the figures as one JSON line, last,
so that a run's output can be parsed by reading its final line.

Each benchmark imports it before anything that could load a model or Dagster, which read the
environment set here when they are imported."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import argparse
import json
import platform
import subprocess
import tempfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rag_core import services
from rag_core.adapters.catalog import add_sources
from rag_core.domain.stats import percentile
from rag_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_corpus"
QUICK_CORPUS = [
    SAMPLE / "pip",
    SAMPLE / "dpkg",
    SAMPLE / "mosquitto-readme.md",
    SAMPLE / "postgresql",
]
# The purpose line of every PostgreSQL reference page, as a query with that page as its answer.
EVAL_SET = ROOT / "eval_sets" / "postgresql_sql_purpose.jsonl"
# The purpose in the title of every module page of the Python library reference, likewise.
PYTHON_EVAL_SET = ROOT / "eval_sets" / "python_module_purpose.jsonl"
CACHE = Path.home() / ".cache" / "rag-bench"
MACHINE = f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"

console = Console()


def arguments(doc: str, quick: str, cache: bool = False) -> argparse.ArgumentParser:
    """A parser described by the benchmark's docstring (its first paragraph) with `--quick`,
    and `--cache` for the benchmarks that keep downloads and built indexes between runs."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    if cache:
        parser.add_argument("--cache", type=Path, default=CACHE, help="downloads, built indexes")
    return parser


@contextmanager
def temp_dir(name: str) -> Iterator[Path]:
    """A temporary folder, removed afterwards: each run starts from nothing."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        yield Path(folder)


@contextmanager
def temp_settings(name: str) -> Iterator[Settings]:
    """Settings whose home (object store, index, caches) is a fresh temporary folder."""
    with temp_dir(name) as home:
        yield Settings(home=home)


def ingest(settings: Settings, paths: list[Path], instance: Any = None) -> list[str]:
    """What `ragctl ingest` does: copy the files into the object store and index them in one
    Dagster run (on `instance`, or the home's own). Returns the object-store keys."""
    from rag_assets.ingest import ingest_sources, local_instance  # Dagster only when needed

    keys = add_sources(services.object_store(settings), paths)
    ingest_sources(settings, instance or local_instance(settings), keys)
    return keys


def postgresql_docs(cache: Path) -> Path:
    """The HTML folder of Debian's postgresql-doc-15, fetched once with apt-get download."""
    return debian_package_folder(cache, "postgresql-doc-15", "usr/share/doc/postgresql-doc-15/html")


def python_library_docs(cache: Path) -> Path:
    """The library reference (HTML, built with Sphinx) of Debian's python3.11-doc, fetched once
    with apt-get download."""
    return debian_package_folder(cache, "python3.11-doc", "usr/share/doc/python3.11/html/library")


def debian_package_folder(cache: Path, package: str, folder: str) -> Path:
    """A folder of a Debian package's files, the package fetched once into `cache`."""
    path = cache / folder
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
        [deb] = cache.glob(f"{package}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    return path


def table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], left: Collection[str] = ()
) -> Table:
    """Figures right-aligned; the `left` columns (names, labels) left-aligned."""
    result = Table(title=title)
    for column in columns:
        result.add_column(column, justify="left" if column in left else "right")
    for row in rows:
        result.add_row(*row)
    return result


def spread(values: list[float], digits: int) -> list[str]:
    """A table's n, p50, p95 and max cells for these values."""
    figures = (percentile(values, 0.5), percentile(values, 0.95), max(values))
    return [str(len(values)), *(f"{figure:.{digits}f}" for figure in figures)]


def finish(benchmark: str, quick: bool, figures: dict[str, Any]) -> None:
    """The figures as one JSON line, with the machine they were measured on."""
    print(json.dumps({"benchmark": benchmark, "quick": quick, **figures, "machine": MACHINE}))
