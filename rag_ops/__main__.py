"""`python -m rag_ops [--check]`: write every generated file under dashboards/, or with
`--check` only say which differ from what would be generated (CI: exit 1)."""

import argparse
import sys
from pathlib import Path

from rag_ops import alerting, dashboards
from rag_ops.slos import REPOSITORY, load_objectives

# Each generator maps the objectives to {path relative to the repository: content}.
GENERATORS = (alerting.generate, dashboards.generate)


def generated() -> dict[Path, str]:
    objectives = load_objectives()
    files: dict[Path, str] = {}
    for generate in GENERATORS:
        files |= generate(objectives)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m rag_ops", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    check = parser.parse_args().check
    stale = []
    for relative, content in sorted(generated().items()):
        path = REPOSITORY / relative
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        stale.append(relative)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    if check and stale:
        names = ", ".join(map(str, stale))
        print(f"generated files out of date (run `make dashboards`): {names}", file=sys.stderr)
        return 1
    print(f"{'checked' if check else 'wrote'} {len(generated())} files; {len(stale)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
