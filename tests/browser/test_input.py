"""Giving the model an image: a file, a photo, a drawing, a sample; and a file that is no image."""

import io
import json
import random

import httpx
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import FilePayload, Page

from tests import ROOT
from tests.browser.ui import Console, mark_result, new_verdict, open_page, query, shoot

LENET = json.loads((ROOT / "models" / "mnist-lenet.json").read_text())


def card_sample(label: int) -> tuple[str, str]:
    """(id, file path) of a shipped mnist-lenet sample of `label` that the card says it gets right."""
    sample = next(s for s in LENET["samples"] if s["label"] == label and s["predicted"] == label)
    return sample["id"], str(ROOT / "models" / sample["file"])


def photo_of(digit: int) -> bytes:
    """A phone-photo-like JPEG: a thick dark digit on grainy, light, slightly yellow paper."""
    width, height = 360, 480
    image = Image.new("RGB", (width, height), (232, 226, 212))
    draw = ImageDraw.Draw(image)
    grain = random.Random(digit)
    for _ in range(4000):
        g = grain.randrange(215, 245)
        draw.point((grain.randrange(width), grain.randrange(height)), fill=(g, g - 4, g - 16))
    ink = (35, 35, 48)
    if digit == 1:
        draw.line([(190, 110), (175, 370)], fill=ink, width=30)
    else:  # 7
        draw.line([(105, 120), (265, 120), (165, 380)], fill=ink, width=30, joint="curve")
    buffer = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(1.5)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_uploaded_png_is_named_as_its_class(page: Page, live_server: str) -> None:
    sample, path = card_sample(label=7)
    open_page(page, live_server, "?model=mnist-lenet&sample=" + card_sample(label=0)[0])
    mark_result(page)
    page.set_input_files("[data-control=file]", path)
    assert new_verdict(page) == "7", f"{sample} is a 7 according to models/mnist-lenet.json"
    assert page.text_content("[data-view=prediction] .verdict").startswith("7 · ")  # type: ignore[union-attr]
    assert page.get_attribute("[data-view=original] img", "src").startswith("blob:")  # type: ignore[union-attr]
    assert page.locator("[data-view=prepared] canvas").count() == 1
    shoot(page, "upload-png")


def test_uploaded_photo_of_a_digit_is_read(page: Page, live_server: str) -> None:
    open_page(page, live_server, "?model=mnist-lenet")
    for digit in (1, 7):
        mark_result(page)
        page.set_input_files("[data-control=file]",
                             {"name": f"photo-{digit}.jpg", "mimeType": "image/jpeg", "buffer": photo_of(digit)})
        assert new_verdict(page) == str(digit)
        shoot(page, f"upload-photo-{digit}", "[data-view=prepared]")
    shoot(page, "upload-photo")


def draw(page: Page, path: list[tuple[float, float]]) -> None:
    """One pen stroke on the drawing pad through `path`, given in fractions of the pad's size."""
    if not page.is_visible("[data-view=pad]"):
        page.click(".pad-box summary")  # the pad sits in a closed <details> at first
    box = page.locator("[data-view=pad]").bounding_box()
    assert box is not None
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in path]
    page.mouse.move(*at[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(at, at[1:]):
        page.mouse.move(x0, y0)
        page.mouse.move(x1, y1, steps=12)
    page.mouse.up()


def test_digit_drawn_on_the_pad_is_read(page: Page, live_server: str) -> None:
    open_page(page, live_server, "?model=mnist-lenet&sample=" + card_sample(label=0)[0])
    mark_result(page)
    draw(page, [(0.52, 0.15), (0.48, 0.85)])  # a "1": one near-vertical stroke
    assert new_verdict(page) == "1"
    assert "sample" not in query(page)
    shoot(page, "pad-1")
    page.click("[data-action=clear-pad]")
    mark_result(page)
    draw(page, [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)])  # a "7": a bar and a long diagonal
    assert new_verdict(page) == "7"
    shoot(page, "pad-7", ".sidebar")


def test_sample_buttons_switch_image_and_prediction(page: Page, live_server: str, api: httpx.Client) -> None:
    samples = api.get("/api/models/fashion-tinyvgg/samples").json()["samples"]
    card = json.loads((ROOT / "models" / "fashion-tinyvgg.json").read_text())
    right = {s["id"] for s in card["samples"] if s["label"] == s["predicted"]}
    chosen = [s for s in samples if s["id"] in right][::5][:3]  # right answers of different classes
    assert len({s["label"] for s in chosen}) == 3
    open_page(page, live_server, "?model=fashion-tinyvgg")
    for sample in chosen:
        mark_result(page)
        page.click(f"[data-view=samples] [data-sample='{sample['id']}']")
        assert new_verdict(page) == sample["label_name"]
        assert page.get_attribute("[data-view=original] img", "src") == sample["url"]
        assert page.get_attribute(f"[data-sample='{sample['id']}']", "aria-pressed") == "true"
        assert page.locator("[data-view=samples] [aria-pressed=true]").count() == 1
        assert query(page)["sample"] == sample["id"]
    shoot(page, "samples")


def refused(api: httpx.Client, upload: FilePayload) -> str:
    """The server's sentence for an upload it refuses."""
    answer = api.post("/api/models/mnist-lenet/forward",
                      files={"image": (upload["name"], upload["buffer"], upload["mimeType"])})
    assert answer.status_code == 422
    sentence: str = answer.json()["detail"]
    return sentence


def check_previous_result_is_kept_and_marked(page: Page, verdict: str, name: str) -> None:
    """After a refused upload the last good prediction and input stay, dimmed and labelled as the
    previous image's; the prediction's note names the refused file."""
    page.wait_for_selector("[data-view=prediction][data-previous]")
    assert page.get_attribute("[data-view=prediction] .verdict", "data-prediction") == verdict
    note = page.text_content("[data-previous-note]:not([data-view=prepared] *)") or ""
    assert "previous image" in note and name in note, note
    assert page.text_content("[data-view=prepared] [data-previous-note]") == "previous image"
    assert page.locator("[data-view=prepared] canvas[data-prepared]").count() == 1


def test_bad_upload_shows_the_servers_sentence_and_the_page_keeps_working(
        page: Page, live_server: str, api: httpx.Client, console: Console) -> None:
    pdf: FilePayload = {"name": "notes.pdf", "mimeType": "application/pdf",
                        "buffer": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"}
    sentence = refused(api, pdf)
    console.allow(r"Failed to load resource: the server responded with a status of 422")  # the network log

    first, _ = card_sample(label=0)
    open_page(page, live_server, f"?model=mnist-lenet&sample={first}")
    page.set_input_files("[data-control=file]", pdf)
    status = page.wait_for_selector("[data-view=status].error")
    assert status is not None and status.text_content() == f"notes.pdf: {sentence}"
    # No broken-image icon for a file the browser cannot show either: a sentence in its place.
    unreadable = page.wait_for_selector("[data-view=original] [data-unreadable]")
    assert unreadable is not None and "notes.pdf" in (unreadable.text_content() or "")
    assert page.locator("[data-view=original] img").count() == 0
    check_previous_result_is_kept_and_marked(page, "0", "notes.pdf")
    shoot(page, "bad-upload")
    shoot(page, "bad-upload-sidebar", ".sidebar")

    sample, _ = card_sample(label=3)
    mark_result(page)
    page.click(f"[data-sample='{sample}']")
    assert new_verdict(page) == "3"
    assert page.text_content("[data-view=status]") == ""
    assert page.locator("[data-previous], [data-previous-note], [data-unreadable]").count() == 0
    assert page.locator("[data-view=original] img").count() == 1


def test_refused_image_the_browser_can_show_is_shown_and_the_old_prediction_marked(
        page: Page, live_server: str, api: httpx.Client, console: Console) -> None:
    svg: FilePayload = {"name": "one.svg", "mimeType": "image/svg+xml", "buffer": (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28"/>'
        b'<path d="M14 4 V24" stroke="white" stroke-width="4"/></svg>')}
    sentence = refused(api, svg)
    console.allow(r"Failed to load resource: the server responded with a status of 422")

    open_page(page, live_server, "?model=mnist-lenet&sample=" + card_sample(label=7)[0])
    page.set_input_files("[data-control=file]", svg)
    status = page.wait_for_selector("[data-view=status].error")
    assert status is not None and status.text_content() == f"one.svg: {sentence}"
    check_previous_result_is_kept_and_marked(page, "7", "one.svg")
    img = page.wait_for_selector("[data-view=original] img")
    assert img is not None and img.evaluate("i => i.complete && i.naturalWidth") == 28  # decoded, not broken
    assert page.locator("[data-view=original] [data-unreadable]").count() == 0

    mark_result(page)  # the next good upload clears every mark
    page.set_input_files("[data-control=file]", card_sample(label=7)[1])
    assert new_verdict(page) == "7"
    assert page.locator("[data-previous], [data-previous-note], [data-unreadable]").count() == 0
    assert page.text_content("[data-view=status]") == ""
