"""Browser fixtures: one headless Debian Chromium per session, one fresh page per test.

Every page records console errors and uncaught exceptions; a test whose page logged any fails
(tests that provoke an expected one, such as the 4xx of a bad upload, declare it with
`console.allow`). Screenshots go to tests/browser/artifacts/ (git-ignored), or the folder named by
CONVSCOPE_TEST_ARTIFACTS; from a read-only checkout, to one under the system's temp dir (ui.artifacts).
"""

import contextlib
from collections.abc import Generator, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from tests.browser.ui import Console, artifacts
from tests.conftest import serving

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it with apt-get if missing
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    for old in artifacts().glob("*.png"):  # the screenshots of this run only (the folder may be the user's own)
        with contextlib.suppress(OSError):
            old.unlink()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            console.errors.append(f"console: {message.text} ({where})")

    def on_error(error: Error) -> None:
        console.errors.append(f"uncaught: {error.message}\n{error.stack or ''}")

    page.on("console", on_console)
    page.on("pageerror", on_error)
    try:
        yield page
    finally:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Fail the test itself (not its teardown) if its page logged an error nobody expected."""
    console = getattr(item, "funcargs", {}).get("console")
    try:
        result = yield
    except BaseException:
        if isinstance(console, Console) and console.errors:
            item.add_report_section("call", "page console", "\n".join(console.errors))
        raise
    if isinstance(console, Console) and console.unexpected():
        pytest.fail("the page logged errors:\n" + "\n".join(console.unexpected()), pytrace=False)
    return result


@pytest.fixture(scope="session")
def api(live_server: str) -> Iterator[httpx.Client]:
    """The same server's REST API, for the answers the page should show."""
    with httpx.Client(base_url=live_server, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def layers(api: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    """Each built-in model's layer list, as GET /api/models/{id} serves it."""
    ids = [m["id"] for m in api.get("/api/models").json()["models"]]
    return {i: api.get(f"/api/models/{i}").json()["layers"] for i in ids}


@pytest.fixture(scope="session")
def resnet_server() -> Iterator[str]:
    """A server with the built-ins and the ResNet-18 example's models file, as
    `convscope serve --models-file examples/resnet18.toml` runs it."""
    with serving({"CONVSCOPE_MODELS_FILE": "examples/resnet18.toml"}) as url:
        yield url


@pytest.fixture(scope="session")
def resnet_api(resnet_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=resnet_server, timeout=60) as client:
        yield client
