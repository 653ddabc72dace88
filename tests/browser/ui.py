"""Driving the page the way a person does, and reading back what it shows."""

import functools
import os
import re
import tempfile
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from playwright.sync_api import Page

ARTIFACTS = Path(__file__).parent / "artifacts"  # the default; CONVSCOPE_TEST_ARTIFACTS chooses another


@functools.cache
def artifacts() -> Path:
    """The folder screenshots go to: $CONVSCOPE_TEST_ARTIFACTS or tests/browser/artifacts, or, where that
    cannot be written (a read-only checkout), one under the system's temp dir."""
    for folder in (Path(os.environ.get("CONVSCOPE_TEST_ARTIFACTS") or ARTIFACTS),
                   Path(tempfile.gettempdir()) / "convscope-test-artifacts"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()  # writable, not only present
            return folder
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix="convscope-test-artifacts-"))


@dataclass
class Console:
    """Console errors and uncaught exceptions of one page, and the ones a test expects."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


def open_page(page: Page, base_url: str, query: str = "") -> Page:
    """Load the app (with an optional `?model=…&sample=…&layer=…`) and wait until it has booted."""
    page.goto(f"{base_url}/{query}")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.wait_for_selector("[data-view=prediction] .verdict")
    return page


def shoot(page: Page, name: str, selector: str | None = None) -> None:
    """Save a screenshot of the page, or of one view, as a test artifact."""
    path = artifacts() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    if selector:
        page.locator(selector).screenshot(path=path)
    else:
        page.screenshot(path=path, full_page=True)


def assert_shown(text: str, value: float, digits: int) -> None:
    """`text`, the page's `value.toPrecision(digits)`, is `value` rounded to `digits` significant digits:
    within half a unit of the last digit shown (compared exactly, as fractions)."""
    half_unit = Fraction(10) ** (Decimal(value).adjusted() - digits + 1) / 2 if value else Fraction(0)
    assert abs(Fraction(text.strip()) - Fraction(value)) <= half_unit, f"{text!r} is not {value!r} to {digits} digits"


def to_fixed(value: float, digits: int) -> str:
    """JavaScript's `value.toFixed(digits)`: the exact binary value rounded half away from zero (Python's
    format rounds half to even, so the two differ on a tie such as 81.25 → "81.3" against "81.2")."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def mark_result(page: Page) -> None:
    """Tag the verdict on show, so that `new_verdict` can tell the next result from this one."""
    page.eval_on_selector("[data-view=prediction] .verdict", "el => el.dataset.stale = ''")


def new_verdict(page: Page) -> str:
    """Wait for a result newer than the last `mark_result` and return its top class."""
    verdict = page.wait_for_selector("[data-view=prediction] .verdict:not([data-stale])")
    assert verdict is not None
    return verdict.get_attribute("data-prediction") or ""


def query(page: Page) -> dict[str, str]:
    """The page URL's query parameters."""
    return dict(parse_qsl(urlsplit(page.url).query))


# For every canvas under `selector`: does it show more than one colour? (A canvas never drawn, or
# drawn from constant values, reads back as one colour.)
VARIED = """selector => [...document.querySelectorAll(selector)].map(canvas => {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 4; i < data.length; i += 4) {
    if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2] || data[i + 3] !== data[3]) return true;
  }
  return false;
})"""


def varied(page: Page, selector: str) -> list[bool]:
    result: Any = page.evaluate(VARIED, selector)
    return [bool(v) for v in result]


# The overview draws a layer's channels stacked in one canvas, parted by rows left transparent. For
# every canvas under `selector`: its layer, its `data-channels`, its bitmap height, and its bands of
# opaque rows (one per channel, top to bottom) as [first row, end row, shows more than one colour].
COLUMNS = """selector => [...document.querySelectorAll(selector)].map(canvas => {
  const { width, height } = canvas;
  const { data } = canvas.getContext('2d').getImageData(0, 0, width, height);
  const opaque = y => { for (let x = 0; x < width; x++) if (data[4 * (y * width + x) + 3]) return true; return false; };
  const bands = [];
  for (let y = 0, start = -1; y <= height; y++) {
    const inside = y < height && opaque(y);
    if (inside && start < 0) start = y;
    if (!inside && start >= 0) { bands.push([start, y]); start = -1; }
  }
  return {
    layer: canvas.closest('[data-layer]').dataset.layer,
    channels: Number(canvas.dataset.channels),
    height,
    bands: bands.map(([from, to]) => {
      let varied = false;
      for (let i = 4 * from * width; i < 4 * to * width && !varied; i += 4) {
        for (let k = 0; k < 4; k++) varied ||= data[i + k] !== data[4 * from * width + k];
      }
      return [from, to, varied];
    }),
  };
})"""


def overview_columns(page: Page, selector: str = "[data-view=overview] figure[data-layer] canvas") -> list[dict[str, Any]]:
    result: Any = page.evaluate(COLUMNS, selector)
    return list(result)
