"""The warehouse producer in Dagster: dbt builds the document models, then
`warehouse_row_events` announces the rows they inserted, changed or dropped on Kafka.
`sync_warehouse` does both; `build_warehouse` (what `ragctl warehouse build` runs) builds
the models alone, with no broker needed; `announce_warehouse_rows` (what `ragctl sync` and
`ragctl dev` run) announces alone.

The models' assets are made from dbt's manifest, so they are built when the code location
loads its definitions (`warehouse_defs`), never on import. The manifest is parsed then, into
RAG_HOME rather than the repository, when missing (a fresh clone) or under `dagster dev`;
`dagster-dbt project prepare-and-package` is not needed.
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

from rag_assets.events import ACTIVE_RUN_STATUSES
from rag_assets.resources import RagResource
from rag_core.adapters.warehouse import rows
from rag_core.adapters.warehouse.dbt import (
    PROJECT_DIR,
    dbt_environment,
    dbt_executable,
    dbt_paths,
    manifest_dir,
    parse_project,
)
from rag_core.flows.orchestration import WAREHOUSE_ANNOUNCE_JOB, WAREHOUSE_BUILD_JOB
from rag_core.settings import Settings
from rag_core.sources import warehouse as warehouse_source

GROUP = "warehouse"
ROW_EVENTS = "warehouse_row_events"

# Prepared once per process and target: the models are code, which does not change while a
# process runs (`dagster dev` reloads definitions in a new one).
_projects: dict[str, DbtProject] = {}


def prepared_project(settings: Settings) -> DbtProject:
    """The dbt project, its manifest parsed first if missing or under `dagster dev`."""
    target = settings.warehouse_target
    if target not in _projects:
        project = DbtProject(
            project_dir=PROJECT_DIR, target_path=manifest_dir(settings), target=target
        )
        if using_dagster_dev() or not project.manifest_path.exists():
            parse_project(settings)
        _projects[target] = project
    return _projects[target]


class _Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


def _models(project: DbtProject) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=project.manifest_path, project=project, dagster_dbt_translator=_Translator()
    )
    def warehouse_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, rag: RagResource
    ) -> Iterator[Any]:
        """`dbt build`: staging views, document tables and their tests."""
        settings = rag.settings()
        target_path, _ = dbt_paths(settings)
        # dbt starts (and copies the environment) inside cli(), so only that call needs it.
        with dbt_environment(settings):
            invocation = dbt.cli(["build"], context=context, target_path=target_path)
        yield from invocation.stream()

    return warehouse_models


def _row_events(models: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        deps=[get_asset_key_for_model([models], model) for model in rows.document_models()],
        name=ROW_EVENTS,
        group_name=GROUP,
        kinds={"kafka"},
    )
    def warehouse_row_events(rag: RagResource) -> dg.MaterializeResult:
        """Row changes of the document models since the last run, announced on Kafka;
        recorded in the warehouse only once the broker acknowledged them."""
        settings = rag.settings()
        events = warehouse_source.announce_changes(settings, rag.publish_row_changes)
        upserts = sum(event.op == "upsert" for event in events)
        return dg.MaterializeResult(
            metadata={
                "upserts": upserts,
                "deletes": len(events) - upserts,
                "rows": sum(rows.row_counts(settings).values()),
            }
        )

    return warehouse_row_events


# Both jobs run `dbt build`, and DuckDB allows one writing process: runs with this tag never
# overlap (the schedule waits for them; deploy/dagster.yaml limits the tag to one run).
WAREHOUSE_WRITER_TAG = {"rag/warehouse": "writer"}
sync_warehouse = dg.define_asset_job(
    "sync_warehouse",
    selection=dg.AssetSelection.groups(GROUP),
    description="Rebuild the warehouse's document models and announce their row changes.",
    tags=WAREHOUSE_WRITER_TAG,
)
build_warehouse = dg.define_asset_job(
    WAREHOUSE_BUILD_JOB,
    selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.assets(ROW_EVENTS),
    description="`dbt build`: the warehouse's document models and their tests.",
    tags=WAREHOUSE_WRITER_TAG,
)
announce_warehouse_rows = dg.define_asset_job(
    WAREHOUSE_ANNOUNCE_JOB,
    selection=dg.AssetSelection.assets(ROW_EVENTS),
    description="Announce the row changes of the document models on Kafka, without a build "
    "(`ragctl sync`, and `ragctl dev` as it starts).",
    tags=WAREHOUSE_WRITER_TAG,
)


@dg.schedule(
    job=sync_warehouse,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def sync_warehouse_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Every five minutes, unless a sync or a build still runs: two dbt builds would fight
    over the models (and DuckDB's single-writer lock)."""
    active = context.instance.get_run_records(
        dg.RunsFilter(tags=WAREHOUSE_WRITER_TAG, statuses=ACTIVE_RUN_STATUSES), limit=1
    )
    if active:
        run = active[0].dagster_run
        return dg.SkipReason(f"{run.job_name} run {run.run_id} still writes the warehouse")
    return dg.RunRequest()


def warehouse_defs(settings: Settings) -> dg.Definitions:
    """The producer's definitions, for the code location to load: `settings` say where the
    manifest goes and which target dbt parses for."""
    project = prepared_project(settings)
    models = _models(project)
    return dg.Definitions(
        assets=[models, _row_events(models)],
        jobs=[sync_warehouse, build_warehouse, announce_warehouse_rows],
        schedules=[sync_warehouse_schedule],
        resources={"dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable())},
    )
