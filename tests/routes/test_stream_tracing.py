import contextvars
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core.telemetry import stage
from rag_serving.routes.query import in_one_context

DETACH_ERROR = "Failed to detach context"


def test_a_streamed_answer_leaves_no_context_detach_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    question = {"question": "How does VACUUM reclaim space?", "stream": True}
    with (
        caplog.at_level(logging.ERROR, logger="opentelemetry.context"),
        client.stream("POST", "/v1/query", json=question) as response,
    ):
        body = response.read().decode()
    assert response.status_code == 200 and "event: done" in body
    assert DETACH_ERROR not in caplog.text


def _tokens_in_a_span() -> Iterator[str]:
    with stage("generate"):
        yield "one"
        yield "two"
        yield "three"


def test_a_stream_left_mid_answer_closes_its_span_in_its_own_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As Starlette drives a sync stream: each step under a fresh copy of the context, and
    the stream closed from yet another when the client goes away after the first token."""
    stream = in_one_context(_tokens_in_a_span())
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        assert contextvars.copy_context().run(next, stream) == "one"
        assert contextvars.copy_context().run(next, stream) == "two"
        contextvars.copy_context().run(stream.close)
    assert DETACH_ERROR not in caplog.text
