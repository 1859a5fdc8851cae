"""Document indexing: raw → parsed → chunks → embeddings → index, one partition per
document version (`<doc_id>@<version>`); `events.py` turns change events into runs.

Every asset handles all partitions of its run at once (single-run backfill policy), so a bulk
ingest or a backfill pays Dagster's run start-up once and embeds in full batches.
"""

import time
import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from rag_assets.resources import RagResource
from rag_core.adapters.catalog import capture_raw, read_manifest
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.chunk_store import ChunkStore, LiveVersions
from rag_core.domain.documents import DocumentVersion
from rag_core.domain.ids import partition_key, split_partition_key
from rag_core.domain.layout import Stage
from rag_core.domain.parsing import ParsedDocument
from rag_core.flows import pipeline
from rag_core.flows.changes import record_announced_freshness
from rag_core.flows.documents import document_url
from rag_core.flows.orchestration import INDEXING_JOB, VERSION_PARTITIONS

# The single-run backfill policy is marked beta; it is the point of this design, so say it once.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

PARTITIONS_NAME = VERSION_PARTITIONS
document_versions = dg.DynamicPartitionsDefinition(name=PARTITIONS_NAME)

_PARTITIONED: dict[str, Any] = {
    "partitions_def": document_versions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "group_name": "documents",
}


def _manifests(context: dg.AssetExecutionContext, store: ObjectStore) -> list[DocumentVersion]:
    """Manifests of the run's partitions in order; keys without one are logged and skipped."""
    manifests = []
    for key in context.partition_keys:
        try:
            manifests.append(read_manifest(store, *split_partition_key(key)))
        except (ValueError, FileNotFoundError, OSError) as exc:
            context.log.warning(f"skipping partition {key}: no manifest ({exc})")
    return manifests


def _own_metadata(
    context: dg.AssetExecutionContext,
    rag: RagResource,
    manifest: DocumentVersion,
    facts: dict[str, Any] | None = None,
) -> None:
    """Give one partition's materialization facts of its own, beside the run's totals
    (`run_totals`) that every partition of the run gets, and a link to its document in the
    API, where a caller who may read it sees its source and title. Nothing here names the
    document: Dagster's history outlives erasure.

    Only `parsed_document` (where failures show) and `index` (the end of the line) do: each
    call costs Dagster about 10 ms of SQLite queries, per partition, in a bulk run."""
    link = dg.MetadataValue.url(document_url(rag.settings().api_url, manifest.doc_id))
    context.add_asset_metadata(
        {**(facts or {}), "document": link}, partition_key=manifest.partition_key
    )


def run_totals(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A run's totals, which Dagster gives every partition of the run: named `run/…` so
    that they are not read as the partition's own facts (`_own_metadata`)."""
    return {f"run/{name}": value for name, value in metadata.items()}


# Lineage from the warehouse: its rows reach the documents as events, rendered into sources.
@dg.asset(**_PARTITIONED, kinds={"s3"}, deps=[dg.AssetKey("warehouse_row_events")])
def raw_document(context: dg.AssetExecutionContext, rag: RagResource) -> dg.MaterializeResult:
    """The bytes of each document version, copied from the sources into `raw/`."""
    store = rag.store()
    manifests = _manifests(context, store)
    missing = [m.partition_key for m in manifests if not capture_raw(store, m)]
    for key in missing:
        context.log.warning(f"{key}: the source no longer holds this version")
    return dg.MaterializeResult(
        metadata=run_totals(
            {
                "documents": len(manifests),
                "bytes": sum(m.size for m in manifests),
                "missing_sources": len(missing),
            }
        )
    )


@dg.asset(**_PARTITIONED, deps=[raw_document], kinds={"python"})
def parsed_document(context: dg.AssetExecutionContext, rag: RagResource) -> dg.MaterializeResult:
    """Elements of each version (unstructured, offline); unparseable files are recorded."""
    store = rag.store()
    manifests = _manifests(context, store)
    parsed = pipeline.parse_versions(store, manifests, workers=rag.settings().parse_workers)
    # Only the kind of error reaches Dagster: a parser's message may quote the document, and
    # Dagster's history cannot be erased per partition (the full reason is in `failures/`).
    failures = [
        {"partition": manifest.partition_key, "reason": (document.error or "").split(":")[0]}
        for manifest, document in zip(manifests, parsed, strict=True)
        if not document.ok
    ]
    for failure in failures:
        context.log.warning(f"{failure['partition']} not parsed: {failure['reason']}")
    for manifest, document in zip(manifests, parsed, strict=True):
        _own_metadata(context, rag, manifest, _parse_facts(document))
    return dg.MaterializeResult(
        metadata=run_totals(
            {
                "documents": len(manifests),
                "parsed": len(manifests) - len(failures),
                "failed": len(failures),
                "failures": dg.MetadataValue.json(failures),
            }
        )
    )


def _parse_facts(document: ParsedDocument) -> dict[str, Any]:
    """A parse's status and size (pages only where the format has them); a failure by its
    kind alone, since a parser's message may quote the document."""
    if not document.ok:
        return {"parse_status": "failed", "parse_failure": (document.error or "").split(":")[0]}
    pages = len({element.page for element in document.elements if element.page is not None})
    return {"parse_status": "parsed", "elements": len(document.elements)} | (
        {"pages": pages} if pages else {}
    )


CHUNK_CHECKS = [
    dg.AssetCheckSpec(
        "titles_name_their_documents",
        asset="chunks",
        description="No document is titled by navigation or, lacking any title, its file name.",
    ),
    dg.AssetCheckSpec(
        "no_navigation_chunks",
        asset="chunks",
        description="No chunk holds only a page's navigation (main content extraction missed it).",
    ),
]


@dg.asset(**_PARTITIONED, deps=[parsed_document], kinds={"python"}, check_specs=CHUNK_CHECKS)
def chunks(context: dg.AssetExecutionContext, rag: RagResource) -> dg.MaterializeResult:
    """Chunks that follow each document's sections, with their heading paths and
    deterministic ids. The checks warn (and name the partitions) where a document does not
    read as a person would read it."""
    settings = rag.settings()
    store = rag.store()
    manifests = _manifests(context, store)
    chunk_sets = [
        pipeline.chunk_version(
            store, manifest, size=settings.chunk_size, overlap=settings.chunk_overlap
        )
        for manifest in manifests
    ]
    readings = pipeline.reading_problems(manifests, chunk_sets)
    return dg.MaterializeResult(
        metadata=run_totals(
            {
                "documents": len(chunk_sets),
                "chunks": sum(len(chunk_set.chunks) for chunk_set in chunk_sets),
                "chunk_size": settings.chunk_size,
                "chunk_overlap": settings.chunk_overlap,
            }
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name=check,
                passed=not partitions,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"documents": len(partitions), "partitions": partitions[:20]},
            )
            for check, partitions in readings.items()
        ],
    )


@dg.asset(**_PARTITIONED, deps=[chunks], kinds={"pytorch"})
def embeddings(context: dg.AssetExecutionContext, rag: RagResource) -> dg.MaterializeResult:
    """Sentence embeddings of every chunk, batched across all versions of the run; chunks
    already in the index keep their vectors."""
    store = rag.store()
    embedder = rag.embedder()
    started = time.perf_counter()
    embedded = pipeline.embed_versions(store, embedder, rag.index(), _manifests(context, store))
    seconds = time.perf_counter() - started
    return dg.MaterializeResult(
        metadata=run_totals(
            {
                "chunks": embedded,
                "model": embedder.model_name,
                "dimension": embedder.dimension,
                "chunks_per_second": round(embedded / seconds, 1) if seconds else 0.0,
            }
        )
    )


INDEX_CHECKS = [
    dg.AssetCheckSpec("vector_dimension", asset="index", description="Vectors match the model."),
    dg.AssetCheckSpec("no_empty_chunks", asset="index", description="No chunk without text."),
    dg.AssetCheckSpec(
        "rows_match_live_chunks",
        asset="index",
        description="The table holds exactly the chunks of live document versions.",
    ),
]


@dg.asset(**_PARTITIONED, deps=[embeddings], kinds={"lancedb"}, check_specs=INDEX_CHECKS)
def index(context: dg.AssetExecutionContext, rag: RagResource) -> dg.MaterializeResult:
    """Chunks and vectors in the LanceDB `chunks` table, with its full-text index. The new
    version is written before older ones are retired (rows, artifacts, then partitions)."""
    settings = rag.settings()
    store = rag.store()
    chunk_index = rag.index()
    dimension = rag.embedder().dimension
    manifests = _manifests(context, store)
    result = pipeline.index_versions(
        store, chunk_index, manifests, dimension=dimension, keep_versions=settings.keep_versions
    )
    for manifest in manifests:  # while every partition of the run still exists
        chunk_count = result.chunk_counts.get((manifest.doc_id, manifest.version), 0)
        _own_metadata(context, rag, manifest, {"chunks": chunk_count, "bytes": manifest.size})
    for doc_id, version in result.retired:
        context.instance.delete_dynamic_partition(PARTITIONS_NAME, partition_key(doc_id, version))
    freshness = record_announced_freshness(store, manifests)
    live = chunk_index.live_versions()
    stats = chunk_index.stats(live)
    return dg.MaterializeResult(
        metadata=run_totals(
            {
                "inserted_chunks": result.inserted,
                "access_updated_documents": len(result.access_updated),
                "retired_versions": len(result.retired),
                "table_version": stats.table_version,
                "table_chunks": stats.chunks,
                "table_documents": stats.documents,
                "max_freshness_lag_seconds": round(max(r.lag_seconds for r in freshness), 3)
                if freshness
                else None,
            }
        ),
        check_results=index_checks(
            context.instance, chunk_index, result.chunk_counts, dimension, live
        ),
    )


def index_checks(
    instance: dg.DagsterInstance,
    chunk_index: ChunkStore,
    chunk_counts: Mapping[tuple[str, str], int],
    dimension: int,
    live: LiveVersions,
) -> list[dg.AssetCheckResult]:
    """`INDEX_CHECKS` on the table as it is now, for the `index` asset's runs and for the
    streaming worker's record (`rag_assets.streaming`). `chunk_counts` are the chunks of the
    versions just indexed; those retired since are not judged."""
    stored_dimension = chunk_index.vector_dimension()
    # None: nothing indexed yet, every version of the run had no chunks
    table_dimension = dimension if stored_dimension is None else stored_dimension
    empty = chunk_index.blank_chunks()
    live_partitions = set(instance.get_dynamic_partitions(PARTITIONS_NAME))
    orphaned = [pair for pair in live if partition_key(*pair) not in live_partitions]
    mismatched = [
        partition_key(*pair)
        for pair, count in chunk_counts.items()
        if pair in live and live[pair] != count
    ]
    return [
        dg.AssetCheckResult(
            check_name="vector_dimension",
            passed=table_dimension == dimension,
            metadata={"table": table_dimension, "model": dimension},
        ),
        dg.AssetCheckResult(
            check_name="no_empty_chunks", passed=empty == 0, metadata={"empty_chunks": empty}
        ),
        dg.AssetCheckResult(
            check_name="rows_match_live_chunks",
            passed=not orphaned and not mismatched,
            metadata={
                "versions_without_partition": len(orphaned),
                "versions_with_wrong_row_count": len(mismatched),
            },
        ),
    ]


ingest_documents = dg.define_asset_job(
    INDEXING_JOB,
    selection=dg.AssetSelection.groups("documents"),
    partitions_def=document_versions,
)


document_assets = [raw_document, parsed_document, chunks, embeddings, index]
# The pipeline stage each asset materializes: erasure walks the lineage by these.
ASSET_STAGES = {
    raw_document.key: Stage.RAW,
    parsed_document.key: Stage.PARSED,
    chunks.key: Stage.CHUNKS,
    embeddings.key: Stage.EMBEDDINGS,
    index.key: Stage.INDEX,
}

defs = dg.Definitions(assets=document_assets, jobs=[ingest_documents])
