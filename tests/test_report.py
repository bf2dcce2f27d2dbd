"""`miner report`: the HTML report of an analysed sample study is one self-contained file that
renders in headless Chromium with every chart drawn and no script error; a section without data
says so. Screenshots land in test-output/ for people to look at."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import REPO
from miner import repository_reporting
from miner.cli import app
from miner.report import render_report
from reporting_study import STUDY, analysed_study

OUTPUT = REPO / "test-output"
CHARTS = ("chart-prevalence", "chart-ratings", "chart-correlations", "chart-timeline")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1366,900")


@pytest.fixture(scope="module")
def report_path(database_url, settings, embedder, miner_env) -> Path:
    analysed_study(database_url, settings, embedder)
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / "report.html"
    result = CliRunner().invoke(app, ["report", "--study", STUDY, "--out", str(path)], env=miner_env)
    assert result.exit_code == 0, result.output
    return path


def test_report_is_one_self_contained_file(report_path):
    html = report_path.read_text()
    assert html.count("Plotly.newPlot") == len(CHARTS)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)  # plotly.js itself is inlined
    assert not re.search(r"<script[^>]+src=", html), "scripts must be inlined"
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", markup), "no external resource"
    assert "@import" not in markup and "url(http" not in markup


def test_report_has_every_section_and_a_card_per_theme(report_path, conn):
    html = report_path.read_text()
    for section in ("differences", "prevalence", "ratings", "timeline", "themes", "quality", "runs"):
        assert f'id="{section}"' in html
    themes = repository_reporting.read_view(conn, "themes", STUDY)
    cards = html.split('<article class="card"')[1:]
    assert len(cards) == len(themes)
    shown: dict[int, set[str]] = {}
    for row in repository_reporting.read_view(conn, "theme_evidence", STUDY):
        if not row["suppressed"]:
            shown.setdefault(row["theme_id"], set()).add(row["answer"].casefold())
    for theme, card in zip(themes, cards):
        assert card.count("<blockquote>") == min(3, len(shown.get(theme["theme_id"], ()))), theme
    assert "report-test-llm" in html  # the job's LLM cost table
    assert "Not available yet" not in html  # every section had data


def test_sections_without_data_say_not_available_yet(conn, report_path):
    data = repository_reporting.read_report_data(conn, STUDY)
    bare = replace(data, tables={**data.tables, "model_ratings": [], "dimension_correlations": None,
                                 "theme_history": [], "quality_exclusions": []})
    html = render_report(bare)
    assert html.count("Not available yet") == 4
    assert "chart-ratings" not in html and "chart-timeline" not in html and "chart-prevalence" in html


def test_report_of_a_study_without_a_published_job_fails_clearly(miner_env, tmp_path):
    result = CliRunner().invoke(app, ["report", "--study", "no-such-study", "--out", str(tmp_path / "r.html")],
                                env=miner_env)
    assert result.exit_code == 2 and "no published job" in result.output


def _chromium():
    """Selenium driving Debian's chromium + chromium-driver (.ci/run installs them)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("MINER_REQUIRE_BROWSER"):
            pytest.fail("chromium / chromedriver missing: apt-get install chromium chromium-driver")
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


CHART_STATE = """
return Array.from(document.querySelectorAll('.plotly-graph-div')).map(gd => ({
  id: gd.id,
  svg: gd.querySelectorAll('.main-svg').length,
  traces: (gd.data || []).length,
  drawn: gd.querySelectorAll('g.hm image, g.trace path.point, g.trace path.js-line').length,
  width: gd.getBoundingClientRect().width,
  height: gd.getBoundingClientRect().height,
}));"""


def test_report_renders_every_chart_in_headless_chromium(report_path, conn):
    suppressed_cells = sum(c["suppressed"] for c in repository_reporting.read_view(conn, "theme_by_model", STUDY))
    driver = _chromium()
    try:
        driver.get(report_path.resolve().as_uri())
        driver.implicitly_wait(2)
        charts = {c["id"]: c for c in driver.execute_script(CHART_STATE)}
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        driver.save_screenshot(str(OUTPUT / "report.png"))
        height = driver.execute_script("return document.documentElement.scrollHeight")
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": 1366, "height": min(height, 9000),
                                                    "scale": 1}})
        import base64

        (OUTPUT / "report-full.png").write_bytes(base64.b64decode(shot["data"]))
        quotes_visible = driver.execute_script("return document.querySelectorAll('.card blockquote').length")
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
        suppressed_drawn = driver.execute_script(
            "return Array.from(document.querySelectorAll('#chart-prevalence text'))"
            ".filter(t => t.textContent.trim() === 'suppressed').length")
    finally:
        driver.quit()
    assert not errors, errors
    assert set(charts) == set(CHARTS)
    for chart in charts.values():
        assert chart["svg"] > 0 and chart["traces"] > 0 and chart["drawn"] > 0, chart
        # Readable at laptop width: no chart squeezed narrower than a phone or taller than a screenful of rows.
        assert chart["width"] >= 400 and 200 <= chart["height"] <= 2000, chart
    assert quotes_visible > 0
    assert suppressed_drawn == suppressed_cells  # suppressed cells are drawn, labelled, not dropped
    assert not [url for url in fetched if not url.startswith(("file:", "data:", "blob:"))], fetched  # offline
    assert (OUTPUT / "report-full.png").stat().st_size > 10_000
