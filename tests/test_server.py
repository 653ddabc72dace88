"""`uvicorn convscope.main:app` — the README's run command — starts and answers, as a real server."""

import httpx


def test_uvicorn_serves_health_and_the_page(live_server: str) -> None:
    assert httpx.get(f"{live_server}/api/health", timeout=5).json() == {"status": "ok"}
    assert "ConvScope" in httpx.get(f"{live_server}/", timeout=5).text
