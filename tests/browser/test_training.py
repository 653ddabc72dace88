"""The training lab in Chromium: a run started from the form grows its curves and its progress bar
live, redraws its kernels and ends with the numbers the API serves; two runs overlaid in the compare
chart with their settings in the legend, surviving a reload; cancel; refused settings explained."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.ui import Console, shoot, to_fixed, varied
from tests.conftest import serving

LIVE = "[data-view=live]"
TRAINING_MS = 90_000  # a run's whole life on a busy 2-core machine; the runs here take seconds
TINY = {"train_size": 1000, "batch_size": 16, "steps": 300}  # ~5 epochs of 63 steps, a few seconds


@pytest.fixture(scope="module")
def live_server() -> Iterator[str]:
    """A server of these tests' own: a finished run becomes a model, and the session's shared server
    must keep listing only the built-ins for the tests that check that list."""
    with serving() as url:
        yield url


@pytest.fixture(scope="module")
def api(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, timeout=30) as client:
        yield client


def open_lab(page: Page, base_url: str, query: str = "") -> None:
    page.goto(f"{base_url}/training{query}")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.wait_for_selector("[data-view=form] [data-action=start]")


def fill(page: Page, **settings: Any) -> None:
    """Set form fields as a person would: selects by value, numbers typed, steps or epochs ticked."""
    for name in ("dataset", "architecture", "activation", "pooling", "loss", "optimizer"):
        if name in settings:
            page.select_option(f"#lab-{name}", settings[name])
    for name in ("learning_rate", "batch_size", "seed", "train_size"):
        if name in settings:
            page.fill(f"#lab-{name}", str(settings[name]))
    for unit in ("steps", "epochs"):
        if unit in settings:
            page.check(f"input[name=unit][value={unit}]")
            page.fill("#lab-length", str(settings[unit]))


def start(page: Page, **settings: Any) -> str:
    """Fill the form, press Start, and return the id of the run the live panel then shows."""
    before = page.get_attribute(LIVE, "data-run") or ""
    fill(page, **settings)
    page.click("[data-action=start]")
    page.wait_for_function("before => { const id = document.querySelector('[data-view=live]').dataset.run; "
                           "return id && id !== before; }", arg=before)
    return page.get_attribute(LIVE, "data-run") or ""


def wait_status(page: Page, status: str, run: str | None = None) -> None:
    where = f"{LIVE}[data-run='{run}']" if run else LIVE
    page.wait_for_selector(f"{where}[data-status={status}]", state="attached", timeout=TRAINING_MS)


def served(api: httpx.Client, run: str) -> dict[str, Any]:
    answer = api.get(f"/api/training/runs/{run}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


# Records every value the loss chart's data-points and the progress bar take, with the run's status
# at that moment: evidence that the page drew the run as it trained, not all at once at the end.
RECORD = """() => {
  const seen = window.seen = [];
  const chart = document.querySelector('[data-view=loss-chart]');
  const bar = document.querySelector('[data-view=progress]');
  const live = document.querySelector('[data-view=live]');
  const note = () => seen.push({ points: Number(chart.dataset.points), progress: bar.value, status: live.dataset.status });
  const observer = new MutationObserver(note);
  observer.observe(chart, { attributes: true, attributeFilter: ['data-points'] });
  observer.observe(bar, { attributes: true, attributeFilter: ['value'] });
}"""


def test_a_run_grows_its_curves_and_progress_live_and_ends_with_the_served_numbers(
        page: Page, live_server: str, api: httpx.Client) -> None:
    open_lab(page, live_server)
    options = api.get("/api/training/options").json()
    # The form is the server's: every choice listed, the optimizer's default rate filled in on change.
    assert page.eval_on_selector_all("#lab-optimizer option", "os => os.map(o => o.value)") == \
        [o["id"] for o in options["optimizers"]]
    assert page.eval_on_selector_all("#lab-activation option", "os => os.map(o => o.value)") == \
        ["relu", "sigmoid", "tanh", "leaky_relu"]
    for optimizer in options["optimizers"]:
        page.select_option("#lab-optimizer", optimizer["id"])
        # Exact: the field shows the rate to 6 significant digits (labels.js rate), and no default has more.
        assert float(page.input_value("#lab-learning_rate")) == optimizer["learning_rate"]
    page.select_option("#lab-optimizer", "adam")
    assert "subset" in (page.text_content("#lab-dataset option[value=mnist]") or "")

    page.evaluate(RECORD)
    run = start(page, **TINY)
    page.wait_for_selector(f"{LIVE}[data-status=running] [data-view=loss-chart]:not([data-points='0'])",
                           timeout=TRAINING_MS)
    shoot(page, "training-run-live")
    wait_status(page, "done", run)

    seen: list[dict[str, Any]] = page.evaluate("window.seen")
    running = [s for s in seen if s["status"] == "running"]
    points = [s["points"] for s in running]
    progress = [s["progress"] for s in running]
    assert len({p for p in points if p > 0}) >= 3, f"the curve did not grow while the run trained: {points}"
    assert points == sorted(points) and progress == sorted(progress)
    assert len({p for p in progress if 0 < p < 1}) >= 3, f"the progress bar did not move: {progress}"

    body = served(api, run)
    assert body["status"] == "done"
    history = body["history"]
    steps = [e for e in history if e["type"] == "step"]
    tests = [e for e in history if e["type"] == "epoch"]
    # Every logged step drawn; a test point per epoch end, and one for the final weights' test.
    assert page.get_attribute("[data-view=loss-chart]", "data-points") == str(len(steps))
    assert page.get_attribute("[data-view=accuracy-chart]", "data-points") == str(len(steps))
    assert page.get_attribute("[data-view=loss-chart]", "data-test-points") == str(len(tests) + 1)
    assert page.get_attribute("[data-view=progress]", "value") == "1"
    # The numbers shown are the served ones, exactly: data-value is String() of the JSON number, which reads back.
    for key in ("loss", "accuracy", "test_loss", "test_accuracy"):
        shown = page.get_attribute(f"{LIVE} [data-metric={key}]", "data-value")
        assert shown is not None and float(shown) == body[key], key
    row = f"[data-view=runs] tr[data-run='{run}']"
    assert float(page.get_attribute(f"{row} td.accuracy", "data-value") or "nan") == body["test_accuracy"]  # String()
    # The text is (v * 100).toFixed(1): the same float64 product, rounded as JavaScript rounds it.
    shown_accuracy = page.text_content(f"{LIVE} [data-metric=test_accuracy]") or ""
    assert f"{to_fixed(body['test_accuracy'] * 100, 1)} %" in shown_accuracy
    # The first layer's kernels: LeNet's conv1, 6 of 5×5, drawn from the last snapshot.
    kernels = [e for e in history if e.get("kernels")]
    assert kernels[-1]["kernels"]["shape"] == [6, 1, 5, 5]
    assert page.get_attribute("[data-view=kernels]", "data-step") == str(body["step"])
    assert varied(page, "[data-view=kernels] canvas") == [True] * 6
    # Going back to the first snapshot redraws them as they were.
    page.focus("[data-control=snapshot]")
    page.keyboard.press("Home")
    page.wait_for_selector(f"[data-view=kernels][data-step='{kernels[0]['step']}']")
    # The trained model is a model like the built-ins, one click away.
    assert body["model"] == f"run-{run}"
    assert page.get_attribute(f"{LIVE} [data-view=inspect]", "href") == f"/?model=run-{run}"
    assert page.is_hidden(f"{LIVE} [data-action=cancel]")
    shoot(page, "training-run-done")

    page.click(f"{LIVE} [data-view=inspect]")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.input_value("[data-control=model]") == f"run-{run}"


def test_two_runs_overlaid_in_the_compare_chart_with_their_settings_in_the_legend(
        page: Page, live_server: str, api: httpx.Client) -> None:
    open_lab(page, live_server)
    first = start(page, **TINY, activation="relu", optimizer="adam")
    # One training slot: the second run waits for the first and says so.
    second = start(page, **TINY, activation="sigmoid", optimizer="sgd")
    status = page.text_content(f"{LIVE} [data-view=run-status]") or ""
    assert status.startswith("Queued") or served(api, first)["status"] == "done", status
    shoot(page, "training-queued", LIVE)
    wait_status(page, "done", second)
    # The first run's row is not streamed: it turns "done" at the list's next look (every 2 s), which can come
    # after the second run, a few seconds long, has ended; so wait for it rather than read it at once.
    page.wait_for_selector(f"[data-view=runs] tr[data-run='{first}'][data-status=done]")

    page.check(f"[data-view=runs] tr[data-run='{first}'] [data-control=compare]")
    page.wait_for_selector("[data-view=compare-chart][data-series='1']")
    page.focus(f"[data-view=runs] tr[data-run='{second}'] [data-control=compare]")  # the keyboard does it too
    page.keyboard.press("Space")
    page.wait_for_selector("[data-view=compare-chart][data-series='2']")
    legend = page.locator("[data-view=compare-legend] li")
    assert legend.count() == 2
    texts = {legend.nth(i).get_attribute("data-run"): legend.nth(i).text_content() or "" for i in range(2)}
    assert texts[first].startswith("LeNet · ReLU · max · Adam 0.001")
    assert texts[second].startswith("LeNet · Sigmoid · max · SGD 0.1")
    colours = page.eval_on_selector_all("[data-view=compare-legend] .swatch", "s => s.map(e => e.style.background)")
    assert len(set(colours)) == 2
    page.select_option("[data-control=metric]", "test_accuracy")
    page.select_option("[data-control=axis]", "epoch")
    page.wait_for_function("() => document.querySelector('[data-view=compare-legend]').textContent.includes('test accuracy')")
    assert page.get_attribute("[data-view=compare-chart]", "data-series") == "2"
    for run in (first, second):
        shown = page.text_content(f"[data-view=compare-legend] li[data-run='{run}'] .value") or ""
        assert f"{to_fixed(served(api, run)['test_accuracy'] * 100, 1)} %" in shown  # curves.js: (v * 100).toFixed(1)
    shoot(page, "training-compare")

    # The runs live on the server: a reload lists them, still compared (the URL says which).
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    page.wait_for_selector("[data-view=compare-chart][data-series='2']")
    assert page.is_checked(f"[data-view=runs] tr[data-run='{first}'] [data-control=compare]")
    # The run on show gives its settings back to the (reloaded, default) form, to change one choice.
    assert page.get_attribute(LIVE, "data-run") == second
    assert page.input_value("#lab-activation") == "relu"
    page.click(f"{LIVE} [data-action=reuse]")
    assert (page.input_value("#lab-activation"), page.input_value("#lab-optimizer")) == ("sigmoid", "sgd")
    assert page.input_value("#lab-learning_rate") == "0.1" and page.input_value("#lab-length") == "300"
    assert page.is_checked("input[name=unit][value=steps]") and page.input_value("#lab-train_size") == "1000"
    # A tablet held upright: one column, nothing wider than the screen (the table scrolls in its box).
    page.set_viewport_size({"width": 820, "height": 1100})
    page.wait_for_function("() => document.querySelector('[data-view=compare-chart]').getBoundingClientRect().width <= 800")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "training-tablet")
    # Showing the first run again brings back its curves from the served history.
    page.click(f"[data-view=runs] tr[data-run='{first}'] [data-action=show]")
    page.wait_for_selector(f"{LIVE}[data-run='{first}'][data-status=done]")
    steps = [e for e in served(api, first)["history"] if e["type"] == "step"]
    page.wait_for_selector(f"[data-view=loss-chart][data-points='{len(steps)}']")


def test_cancel_stops_a_long_run_and_a_full_queue_is_explained(
        page: Page, live_server: str, api: httpx.Client, console: Console) -> None:
    console.allow(r"status of 429")  # the refused start below
    open_lab(page, live_server)
    long_run = start(page, train_size=6000, batch_size=16, steps=20_000)
    page.wait_for_selector(f"{LIVE}[data-status=running] [data-view=loss-chart]:not([data-points='0'])",
                           timeout=TRAINING_MS)
    queued: list[str] = []
    try:
        # Fill the queue through the API; the page's next start is refused with the server's sentence.
        limit = api.get("/api/training/options").json()["limits"]["max_queued"]
        for _ in range(limit):
            answer = api.post("/api/training/runs", json={"steps": 10, "batch_size": 8, "train_size": 80})
            assert answer.status_code == 202, answer.text
            queued.append(answer.json()["id"])
        page.click("[data-action=start]")
        page.wait_for_selector("[data-view=form-error]:not([hidden])")
        assert "busy" in (page.text_content("[data-view=form-error]") or "")
        assert page.get_attribute(LIVE, "data-run") == long_run
    finally:
        for run in queued:
            api.delete(f"/api/training/runs/{run}")

    page.click(f"{LIVE} [data-action=cancel]")
    wait_status(page, "cancelled", long_run)
    body = served(api, long_run)
    assert body["status"] == "cancelled" and body["model"] is None
    assert body["step"] < body["total_steps"]
    assert (page.text_content(f"{LIVE} [data-view=run-status]") or "").startswith("Cancelled")
    assert page.is_hidden(f"{LIVE} [data-action=cancel]") and page.is_hidden(f"{LIVE} [data-view=inspect]")
    page.wait_for_selector(f"[data-view=runs] tr[data-run='{long_run}'][data-status=cancelled]")
    shoot(page, "training-cancelled")


@pytest.mark.parametrize(("settings", "field", "words"), [
    ({"batch_size": 5000}, "batch_size", "less than or equal to 1024"),
    ({"train_size": 100, "batch_size": 200}, "batch_size", "more than the 100 images"),
    ({"steps": 50_000}, "length", "at most 20,000"),
])
def test_refused_settings_are_explained_beside_their_fields(
        page: Page, live_server: str, console: Console, settings: dict[str, Any], field: str, words: str) -> None:
    console.allow(r"status of 422")
    open_lab(page, live_server)
    shown = page.get_attribute(LIVE, "data-run")
    fill(page, **settings)
    page.click("[data-action=start]")
    error = page.wait_for_selector(f"[data-field={field}] .field-error:not([hidden])")
    assert error is not None and words in (error.text_content() or "")
    assert words in (page.text_content("[data-view=form-error]") or "")
    control = "#lab-length" if field == "length" else f"#lab-{field}"
    assert page.get_attribute(control, "aria-invalid") == "true"
    assert page.get_attribute(LIVE, "data-run") == shown, "a refused start shows no new run"
    shoot(page, f"training-refused-{field}", "[data-view=form]")
