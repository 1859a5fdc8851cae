"""The sample warehouse shipped with the repository: help-desk tickets from a CSV, loaded as
text into `raw.support_tickets`, which the dbt project's `support_ticket_documents` model
renders into documents. `ragctl warehouse load-sample` and the tests load it; a real
warehouse has tables of its own and declares its document models in its dbt project."""

import csv
import re
from pathlib import Path

from rag_core.adapters.warehouse.connection import connect
from rag_core.settings import Settings

SAMPLE_CSV = Path(__file__).resolve().parents[2] / "sample_warehouse" / "support_tickets.csv"
SAMPLE_SCHEMA = "raw"
SAMPLE_TABLE = f"{SAMPLE_SCHEMA}.support_tickets"

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def load_sample(settings: Settings, csv_path: Path = SAMPLE_CSV) -> int:
    """(Re)create `SAMPLE_TABLE` from a CSV, every column as text; returns the rows."""
    with csv_path.open(newline="", encoding="utf-8") as file:
        header, *rows = list(csv.reader(file))
    columns = [name.strip().lower() for name in header]
    if bad := [name for name in columns if not _IDENTIFIER.fullmatch(name)]:
        raise ValueError(f"{csv_path}: column names must be plain identifiers, not {bad}")
    with connect(settings) as connection:
        cursor = connection.cursor()
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SAMPLE_SCHEMA}")
        cursor.execute(
            f"CREATE OR REPLACE TABLE {SAMPLE_TABLE} ("
            + ", ".join(f"{name} VARCHAR" for name in columns)
            + ")"
        )
        if rows:
            cursor.executemany(
                f"INSERT INTO {SAMPLE_TABLE} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                rows,
            )
    return len(rows)
