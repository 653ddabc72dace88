"""Bad requests get a 4xx and a sentence in `detail`, never a 5xx, and the server keeps answering.

Each case names the mistake, the status it must get, and words its `detail` sentence must contain.
Afterwards a correct forward must still give the right numbers, in-process and on a real server.
"""

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from convscope.config import Settings
from convscope.main import create_app
from tests.api.rebuild import rebuild, tensor

MODEL = "mnist-lenet"  # the errors do not depend on the model; its numbers are checked at the end
M = f"/api/models/{MODEL}"
SIDE = 28  # the built-in models' input side, for tensors of the right and wrong size


def png_bytes(width: int = 28, height: int = 28, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


PNG = png_bytes()
TRUNCATED = PNG[: len(PNG) * 2 // 3]
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TEXT = b"Dear ConvScope,\nthis is a letter, not a picture of a digit.\n"
ZEROS = ",".join(["0"] * (SIDE * SIDE - 1))
JSON = {"content-type": "application/json"}


def raw_json(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": JSON}


def file(data: bytes, name: str = "image.png", kind: str = "image/png") -> dict[str, Any]:
    return {"files": {"image": (name, data, kind)}}


def sample(**extra: Any) -> dict[str, Any]:
    return {"json": {"sample": "test-00000", **extra}}


# (case, method, path, request kwargs, status, words in the detail sentence)
CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("unknown model", "GET", "/api/models/resnet-9000", {}, 404, "no model called 'resnet-9000'"),
    ("unknown model on forward", "POST", "/api/models/resnet-9000/forward", sample(), 404, "no model called"),
    ("unknown model's samples", "GET", "/api/models/resnet-9000/samples", {}, 404, "no model called"),
    ("unknown layer's weights", "GET", f"{M}/layers/conv99/weights", {}, 404, "no layer called 'conv99'"),
    ("unknown layer in layers= query", "POST", f"{M}/forward?layers=conv99", sample(), 404,
     "no layer called 'conv99'"),
    ("unknown layer in JSON layers", "POST", f"{M}/backward", sample(layers=["conv1", "conv99"]), 404,
     "no layer called 'conv99'"),
    ("weights of a layer without weights", "GET", f"{M}/layers/flatten/weights", {}, 404, "has no weights"),
    ("weights in an unknown encoding", "GET", f"{M}/layers/conv1/weights?encoding=hex", {}, 422, "encoding"),
    ("weights as float16 without base64", "GET", f"{M}/layers/conv1/weights?dtype=float16", {}, 422,
     "needs encoding=base64"),
    ("truncated PNG", "POST", f"{M}/forward", file(TRUNCATED), 422, "truncated or corrupt"),
    ("PDF as the image file", "POST", f"{M}/forward", file(PDF, "scan.pdf", "application/pdf"), 422, "pdf"),
    ("text as the image file", "POST", f"{M}/backward", file(TEXT, "note.txt", "text/plain"), 422,
     "looks like text"),
    ("text as a raw image body", "POST", f"{M}/forward", {"content": TEXT, "headers": {"content-type": "image/png"}},
     422, "looks like text"),
    ("empty multipart file", "POST", f"{M}/forward", file(b""), 422, "empty"),
    ("image with too many pixels", "POST", f"{M}/forward",
     {"content": png_claiming(8000, 6000), "headers": {"content-type": "image/png"}}, 413, "megapixels"),
    ("decompression bomb", "POST", f"{M}/backward", file(png_claiming(100_000, 100_000)), 413, "too many pixels"),
    ("tensor of the wrong shape", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [3, SIDE, SIDE], "data": [0.0] * (3 * SIDE * SIDE)}}}, 422, "shape"),
    ("tensor with a batch dimension", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [1, 1, SIDE, SIDE], "data": [0.0] * (SIDE * SIDE)}}}, 422, "shape"),
    ("NaN in the tensor", "POST", f"{M}/forward",
     raw_json(f'{{"tensor": {{"shape": [1, {SIDE}, {SIDE}], "data": [NaN, {ZEROS}]}}}}'), 422, "nan"),
    ("Infinity in the tensor", "POST", f"{M}/backward",
     raw_json(f'{{"tensor": {{"shape": [1, {SIDE}, {SIDE}], "data": [{ZEROS}, 1e999]}}}}'), 422, "infinite"),
    ("null in the tensor", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [1, SIDE, SIDE], "data": [None] * (SIDE * SIDE)}}}, 422, "only numbers"),
    ("tensor data of the wrong length", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [1, SIDE, SIDE], "data": [0.0] * 100}}}, 422, "has 100 values"),
    ("tensor with a negative dimension", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [1, -28, SIDE], "data": []}}}, 422, "non-negative whole numbers"),
    ("tensor data that is not base64", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [1, SIDE, SIDE], "encoding": "base64", "data": "not base64!"}}}, 422,
     "not valid base64"),
    ("base64 tensor with too few bytes", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [1, SIDE, SIDE], "encoding": "base64", "data": "AAAAAAAAAAA="}}}, 422,
     "holds 2 float32 values"),
    ("tensor in an unknown dtype", "POST", f"{M}/forward",
     {"json": {"tensor": {"shape": [1], "dtype": "int8", "data": [1]}}}, 422, "dtype"),
    ("target out of range", "POST", f"{M}/backward", sample(target=10), 422, "from 0 to 9; got 10"),
    ("negative target", "POST", f"{M}/backward?target=-1", sample(), 422, "from 0 to 9; got -1"),
    ("target that is a word", "POST", f"{M}/backward", sample(target="seven"), 422, "'target'"),
    ("target with a fraction", "POST", f"{M}/backward", sample(target=2.5), 422, "'target'"),
    ("target that is true", "POST", f"{M}/backward", sample(target=True), 422, "'target'"),
    ("unknown loss", "POST", f"{M}/backward", sample(loss="hinge"), 422, "'loss'"),
    ("unknown encoding", "POST", f"{M}/forward?encoding=hex", sample(), 422, "'encoding'"),
    ("float16 without base64", "POST", f"{M}/forward", sample(dtype="float16"), 422, "needs encoding=base64"),
    ("unknown JSON key", "POST", f"{M}/forward", sample(colour="red"), 422, "'colour' is not a parameter"),
    ("target sent to forward", "POST", f"{M}/forward", sample(target=3), 422, "'target' is not a parameter"),
    ("two image sources", "POST", f"{M}/forward",
     {"json": {"sample": "test-00000", "tensor": {"shape": [1, SIDE, SIDE], "data": [0.0] * (SIDE * SIDE)}}}, 422,
     "one image source"),
    ("no image in a JSON body", "POST", f"{M}/forward", {"json": {"encoding": "base64"}}, 422, "no image"),
    ("no body at all", "POST", f"{M}/backward", {}, 422, "no image"),
    ("JSON that is not an object", "POST", f"{M}/forward", {"json": ["test-00000"]}, 422, "must be an object"),
    ("invalid JSON", "POST", f"{M}/forward", raw_json('{"sample": "test-00000"'), 422, "not valid json"),
    ("JSON nested too deeply", "POST", f"{M}/forward", raw_json("[" * 50_000), 422, "nested too deeply"),
    ("data URL that is not base64", "POST", f"{M}/forward", {"json": {"image": "data:image/png,rawbytes"}}, 422,
     "base64"),
    ("data URL without data", "POST", f"{M}/forward", {"json": {"image": "data:image/png;base64"}}, 422,
     "data url"),
    ("data URL with broken base64", "POST", f"{M}/forward", {"json": {"image": "data:image/png;base64,@@"}}, 422,
     "not valid base64"),
    ("file field with the wrong name", "POST", f"{M}/forward", {"files": {"picture": ("a.png", PNG, "image/png")}},
     422, "must be called 'image'"),
    ("two files", "POST", f"{M}/forward",
     {"files": [("image", ("a.png", PNG, "image/png")), ("image", ("b.png", PNG, "image/png"))]}, 422, "multipart"),
    ("multipart without a boundary", "POST", f"{M}/forward",
     {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, 422, "multipart"),
    ("unsupported content type", "POST", f"{M}/forward",
     {"content": b"sample=test-00000", "headers": {"content-type": "text/plain"}}, 415, "does not read 'text/plain'"),
    ("PDF as a raw body", "POST", f"{M}/backward", {"content": PDF, "headers": {"content-type": "application/pdf"}},
     415, "application/pdf"),
    ("unknown sample", "POST", f"{M}/forward", {"json": {"sample": "test-99999"}}, 404, "no sample called"),
    ("unknown sample's PNG", "GET", f"{M}/samples/test-99999.png", {}, 404, "no sample called"),
]


def check_error(response: Any, status: int, words: str) -> None:
    assert response.status_code == status, f"{response.status_code} {response.text[:300]}"
    body = response.json()
    detail = body["detail"]
    assert isinstance(detail, str) and len(detail) > 15 and detail[-1] in ".!?)", detail
    assert words.lower() in detail.lower(), detail
    assert set(body) <= {"detail", "errors"}
    if "errors" in body:
        assert isinstance(body["errors"], list)


@pytest.fixture(scope="module")
def reference(client: TestClient) -> dict[str, Any]:
    """A correct forward, answered before any bad request."""
    response = client.post(f"{M}/forward", json={"sample": "test-00000"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "words"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_request_gets_its_status_and_a_sentence(
        client: TestClient, reference: dict[str, Any], method: str, path: str, kwargs: dict[str, Any],
        status: int, words: str) -> None:
    check_error(client.request(method, path, **kwargs), status, words)


@pytest.fixture(scope="module")
def small_limits() -> Iterator[TestClient]:
    """An app with tiny byte and pixel limits, so that "too large" needs no large upload."""
    settings = Settings(max_upload_bytes=2_000, max_image_pixels=10_000)
    with TestClient(create_app(settings)) as small:
        yield small


def test_upload_over_the_byte_limit_gets_413(small_limits: TestClient) -> None:
    big = png_bytes(60, 60, seed=1)  # incompressible noise: a few kB
    assert len(big) > 2_000
    check_error(small_limits.post(f"{M}/forward", content=big, headers={"content-type": "image/png"}), 413,
                "over the limit")
    check_error(small_limits.post(f"{M}/backward", **file(big)), 413, "over the limit")
    check_error(small_limits.post(f"{M}/forward", json={"image": "data:image/png;base64," + "A" * 4_000}), 413,
                "over the limit")


def test_request_body_far_over_the_limit_is_refused_with_413(small_limits: TestClient) -> None:
    huge = b"\x89PNG\r\n\x1a\n" + bytes(3 * 2**20)  # past the whole-request cap, not only the image cap
    check_error(small_limits.post(f"{M}/forward", content=huge, headers={"content-type": "image/png"}), 413,
                "the limit is")


def test_image_with_more_pixels_than_the_setting_gets_413(small_limits: TestClient) -> None:
    out = io.BytesIO()
    Image.new("L", (200, 200)).save(out, format="PNG")  # 40,000 pixels in a few hundred bytes
    check_error(small_limits.post(f"{M}/forward", content=out.getvalue(), headers={"content-type": "image/png"}),
                413, "200×200 pixels")
    ok = small_limits.post(f"{M}/forward", content=png_bytes(), headers={"content-type": "image/png"})
    assert ok.status_code == 200  # small enough on both counts


def test_full_queue_answers_429_with_a_sentence() -> None:
    with TestClient(create_app(Settings(max_queued=0))) as busy:
        check_error(busy.post(f"{M}/forward", json={"sample": "test-00000"}), 429, "busy")
        check_error(busy.post(f"{M}/backward", **file(PNG)), 429, "try again")
        assert busy.get("/api/health").status_code == 200


def test_after_the_bad_requests_a_correct_forward_still_gives_the_right_numbers(
        client: TestClient, reference: dict[str, Any]) -> None:
    after = client.post(f"{M}/forward", json={"sample": "test-00000"})
    assert after.status_code == 200
    assert after.json() == reference
    net = rebuild(client, MODEL)
    plain = net.run(tensor(reference["input"]).unsqueeze(0))
    for name, served in reference["layers"].items():
        # The same ops on the same float32 input at the same thread count: bit for bit.
        torch.testing.assert_close(tensor(served), plain[name][0], atol=0, rtol=0)
    assert reference["prediction"]["index"] == int(net.logits(plain).argmax())


LIVE_CASES = ["truncated PNG", "NaN in the tensor", "JSON nested too deeply", "two files", "decompression bomb",
              "multipart without a boundary", "data URL without data", "unknown model on forward",
              "target out of range", "unsupported content type"]


def test_real_server_answers_bad_requests_with_sentences_and_stays_up(
        live_server: str, reference: dict[str, Any]) -> None:
    cases = {case[0]: case[1:] for case in CASES}
    with httpx.Client(base_url=live_server, timeout=30) as http:
        for name in LIVE_CASES:
            method, path, kwargs, status, words = cases[name]
            check_error(http.request(method, path, **kwargs), status, words)
        # A declared body far over the 10 MB default: refused from its Content-Length.
        too_big = b"\x89PNG\r\n\x1a\n" + bytes(16 * 2**20)
        check_error(http.post(f"{M}/forward", content=too_big, headers={"content-type": "image/png"}), 413,
                    "the limit is")
        assert http.get("/api/health").json() == {"status": "ok"}
        after = http.post(f"{M}/forward", json={"sample": "test-00000"})
        assert after.status_code == 200
        assert after.json() == reference  # the same numbers as in-process, checked against PyTorch above
