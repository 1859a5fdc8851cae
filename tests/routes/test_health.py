from fastapi.testclient import TestClient


def test_healthz_is_liveness(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_the_index(client: TestClient) -> None:
    report = client.get("/readyz").json()
    assert report["status"] == "ready"
    assert report["dependencies"]["index"] == {
        "ok": True, "required": True, "detail": report["dependencies"]["index"]["detail"]
    }  # fmt: skip
    assert int(report["dependencies"]["index"]["detail"].removeprefix("table version ")) >= 1
    assert report["dependencies"]["cache"]["ok"] is True
    assert "llm" not in report["dependencies"]  # extractive: no model to reach


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/livez", "/healthz", "/readyz", "/v1/search", "/v1/query"} <= set(paths)
