"""The warehouse the producer reads, by concern: `connection` (DuckDB or Snowflake),
`dbt` (building the document models), `rows` (the document models and their rendered rows),
`cdc` (turning row changes into events) and `erasure` (deleting rows about a data subject).

The document models are declared by the dbt project, so table names in SQL only ever come
from there, never from an event. `rag_core.sources.warehouse` turns their rows into documents.
"""
