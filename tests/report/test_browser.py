"""A real headless Chromium opens reports/index.html and every report with the network blocked:
no request may leave the file system, no request may fail, no JavaScript error, every <img> has
loaded (naturalWidth > 0) and no page shows a Python traceback. Screenshots go to
test-artifacts/ (gitignored) for people to look at.

Debian's chromium (`apt-get install chromium`) driven by Playwright's Python package; Playwright's
own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _fixture_runs import copy_run
from _report_run import REPO, quick_run
from coresweep import studies

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
STUDY_IDS = [s.id for s in studies.all_studies()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return quick_run(tmp_path_factory)


@pytest.fixture(scope="module")
def browser():
    why = None
    if not Path(CHROMIUM).exists():
        why = ("chromium is not installed (`apt-get install -y chromium` on Debian, or "
               "`make browser`): the browser test needs a real headless Chromium")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "the playwright Python package is not installed (pip install playwright)"
    if why:
        if os.environ.get("CORESWEEP_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _open(browser, path: Path, shot: Path, act=None) -> dict:
    """Open a page with the network blocked; ``act(page)`` (clicks, ...) runs before the page is
    read, its result under "act"."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: failed.append(f"{r.url[:100]} {r.failure}"))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")
    acted = act(page) if act else None
    imgs = page.evaluate(
        "Array.from(document.images).map(i => ({src: i.src.slice(0, 60), complete: i.complete,"
        " w: i.naturalWidth}))"
    )
    text = page.inner_text("body")
    links = page.evaluate("Array.from(document.links).map(a => a.href)")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    ctx.close()
    return {"blocked": blocked, "failed": failed, "errors": errors, "imgs": imgs, "text": text,
            "links": links, "act": acted}


def _check(r: dict, name: str) -> None:
    assert not r["blocked"], f"{name}: network requests attempted: {r['blocked'][:5]}"
    assert not r["failed"], f"{name}: failed requests: {r['failed'][:5]}"
    assert not r["errors"], f"{name}: JavaScript errors: {r['errors'][:5]}"
    bad = [i for i in r["imgs"] if not i["complete"] or i["w"] <= 0]
    assert not bad, f"{name}: images not loaded: {bad[:5]}"
    assert "Traceback" not in r["text"], f"{name}: a Python traceback is shown"


def test_index_page(run, browser):
    index = run["index"]
    r = _open(browser, index, ARTIFACTS / "index.png")
    _check(r, "index.html")
    assert run["run_dir"].name in r["text"]
    reports = [h for h in r["links"] if h.endswith(".html")]
    assert len(reports) == len(STUDY_IDS), reports
    for href in r["links"]:
        assert href.startswith("file:"), href
        assert Path(href.removeprefix("file://")).exists(), f"dead link {href}"


@pytest.mark.parametrize("nb", STUDY_IDS)
def test_report_page(run, browser, nb):
    html = run["run_dir"] / f"{nb}.html"
    r = _open(browser, html, ARTIFACTS / f"{nb}.png")
    _check(r, html.name)
    assert len(r["imgs"]) >= 1, f"{nb}: no figure"
    assert all(i["src"].startswith("data:image/") for i in r["imgs"]), r["imgs"]
    # code is hidden: the parameter cell's source does not appear, its values do
    assert "study.validate(" not in r["text"]


def _pick_both(page) -> dict:
    """Tick the two runs: the panel links the comparison made of exactly those."""
    before = page.inner_text("#compare-panel")
    for box in page.query_selector_all("input.pick"):
        box.check()
    link = page.query_selector("#compare-panel a")
    return {"before": before, "href": link.get_attribute("href") if link else None}


def test_comparison_page_and_index_picking(browser, tmp_path, monkeypatch, tiny_int4,
                                           test_model_cache):
    """Two trimmed real runs of this machine, one with a synthetic second fingerprint
    (tests/fixtures/runs/README.md), compared; the page and the index open offline."""
    from coresweep.compare import compare_runs
    from coresweep.report import write_index

    monkeypatch.setenv("CORESWEEP_CACHE", str(test_model_cache))
    reports = tmp_path / "reports"
    runs = [copy_run("quick-t12", reports), copy_run("quick-t124", reports, second_machine=True)]
    page = compare_runs(runs, out=reports / "compare-fixtures")
    r = _open(browser, page, ARTIFACTS / "compare.png")
    _check(r, page.name)
    assert len(r["imgs"]) >= 3 and all(i["src"].startswith("data:image/") for i in r["imgs"])
    assert "Machines: what differs" in r["text"] and "AMD EPYC 7313P" in r["text"]
    r = _open(browser, write_index(reports), ARTIFACTS / "index-compare.png", act=_pick_both)
    _check(r, "index.html with a comparison")
    assert "Tick two or more runs" in r["act"]["before"]
    assert r["act"]["href"] == "compare-fixtures/compare.html"
    for href in r["links"]:
        assert Path(href.removeprefix("file://")).exists(), f"dead link {href}"
