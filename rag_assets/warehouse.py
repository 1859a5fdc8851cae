"""The warehouse producer in Dagster: dbt builds the document models, then
`warehouse_row_events` announces the rows they inserted, changed or dropped on Kafka.

The dbt manifest is parsed at load when missing (a fresh clone) or under `dagster dev`, into
RAG_HOME rather than the repository; `dagster-dbt project prepare-and-package` is not needed.
"""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DbtCliResource,
    DbtProject,
    dbt_assets,
    get_asset_key_for_model,
)
from dagster_dbt.dbt_project import using_dagster_dev

from rag_assets.resources import RagResource
from rag_core.adapters import warehouse
from rag_core.settings import Settings, get_settings

GROUP = "warehouse"


def prepared_project(settings: Settings) -> DbtProject:
    """The dbt project, its manifest parsed first if missing or under `dagster dev`."""
    manifest_target = settings.home / "dbt" / "manifest"
    project = DbtProject(
        project_dir=warehouse.DBT_PROJECT_DIR,
        target_path=manifest_target,
        target=settings.warehouse_target,
    )
    if using_dagster_dev() or not project.manifest_path.exists():
        warehouse.run_dbt(settings, ["parse"], target_path=manifest_target)
    return project


class _Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


dbt_project = prepared_project(get_settings())


@dbt_assets(
    manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=_Translator()
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, rag: RagResource
) -> Iterator[Any]:
    """`dbt build`: staging views, document tables and their tests."""
    settings = rag.settings()
    target_path, _ = warehouse.dbt_paths(settings)
    # dbt starts (and copies the environment) inside cli(), so only that call needs it.
    with warehouse.dbt_environment(settings):
        invocation = dbt.cli(["build"], context=context, target_path=target_path)
    yield from invocation.stream()


@dg.asset(
    deps=[
        get_asset_key_for_model([warehouse_models], model) for model in warehouse.DOCUMENT_MODELS
    ],
    group_name=GROUP,
    kinds={"kafka"},
)
def warehouse_row_events(rag: RagResource) -> dg.MaterializeResult:
    """Row changes of the document models since the last run, announced on Kafka; recorded
    in the warehouse only once the broker acknowledged them."""
    settings = rag.settings()
    events = warehouse.emit_row_changes(settings, rag.publish_row_changes)
    upserts = sum(event.op == "upsert" for event in events)
    return dg.MaterializeResult(
        metadata={
            "upserts": upserts,
            "deletes": len(events) - upserts,
            "rows": sum(warehouse.row_counts(settings).values()),
        }
    )


sync_warehouse = dg.define_asset_job(
    "sync_warehouse",
    selection=dg.AssetSelection.assets(warehouse_models, warehouse_row_events),
    description="Rebuild the warehouse's document models and announce their row changes.",
)


@dg.schedule(
    job=sync_warehouse,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def sync_warehouse_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Every five minutes, unless the previous sync still runs: two dbt builds would fight
    over the models (and DuckDB's single-writer lock)."""
    active = context.instance.get_run_records(
        dg.RunsFilter(
            job_name=sync_warehouse.name,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    if active:
        return dg.SkipReason(f"run {active[0].dagster_run.run_id} is still syncing")
    return dg.RunRequest()


defs = dg.Definitions(
    assets=[warehouse_models, warehouse_row_events],
    jobs=[sync_warehouse],
    schedules=[sync_warehouse_schedule],
    resources={
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=warehouse.dbt_executable())
    },
)
