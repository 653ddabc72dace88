"""Many requests at once never see each other's tensors: on a real uvicorn server, 32 concurrent
forward and backward requests (different models, images, targets, losses, encodings) each get
exactly the answer the same request gets alone."""

import asyncio
import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.api.rebuild import LOSSES, MODELS

CONCURRENT = 32


def drawn(seed: int) -> bytes:
    """A different hand-drawn-looking picture for each seed (ink on paper, odd size)."""
    image = Image.new("L", (40 + seed, 36 + 2 * seed), 240)
    draw = ImageDraw.Draw(image)
    draw.line((5 + seed, 4, 30, 30 + seed), fill=10, width=4)
    draw.ellipse((8, 8 + seed // 2, 30, 30), outline=20, width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def plan(samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """32 different requests: both models, forward and backward, every loss, many images and targets."""
    requests = []
    for i in range(CONCURRENT):
        model = MODELS[i % 2]
        listed = samples[model]
        endpoint = "backward" if i % 4 in (1, 2) else "forward"
        options: dict[str, Any] = {"encoding": "base64"} if i % 3 == 0 else {}
        if endpoint == "backward":
            options["loss"] = LOSSES[i % 3]
            if i % 5:
                options["target"] = (i * 7) % 10
        if i % 8 == 7:
            kwargs: dict[str, Any] = {"files": {"image": ("d.png", drawn(i), "image/png")},
                                      "data": {k: str(v) for k, v in options.items()}}
        elif i % 8 == 3:
            png = base64.b64encode(drawn(i)).decode()
            kwargs = {"json": {"image": f"data:image/png;base64,{png}", **options}}
        else:
            kwargs = {"json": {"sample": listed[(i * 3) % len(listed)]["id"], **options}}
        requests.append({"url": f"/api/models/{model}/{endpoint}", "kwargs": kwargs})
    return requests


async def send(http: httpx.AsyncClient, request: dict[str, Any]) -> Any:
    response = await http.post(request["url"], **request["kwargs"])
    assert response.status_code == 200, response.text
    return response.json()


async def alone_then_together(base_url: str, requests: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
        alone = [await send(http, r) for r in requests]  # one at a time
        together = await asyncio.gather(*(send(http, r) for r in requests))
        # Once more in the opposite order, so that each request meets different neighbours.
        backwards = await asyncio.gather(*(send(http, r) for r in reversed(requests)))
    return alone, [*together, *reversed(backwards)]


@pytest.fixture(scope="module")
def samples(live_server: str) -> dict[str, list[dict[str, Any]]]:
    return {m: httpx.get(f"{live_server}/api/models/{m}/samples", timeout=10).json()["samples"] for m in MODELS}


def test_32_concurrent_mixed_requests_each_equal_the_same_request_made_alone(
        live_server: str, samples: dict[str, list[dict[str, Any]]]) -> None:
    requests = plan(samples)
    kinds = {(r["url"].split("/")[3], r["url"].split("/")[4]) for r in requests}
    assert kinds == {(m, e) for m in MODELS for e in ("forward", "backward")}
    alone, concurrent = asyncio.run(alone_then_together(live_server, requests))
    # The answers differ from each other, so equality below is not vacuous.
    distinct = {(a["model"], str(a["input"]["data"]), a.get("target"), a.get("loss_function")) for a in alone}
    assert len(distinct) >= CONCURRENT * 3 // 4, len(distinct)
    for i, answer in enumerate(concurrent):
        expected = alone[i % CONCURRENT]
        assert answer == expected, f"request {i % CONCURRENT} ({requests[i % CONCURRENT]['url']}) differs under load"
