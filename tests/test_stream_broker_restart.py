"""A running streaming worker survives a restart of an in-memory broker, which loses every
topic, event and committed offset: it joins again, catches up with what it missed, and
indexes what is produced after the restart, without being restarted itself."""

import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.adapters.local_servers import TansuBroker
from rag_core.adapters.processes import free_port
from rag_core.domain.ids import doc_id_for, version_for
from rag_core.flows.streaming import BatchOutcome, StreamingIndexer
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings

from conftest import announce

UPDATES = 50


def bay(number: int, colour: str) -> bytes:
    return f"# Bay {number}\n\nBay {number} of the garage is painted {colour}.".encode()


def indexed(settings: Settings, expected: dict[str, bytes]) -> bool:
    """Whether the index holds the current version of every source in `expected`."""
    store = services.object_store(settings)
    wanted = {(doc_id_for(store.uri_for(key)), version_for(body)) for key, body in expected.items()}
    index = services.chunk_index(settings)
    return wanted <= index.versions_of({doc_id for doc_id, _ in wanted})


def wait_until_indexed(settings: Settings, expected: dict[str, bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while not indexed(settings, expected):
        assert time.monotonic() < deadline, f"not indexed in time: {what}"
        time.sleep(0.25)


@pytest.mark.slow
def test_a_running_worker_catches_up_after_an_in_memory_broker_restarts(
    rag_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("RAG_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    settings = Settings()
    store = services.object_store(settings)
    keys = [f"documents/garage/bay-{number}.md" for number in range(UPDATES)]
    recoveries = REGISTRY.get_sample_value("rag_stream_broker_recoveries_total") or 0.0
    brokers = [TansuBroker(port, log_path=tmp_path / "tansu.log").start()]
    stopped = threading.Event()

    def stop_broker_mid_batch(outcome: BatchOutcome) -> None:
        """The broker goes down after the first batch's work, before its commit: the commit
        waits for the broker, and may reach the new one, past the end of its empty log."""
        if outcome.indexed and not stopped.is_set():
            brokers[-1].stop()
            stopped.set()

    stop = threading.Event()
    try:
        with StreamingIndexer(settings, stop_broker_mid_batch) as worker:
            thread = threading.Thread(target=worker.run, args=(stop,))
            thread.start()
            try:
                blue = {key: bay(number, "blue") for number, key in enumerate(keys)}
                for key, body in blue.items():
                    put_source(store, key, body)
                announce(settings)
                assert stopped.wait(120)
                # A change announced while the broker is down: its event is lost with it.
                lost = {"documents/garage/lost.md": b"# Lost\n\nAnnounced while it was down."}
                put_source(store, *next(iter(lost.items())))
                assert len(sync_object_store(store, lambda events: None)) == 1
                brokers.append(TansuBroker(port, log_path=tmp_path / "tansu.log").start())
                wait_until_indexed(settings, blue | lost, "the changes before the restart")

                red = {key: bay(number, "red") for number, key in enumerate(keys)}
                for key, body in red.items():
                    put_source(store, key, body)
                assert len(announce(settings)) == UPDATES
                wait_until_indexed(settings, red, f"the {UPDATES} updates after the restart")
                assert worker.health.ready and thread.is_alive()
            finally:
                stop.set()
                thread.join()
        assert REGISTRY.get_sample_value("rag_stream_broker_recoveries_total") == recoveries + 1
    finally:
        brokers[-1].stop()
