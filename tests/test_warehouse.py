"""The warehouse producer: dbt renders tickets into documents, diffs become row events, and the
warehouse source's `sync_document` mirrors rows into the object store. DuckDB for most tests,
fakesnow's Snowflake server for the Snowflake path, all in a temporary RAG_HOME."""

import base64
import gzip
import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from pydantic import SecretStr, ValidationError
from snowflake.connector.errors import DatabaseError

from rag_assets import warehouse as warehouse_assets
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.adapters.catalog import put_source, read_source
from rag_core.adapters.processes import ChildServer, accepts_connections, free_port
from rag_core.adapters.warehouse import cdc, connection
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.adapters.warehouse.rows import fetch_row, rendered_rows, row_counts
from rag_core.domain.documents import SourceMetadata
from rag_core.domain.events import TableRowChange, table_row_change
from rag_core.domain.layout import WAREHOUSE_PREFIX, metadata_key
from rag_core.settings import Settings
from rag_core.sources import warehouse
from rag_core.sources.warehouse_sample import load_sample

from conftest import PRODUCTION_INSTANCE

TABLE = "support_ticket_documents"
TICKETS = [f"TCK-{number}" for number in range(1001, 1013)]


@pytest.fixture
def built(rag_home: Settings) -> Settings:
    """The sample tickets loaded into DuckDB and rendered by `dbt build`."""
    assert load_sample(rag_home) == len(TICKETS)
    build_models(rag_home)
    return rag_home


def sql(settings: Settings, statement: str, *parameters: Any) -> None:
    with connection.connect(settings) as warehouse_connection:
        warehouse_connection.cursor().execute(statement, list(parameters))


def rebuild_after(settings: Settings, statement: str, *parameters: Any) -> None:
    """Change the raw table, then rebuild the models as the sync job would."""
    sql(settings, statement, *parameters)
    build_models(settings)


def emit(settings: Settings) -> list[TableRowChange]:
    published: list[TableRowChange] = []
    returned = cdc.emit_row_changes(settings, published.extend)
    assert returned == published
    return published


def test_models_render_each_ticket_as_a_document(built: Settings) -> None:
    rows = rendered_rows(built, TABLE)
    assert sorted(rows) == TICKETS

    api = rows["TCK-1003"]
    assert api.title == "Support ticket TCK-1003: HTTP 429 Too Many Requests when syncing orders"
    assert api.text.startswith("## HTTP 429 Too Many Requests when syncing orders\n\n")
    for fragment in ("- Product: Ledgerly API", "- Status: resolved", "- Priority: high"):
        assert fragment in api.text
    assert "600 requests per minute per access token" in api.text
    assert api.acl == ["support", "team:platform"]
    assert api.subjects == ["sam.whitfield@northpeak.example"]
    assert api.updated_at == datetime(2025, 3, 5, 16, 20)
    assert api.markdown().startswith(f"# {api.title}\n\n## HTTP 429")

    assert rows["TCK-1007"].text.endswith("### Resolution\n\nNot resolved yet.")
    assert len({row.row_version for row in rows.values()}) == len(TICKETS)
    assert fetch_row(built, TABLE, "TCK-1003") == api
    assert fetch_row(built, TABLE, "TCK-9999") is None
    assert row_counts(built) == {TABLE: len(TICKETS)}


def test_unknown_tables_are_refused(built: Settings) -> None:
    with pytest.raises(ValueError, match="not a document model"):
        fetch_row(built, "raw.support_tickets; DROP TABLE x", "TCK-1001")
    with pytest.raises(ValueError, match="not a document model"):
        cdc.record_emitted(
            built,
            [table_row_change("delete", "stg_support_tickets", "TCK-1001", None, "t")],
        )


def test_row_events_follow_inserts_updates_and_deletes(built: Settings) -> None:
    first = emit(built)
    rows = rendered_rows(built, TABLE)
    assert [(event.op, event.row_key) for event in first] == [("upsert", key) for key in TICKETS]
    assert all(event.row_version == rows[event.row_key].row_version for event in first)
    assert first[0].source_position == "2025-03-03T09:14:00"
    assert emit(built) == [], "nothing changed since the last emit"

    rebuild_after(
        built,
        "UPDATE raw.support_tickets SET resolution = ?, status = 'resolved', updated_at = ? "
        "WHERE ticket_id = 'TCK-1007'",
        "Reminders were paused by the dunning migration; they resumed on 18 March.",
        "2025-03-18 10:00:00",
    )
    (update,) = emit(built)
    assert (update.op, update.row_key) == ("upsert", "TCK-1007")
    assert update.row_version not in {None, rows["TCK-1007"].row_version}
    assert update.source_position == "2025-03-18T10:00:00"

    rebuild_after(built, "DELETE FROM raw.support_tickets WHERE ticket_id = 'TCK-1002'")
    (delete,) = emit(built)
    assert (delete.op, delete.row_key, delete.row_version) == ("delete", "TCK-1002", None)
    assert emit(built) == []


def test_a_failed_publish_leaves_the_state_so_the_next_run_announces_again(
    built: Settings,
) -> None:
    def broker_down(events: list[TableRowChange]) -> None:
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        cdc.emit_row_changes(built, broker_down)
    assert [event.row_key for event in emit(built)] == TICKETS


def test_sync_row_document_writes_and_deletes_the_source(built: Settings) -> None:
    store = services.object_store(built)
    key = warehouse.sync_document(store, built, TABLE, "TCK-1005")
    assert key == f"{WAREHOUSE_PREFIX}/{TABLE}/TCK-1005.md"
    source = read_source(store, key)
    assert source is not None
    content, metadata = source
    assert content.decode().startswith("# Support ticket TCK-1005: Set up SAML single sign-on")
    assert "Business and Enterprise plans" in content.decode()
    assert metadata.acl == ["support", "team:platform"]
    assert metadata.subjects == ["priya.nair@lumencapital.example"]

    rebuild_after(built, "DELETE FROM raw.support_tickets WHERE ticket_id = 'TCK-1005'")
    assert warehouse.sync_document(store, built, TABLE, "TCK-1005") == key
    assert read_source(store, key) is None
    assert not store.exists(metadata_key(key))


def test_sync_documents_mirrors_every_row_and_removes_stale_ones(built: Settings) -> None:
    store = services.object_store(built)
    stale = warehouse.document_key(TABLE, "TCK-0999")
    put_source(store, stale, b"# gone", SourceMetadata(acl=["support"]))
    put_source(store, "documents/handbook.md", b"# Handbook")

    keys = warehouse.sync_documents(store, built)

    assert keys == [warehouse.document_key(TABLE, key) for key in TICKETS]
    assert all(read_source(store, key) is not None for key in keys)
    assert not store.exists(stale) and not store.exists(metadata_key(stale))
    assert store.exists("documents/handbook.md"), "only the warehouse's folder is mirrored"


def test_row_keys_become_one_safe_path_segment() -> None:
    assert warehouse.document_key(TABLE, "../a/b c") == (
        f"{WAREHOUSE_PREFIX}/{TABLE}/..%2Fa%2Fb%20c.md"
    )


def test_a_failing_dbt_test_raises_with_its_name(built: Settings) -> None:
    sql(built, "UPDATE raw.support_tickets SET priority = 'whenever' WHERE ticket_id = 'TCK-1001'")
    with pytest.raises(connection.WarehouseError, match="accepted_values_stg_support_tickets_prio"):
        build_models(built)


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Another process holding the DuckDB file open for writing, as dbt or the producer do."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print(flush=True); "
            f"time.sleep({seconds})",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"\n"
    return holder


def test_duckdb_lock_conflicts_are_waited_out_then_reported(
    built: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = _hold_lock(built.warehouse_path, seconds=1.0)
    try:
        assert fetch_row(built, TABLE, "TCK-1001") is not None
    finally:
        holder.wait()

    monkeypatch.setattr(connection, "LOCK_WAIT_SECONDS", 0.5)
    holder = _hold_lock(built.warehouse_path, seconds=30.0)
    try:
        with pytest.raises(connection.WarehouseError, match="stayed locked by another process"):
            fetch_row(built, TABLE, "TCK-1001")
    finally:
        holder.kill()
        holder.wait()


class FakeSnowflake(ChildServer):
    """fakesnow's Snowflake server (its databases live in memory for its lifetime)."""

    name = "the fakesnow server"

    def __init__(self) -> None:
        self.port = free_port()
        fakesnow = Path(sys.executable).with_name("fakesnow")
        super().__init__([str(fakesnow), "-s", "--host", "127.0.0.1", "-p", str(self.port)])

    def ready(self) -> bool:
        return accepts_connections(self.port)


@pytest.mark.slow
def test_snowflake_target_renders_the_same_documents(
    built: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(connection.SNOWFLAKE_CONNECT_OPTIONS, "login_timeout", 10)
    monkeypatch.setitem(connection.SNOWFLAKE_CONNECT_OPTIONS, "network_timeout", 30)
    with FakeSnowflake() as server:
        snowflake = Settings(
            home=built.home / "snowflake",
            warehouse_target="snowflake",
            snowflake_account="fakesnow",
            snowflake_user="fake",
            snowflake_password=SecretStr("snow"),
            snowflake_host="127.0.0.1",
            snowflake_port=server.port,
            snowflake_protocol="http",
        )
        assert load_sample(snowflake) == len(TICKETS)
        build_models(snowflake)
        assert rendered_rows(snowflake, TABLE) == rendered_rows(built, TABLE)

        changes = cdc.row_changes(snowflake)
        assert [(change.op, change.row_key) for change in changes] == [
            ("upsert", key) for key in TICKETS
        ]
        cdc.record_emitted(snowflake, changes)
        assert cdc.row_changes(snowflake) == []

        rebuild_after(snowflake, "DELETE FROM raw.support_tickets WHERE ticket_id = ?", "TCK-1012")
        assert [(c.op, c.row_key) for c in cdc.row_changes(snowflake)] == [("delete", "TCK-1012")]


def private_key_pem(key: PrivateKeyTypes, passphrase: bytes = b"") -> str:
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption).decode()


def key_fingerprint(key: RSAPublicKey) -> str:
    """How Snowflake names a registered public key: SHA256 of its DER, base64."""
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


# What Snowflake answers a login whose JWT does not verify.
JWT_REFUSAL = {
    "success": False,
    "code": "390144",
    "message": "JWT token is invalid.",
    "data": {"authnMethod": "KEYPAIR_JWT"},
}


class KeyPairGate:
    """Snowflake's key-pair check in front of fakesnow (which signs anyone in): a login must
    carry a JWT signed by the user's registered key (RS256, `iss` naming the account, user
    and key fingerprint); everything else is passed on. `logins` records who got in."""

    def __init__(self, upstream_port: int, account: str, user: str, key: RSAPublicKey) -> None:
        self.logins: list[str] = []
        pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        public_key = RSAKey.import_key(pem)
        subject = f"{account}.{user}".upper()
        claims = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": f"{subject}.{key_fingerprint(key)}"},
            sub={"essential": True, "value": subject},
            exp={"essential": True},
        )
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path.startswith("/session/v1/login-request") and not self._admitted(body):
                    return self._reply(200, json.dumps(JWT_REFUSAL).encode())
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body, headers)
                answer = upstream.getresponse()
                reply = answer.read()
                upstream.close()
                self._reply(answer.status, reply, answer.getheader("content-type"))

            def _admitted(self, body: bytes) -> bool:
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                data = json.loads(body)["data"]
                try:
                    token = jwt.decode(data["TOKEN"], public_key, algorithms=["RS256"])
                    claims.validate(token.claims)
                except (KeyError, JoseError, ValueError):
                    return False
                gate.logins.append(f"{data['AUTHENTICATOR']} {token.claims['sub']}")
                return True

            def _reply(self, status: int, body: bytes, kind: str | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", kind or "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def snowflake_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pair_settings(home: Path, port: int, key: RSAPrivateKey, passphrase: bytes) -> Settings:
    return Settings(
        home=home,
        warehouse_target="snowflake",
        snowflake_account="fakesnow",
        snowflake_user="rag_sync",
        snowflake_private_key=SecretStr(private_key_pem(key, passphrase)),
        snowflake_private_key_passphrase=SecretStr(passphrase.decode()),
        snowflake_host="127.0.0.1",
        snowflake_port=port,
        snowflake_protocol="http",
    )


@pytest.mark.slow
def test_snowflake_signs_in_with_a_key_pair(
    rag_home: Settings, snowflake_key: RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection and dbt both sign in with the key (opened with its passphrase): the
    gate admits only logins signed by it, and refuses another key."""
    monkeypatch.setitem(connection.SNOWFLAKE_CONNECT_OPTIONS, "login_timeout", 10)
    monkeypatch.setitem(connection.SNOWFLAKE_CONNECT_OPTIONS, "network_timeout", 30)
    with FakeSnowflake() as server:
        gate = KeyPairGate(server.port, "fakesnow", "rag_sync", snowflake_key.public_key())
        try:
            settings = key_pair_settings(rag_home.home, gate.port, snowflake_key, b"open sesame")
            assert load_sample(settings) == len(TICKETS)
            build_models(settings)  # dbt, through profiles.yml
            assert sorted(rendered_rows(settings, TABLE)) == TICKETS
            assert gate.logins and set(gate.logins) == {"SNOWFLAKE_JWT FAKESNOW.RAG_SYNC"}

            another_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            impostor = key_pair_settings(rag_home.home, gate.port, another_key, b"")
            with pytest.raises(DatabaseError, match="JWT token is invalid"):
                sql(impostor, "SELECT 1")
        finally:
            gate.stop()


@pytest.mark.parametrize(
    ("key", "passphrase", "reason"),
    [
        ("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----", "",
         "cannot be read: Could not deserialize key data"),
        ("not-a-key-3f9a", "", "cannot be read: Unable to load PEM file"),
        ("encrypted", "", "cannot be read: Password was not given but private key is encrypted"),
        ("encrypted", "wrong", "cannot be read: Incorrect password, could not decrypt key"),
        ("ec", "", "is not an RSA key, which Snowflake needs"),
    ],
)  # fmt: skip
def test_an_unreadable_private_key_is_a_clear_warehouse_error(
    tmp_path: Path, snowflake_key: RSAPrivateKey, key: str, passphrase: str, reason: str
) -> None:
    pem = {
        "encrypted": private_key_pem(snowflake_key, b"right"),
        "ec": private_key_pem(ec.generate_private_key(ec.SECP256R1())),
    }.get(key, key)
    settings = key_pair_settings(tmp_path, free_port(), snowflake_key, b"").model_copy(
        update={
            "snowflake_private_key": SecretStr(pem),
            "snowflake_private_key_passphrase": SecretStr(passphrase),
        }
    )
    for attempt in (lambda: sql(settings, "SELECT 1"), lambda: build_models(settings)):
        with pytest.raises(connection.WarehouseError) as refused:
            attempt()
        assert str(refused.value).startswith("RAG_SNOWFLAKE_PRIVATE_KEY ")
        assert reason in str(refused.value)
        secret = [line for line in pem.splitlines() if "-----" not in line]
        assert not any(line in str(refused.value) for line in secret)


def test_a_password_and_a_private_key_together_are_refused(tmp_path: Path) -> None:
    both = "RAG_SNOWFLAKE_PASSWORD and RAG_SNOWFLAKE_PRIVATE_KEY are both set"
    with pytest.raises(ValidationError, match=both):
        Settings(
            home=tmp_path,
            snowflake_password=SecretStr("snow"),
            snowflake_private_key=SecretStr("-----BEGIN PRIVATE KEY-----"),
        )


PUBLISHED: list[TableRowChange] = []


class RecordingRag(RagResource):
    """Publishes into `PUBLISHED` instead of Kafka."""

    def publish_row_changes(self, events: Sequence[TableRowChange]) -> None:
        PUBLISHED.extend(events)


@pytest.mark.slow
def test_sync_warehouse_job_builds_models_and_announces_rows(rag_home: Settings) -> None:
    load_sample(rag_home)
    PUBLISHED.clear()
    defs = dg.Definitions.merge(
        warehouse_assets.warehouse_defs(rag_home),
        dg.Definitions(resources={"rag": RecordingRag()}),
    )
    result = defs.resolve_job_def("sync_warehouse").execute_in_process()
    assert result.success
    assert sorted(event.row_key for event in PUBLISHED) == TICKETS
    (events,) = [
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("warehouse_row_events")
    ]
    assert {name: events[name].value for name in ("upserts", "deletes", "rows")} == {
        "upserts": 12,
        "deletes": 0,
        "rows": 12,
    }
    assert cdc.row_changes(rag_home) == [], "recorded after publishing"
    schedule = defs.resolve_schedule_def("sync_warehouse_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize("job", [warehouse_assets.sync_warehouse, warehouse_assets.build_warehouse])
def test_schedule_skips_while_a_warehouse_writer_is_still_running(job: dg.JobDefinition) -> None:
    schedule = warehouse_assets.sync_warehouse_schedule
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        assert isinstance(schedule(context), dg.RunRequest)
        instance.add_run(
            dg.DagsterRun(job_name=job.name, status=dg.DagsterRunStatus.STARTED, tags=job.tags)
        )
        assert isinstance(schedule(context), dg.SkipReason)


def test_production_instance_runs_one_warehouse_writer_at_a_time() -> None:
    config = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    [(key, value)] = warehouse_assets.WAREHOUSE_WRITER_TAG.items()
    assert {"key": key, "value": value, "limit": 1} in limits


@pytest.mark.slow
def test_definitions_load_on_a_fresh_clone_without_a_manifest(tmp_path: Path) -> None:
    """Importing the code location runs no dbt; loading it (Dagster calls `defs`) parses the
    manifest into RAG_HOME."""
    manifest = tmp_path / "rag" / "dbt" / "manifest" / "manifest.json"
    load = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rag_assets import definitions\n"
        "manifest = Path(sys.argv[1])\n"
        "print(manifest.exists())\n"
        "definitions.defs()\n"
        "print(manifest.exists())\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", load, str(manifest)],
        env=os.environ | {"RAG_HOME": str(tmp_path / "rag")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.split()[-2:] == ["False", "True"]
