"""What the shipped packages import is declared: every third-party module that rag_core,
rag_assets or rag_serving imports belongs to a distribution that the project's own
requirements (no extras) bring in. The container images install exactly those; a module that
only a dev or traces extra happened to pull in (`mcp` came with Phoenix) breaks them."""

import ast
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["rag_core", "rag_assets", "rag_serving"]


def _installed_closure(project: str) -> set[str]:
    """The distributions `project` requires, transitively, extras left out."""
    seen: set[str] = set()
    pending = [project]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # a requirement of a platform other than this one
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def _imported_top_levels(package: str) -> set[str]:
    modules = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_every_shipped_import_comes_with_the_projects_own_requirements() -> None:
    closure = _installed_closure("rag-platform")
    providers = packages_distributions()
    undeclared = {}
    for package in SHIPPED:
        for module in _imported_top_levels(package) - set(sys.stdlib_module_names) - set(SHIPPED):
            dists = {canonicalize_name(dist) for dist in providers.get(module, [])}
            if not dists & closure:
                undeclared[module] = sorted(dists)
    assert not undeclared, f"imported, but no requirement brings them in: {undeclared}"
