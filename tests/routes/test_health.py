from fastapi.testclient import TestClient


def test_healthz_reports_the_index(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["chunks"] > 100 and body["index_version"] >= 1


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/v1/search", "/v1/query"} <= set(paths)
