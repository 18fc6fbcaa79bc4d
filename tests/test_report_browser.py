"""The three kinds of report opened in a real browser: headless Chromium (Debian's `chromium`).

Driven with the Python `playwright` package pointed at that executable (never `playwright install`,
which downloads a browser), rather than raw DevTools-protocol messages: playwright already turns
the protocol into the events this test needs (console messages, page errors, every request,
dialogs), waits for loads, clicks and types like a user, and takes screenshots; doing the same over
a websocket would be a hand-kept client for a protocol that changes with each Chromium. The cost is
a test-only dependency with a bundled driver; pip installs it, and the browser is the system's.

Skips, saying why, where no browser can be had (no chromium executable, or playwright missing).
.ci/run installs chromium with apt-get first.
"""

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import dltrain
from dltrain.pages.page import fmt
from tests.test_report import HOSTILE, make_hostile, make_runs, make_search

CHROMIUM = os.environ.get("DLTRAIN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install Debian's chromium (apt-get install -y chromium), "
                                                         "or set DLTRAIN_CHROMIUM to a Chromium executable")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as p:
        # A persistent context is how playwright takes a fresh --user-data-dir.
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS[1:], headless=True,
                                                       viewport={"width": 1280, "height": 900})
        yield context
        context.close()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    runs = make_runs(root / "runs", 3)
    search = make_search(root / "search")
    dltrain.report(search)
    hostile = make_hostile(root / "hostile")
    dltrain.report(hostile)
    dltrain.report(hostile.parent)
    return {"run": runs[0], "runs": root / "runs", "search": search, "hostile": hostile, "report_runs": dltrain.report(root / "runs")}


class Opened:
    """A page opened from a file, with every console error, page error, dialog and request it caused."""

    def __init__(self, context, path: Path):
        self.page = context.new_page()
        self.url = path.resolve().as_uri()
        self.allowed = {self.url}  # the page itself, and pages the test opens from it
        self.problems, self.requests = [], []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")

    def text(self) -> str:
        return self.page.inner_text("body")

    def check(self) -> None:
        """No console error, no script error, no dialog, nothing fetched but the page itself (data: images are not fetched)."""
        assert self.problems == []
        assert [u for u in self.requests if u not in self.allowed and not u.startswith("data:")] == []
        shot = self.page.screenshot(full_page=True)
        assert not_blank(shot)
        self.page.close()


def not_blank(png: bytes) -> bool:
    """A screenshot with real content: many colors and both light and dark pixels."""
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    colors = len({tuple(p) for p in (pixels[::7, ::7] * 255).astype(int).reshape(-1, 3).tolist()})
    return colors > 50 and pixels.min() < 0.2 and pixels.max() > 0.9


def column(page, table_id: str, header: str) -> list[str]:
    headers = page.eval_on_selector_all(f"#{table_id} thead th", "hs => hs.map(h => h.textContent)")
    i = headers.index(header)
    return page.eval_on_selector_all(f"#{table_id} tbody tr", f"rows => rows.map(r => r.cells[{i}].getAttribute('data-v') ?? r.cells[{i}].textContent)")


def test_run_report_in_the_browser(browser, folders):
    run = folders["run"]
    opened = Opened(browser, run / "report.html")
    text = opened.text()
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("train", "dev"):
        assert fmt(metrics[split]["accuracy"]) in text and fmt(metrics[split]["cost"]) in text
    assert metrics["diagnosis"]["problem"] in text and f"dltrain reproduce {run}" in text
    # Every figure has been laid out with a size (inline SVG and data: PNG decoded).
    sizes = opened.page.eval_on_selector_all("figure svg, figure img", "els => els.map(e => e.getBoundingClientRect().width)")
    assert len(sizes) == 3 and min(sizes) > 200
    assert opened.page.eval_on_selector_all("figure img", "els => els.every(e => e.complete && e.naturalWidth > 0)")
    opened.check()


def test_runs_folder_report_sorts_filters_and_draws(browser, folders):
    opened = Opened(browser, folders["report_runs"])
    page = opened.page
    assert page.locator("#overlay polyline").count() == 6  # 3 runs ticked (train and dev cost each)
    dev = column(page, "runs", "dev_accuracy")
    page.click("#runs th:has-text('dev_accuracy')")
    assert column(page, "runs", "dev_accuracy") == sorted(dev, key=float)
    page.click("#runs th:has-text('dev_accuracy')")
    assert column(page, "runs", "dev_accuracy") == sorted(dev, key=float, reverse=True)
    page.click("#runs th:has-text('run')")
    names = column(page, "runs", "run")
    assert names == sorted(names)
    page.locator("input.pick").first.uncheck()
    assert page.locator("#overlay polyline").count() == 4
    page.fill("input.filter", names[1])
    assert page.locator("#runs tbody tr:visible").count() == 1
    opened.allowed.add((folders["runs"] / names[1] / "report.html").resolve().as_uri())
    page.click(f"#runs a:has-text('{names[1]}')")  # the link opens that run's own report
    page.wait_for_load_state("load")
    assert page.url.endswith(f"/{names[1]}/report.html") and "Bias and variance" in page.inner_text("body")
    opened.check()


def test_search_report_in_the_browser(browser, folders):
    search = folders["search"]
    opened = Opened(browser, search / "report.html")
    text = opened.text()
    records = [json.loads(p.read_text()) for p in sorted((search / "trials").glob("trial-*.json"))]
    best = max(records, key=lambda r: (r["metrics"]["dev_accuracy"], -r["metrics"]["dev_cost"]))
    assert f"Best: trial {best['trial']}" in text and fmt(best["metrics"]["dev_accuracy"]) in text
    page = opened.page
    assert column(page, "leaderboard", "rank") == ["1", "2", "3", "4"]
    page.click("#leaderboard th:has-text('trial')")
    assert column(page, "leaderboard", "trial") == ["1", "2", "3", "4"]
    assert page.locator("#scatter svg").count() == 1
    opened.check()


def test_hostile_names_render_as_text(browser, folders):
    # The folder's name is HOSTILE with "/" (impossible in a name) replaced; the run's stop reason is HOSTILE itself.
    for path, shown in ((folders["hostile"] / "report.html", HOSTILE), (folders["hostile"].parent / "report.html", folders["hostile"].name)):
        opened = Opened(browser, path)
        assert shown in opened.text()  # shown as the characters it is made of
        assert opened.page.eval_on_selector_all("body img:not([src^='data:'])", "els => els.length") == 0
        opened.check()  # no alert dialog, no script error, no request for "x"
