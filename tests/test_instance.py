"""The production Dagster instance (deploy/dagster.yaml) on the PostgreSQL server."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from rag_assets.documents import PARTITIONS_NAME
from rag_assets.ingest import ingest_sources
from rag_core import services
from rag_core.adapters.catalog import add_sources
from rag_core.settings import Settings

from conftest import PRODUCTION_INSTANCE, SAMPLE_CORPUS


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database on 127.0.0.1:5432, dropped afterwards."""
    import psycopg2

    try:
        admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    name = f"rag_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def test_indexing_runs_on_the_postgresql_instance(
    rag_home: Settings, postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"HOST": "127.0.0.1", "USER": "postgres", "PASSWORD": "",
                        "DB": postgres_database}.items():  # fmt: skip
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(PRODUCTION_INSTANCE, dagster_home / "dagster.yaml")

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        keys = add_sources(services.object_store(rag_home), [SAMPLE_CORPUS / "pip"])
        partitions = ingest_sources(rag_home, instance, keys)

        assert len(partitions) == 3
        assert instance.get_dynamic_partitions(PARTITIONS_NAME) == partitions
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        materialized = instance.get_materialized_partitions(dg.AssetKey("index"))
        assert materialized == set(partitions)
    assert services.chunk_index(rag_home).stats().documents == 3
