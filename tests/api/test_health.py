"""The liveness route and the start page, in-process."""

from fastapi.testclient import TestClient


def test_health_answers_ok(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_index_lists_the_builtin_models(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-model="mnist-lenet"' in page.text and 'data-model="fashion-tinyvgg"' in page.text


def test_unknown_api_path_is_a_404_with_a_string_detail(client: TestClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)
