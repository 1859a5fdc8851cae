"""The document models and their rows. A document model is a dbt model with one row per
document (`row_key, title, body, acl, subjects, updated_at`, acl and subjects
comma-separated); the dbt project declares which models those are, and where their rows
come from, in each model's `config.meta.rag_documents`. Table names in SQL only ever come
from these declarations."""

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, StringConstraints

from rag_core.adapters.warehouse import dbt
from rag_core.adapters.warehouse.connection import Cursor, connect
from rag_core.domain.documents import normalize_subject
from rag_core.domain.ids import digest
from rag_core.settings import Settings

DECLARATION = "rag_documents"

# A table or column name, optionally schema-qualified: safe to write into SQL.
SqlName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")]


class DocumentModel(BaseModel):
    """A model rendering rows into documents, and the source table its rows come from: the
    column keying them (the model's `row_key`) and the column naming each row's data subject,
    so that erasing a subject deletes their rows at the source too."""

    name: SqlName
    source_table: SqlName
    key_column: SqlName
    subject_column: SqlName


class RenderedRow(BaseModel):
    """One row of a document model, as the document it renders to."""

    table: str
    row_key: str
    title: str
    text: str
    acl: list[str]
    subjects: list[str]
    updated_at: datetime
    row_version: str

    def markdown(self) -> str:
        return f"# {self.title}\n\n{self.text}"


@cache
def document_models() -> dict[str, DocumentModel]:
    """The dbt project's document models, by name."""
    models = {}
    for path in sorted((dbt.PROJECT_DIR / "models").rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            declared = model.get("config", {}).get("meta", {}).get(DECLARATION)
            if declared is not None:
                models[model["name"]] = DocumentModel(name=model["name"], **declared)
    return models


def document_model(table: str) -> DocumentModel:
    """The document model named `table`; any other name (from an event, say) is refused."""
    models = document_models()
    if table not in models:
        raise ValueError(f"{table!r} is not a document model (known: {', '.join(models)})")
    return models[table]


def _split(values: str | None) -> list[str]:
    return [value.strip() for value in (values or "").split(",") if value.strip()]


def _rendered(table: str, record: Sequence[Any]) -> RenderedRow:
    row_key, title, text, acl, subjects, updated_at = record
    acl_list, subject_list = _split(acl), [normalize_subject(s) for s in _split(subjects)]
    return RenderedRow(
        table=table,
        row_key=str(row_key),
        title=title,
        text=text,
        acl=acl_list,
        subjects=subject_list,
        updated_at=updated_at,
        row_version=digest(title, text, ",".join(acl_list), ",".join(subject_list), length=16),
    )


def select_rows(cursor: Cursor, table: str, row_key: str | None = None) -> list[RenderedRow]:
    """The model's rows (or the one keyed `row_key`), rendered."""
    model = document_model(table)
    query = f"SELECT row_key, title, body, acl, subjects, updated_at FROM {model.name}"
    if row_key is None:
        cursor.execute(query)
    else:
        cursor.execute(f"{query} WHERE row_key = ?", [row_key])
    return [_rendered(model.name, record) for record in cursor.fetchall()]


def rendered_rows(settings: Settings, table: str) -> dict[str, RenderedRow]:
    document_model(table)
    with connect(settings, read_only=True) as connection:
        return {row.row_key: row for row in select_rows(connection.cursor(), table)}


def row_counts(settings: Settings) -> dict[str, int]:
    """Rows in each document model."""
    counts = {}
    with connect(settings, read_only=True) as connection:
        cursor = connection.cursor()
        for table in document_models():
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = int(cursor.fetchall()[0][0])
    return counts


def fetch_row(settings: Settings, table: str, row_key: str) -> RenderedRow | None:
    document_model(table)
    with connect(settings, read_only=True) as connection:
        rows = select_rows(connection.cursor(), table, row_key)
    return rows[0] if rows else None
