"""Shared fixtures: one app (models loaded once per test session) and an HTTP client on it."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:  # `with` runs the lifespan: models load once
        yield test_client
