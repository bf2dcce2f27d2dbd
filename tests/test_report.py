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


def _leaf_values(html: str) -> dict[tuple[int, str], str]:
    """(theme id, model) → the percentage the explorer's theme leaf shows."""
    explorer = html.split('id="theme-tree"')[1].split("</ul>\n  <p class=\"legend-line\">")[0]
    shown = {}
    for theme_id, leaf in re.findall(r'theme #(\d+).*?<div class="bars">(.*?)</div>', explorer, flags=re.S):
        for model, value in re.findall(r'</span>([^<]+)</span>\s*<span class="track">.*?<span class="val">([^<]*)<',
                                       leaf, flags=re.S):
            shown[(int(theme_id), model.strip())] = value.strip()
    return shown


def _card_values(html: str) -> dict[tuple[int, str], str]:
    """(theme id, model) → the percentage the theme card shows."""
    shown = {}
    for theme_id, card in re.findall(r'<article class="card" id="theme-(\d+)">(.*?)</article>', html, flags=re.S):
        bars = card.split('<div class="bars">')[1].split("</div>")[0]
        for model, value in re.findall(r'</span>([^<]+)</span>\s*<span class="track">.*?<span class="val">([^<]*)<',
                                       bars, flags=re.S):
            shown[(int(theme_id), model.strip())] = value.strip()
    return shown


def test_a_theme_and_model_shows_one_prevalence_in_the_explorer_and_the_cards(report_path, conn):
    """One number per theme × model cell, from theme_by_model's definition (share of the model's
    interviews with an answer in the theme, low-quality interviews left out), in the report and in
    reporting.theme_tree_by_model alike, for a study whose low-quality interviews make the tree's
    old count (all interviews) differ."""
    [study] = repository_reporting.read_view(conn, "studies", STUDY)
    low_quality_themed = conn.execute(
        """SELECT count(DISTINCT u.interview_id) FROM quality_verdicts q JOIN units u USING (interview_id)
           JOIN job_units j ON j.job_id = q.job_id AND j.unit_id = u.unit_id
           JOIN assignments a ON a.job_id = j.job_id AND a.unit_id = j.unit_id AND a.theme_id >= 0
           WHERE q.job_id = %s AND q.low_quality""", (study["job_id"],)).fetchone()[0]
    assert low_quality_themed > 0  # the sample study plants low-quality interviews with themed answers
    cells = {(c["theme_id"], c["session_model"]): c["prevalence"]
             for c in repository_reporting.read_view(conn, "theme_by_model", STUDY) if not c["suppressed"]}
    tree = {(c["theme_id"], c["session_model"]): c["prevalence"]
            for c in repository_reporting.read_view(conn, "theme_tree_by_model", STUDY)
            if c["kind"] == "theme" and not c["suppressed"]}
    assert tree == cells
    html = report_path.read_text()
    leaves, cards = _leaf_values(html), _card_values(html)
    assert leaves and set(leaves) <= set(cards)
    assert {key: cards[key] for key in leaves} == leaves
    assert {key: f"{cells[key]:.0%}" for key in leaves} == leaves
    assert "low-quality interviews left out" in html.split('id="explorer"')[1].split("</section>")[0]


def test_sections_without_data_say_not_available_yet(conn, report_path):
    data = repository_reporting.read_report_data(conn, STUDY)
    bare = replace(data, tables={**data.tables, "model_ratings": [], "dimension_correlations": None,
                                 "theme_history": [], "quality_exclusions": []})
    html = render_report(bare)
    assert html.count("Not available yet") == 4
    assert "chart-ratings" not in html and "chart-timeline" not in html and "chart-prevalence" in html


def test_the_llm_calls_figure_counts_calls_made_not_calls_declined(conn, report_path):
    """A ledger row of calls the budget or a dead endpoint declined (no request sent) is not a call in
    the report's figure; the figure says how many were not made."""
    data = repository_reporting.read_report_data(conn, STUDY)
    job_id = data.tables["studies"][0]["job_id"]
    row = {"job_id": job_id, "study": STUDY, "purpose": "label", "model": "m", "calls": 7, "requests": 3,
           "cache_hits": 1, "prompt_tokens": 90, "completion_tokens": 10, "billed_tokens": 100, "cached_tokens": 20,
           "ok": 3, "invalid": 0, "failed": 0, "skipped": 4, "latency_ms": 1500}
    html = render_report(replace(data, tables={**data.tables, "llm_cost": [row]}))
    figure = re.search(r'<div class="kpi"><b>([^<]*)</b><span>LLM calls, ([^<]*)</span>', html)
    assert figure is not None, "the LLM calls figure is missing"
    assert figure.group(1) == "3"
    assert figure.group(2) == "1 from cache; 4 not made (budget spent or endpoint down)"


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


# --- the theme explorer (issue 15) ------------------------------------------------------------

def _visible_leaves(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#theme-tree li.theme')).filter(li => li.offsetParent !== null)"
        ".map(li => li.textContent.toLowerCase())")


def test_explorer_expands_searches_and_opens_an_interview(report_path, conn):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    tree = repository_reporting.read_view(conn, "theme_tree", STUDY)
    driver = _chromium()
    try:
        driver.get(report_path.resolve().as_uri())
        areas = driver.find_elements(By.CSS_SELECTOR, "#theme-tree > li > details")
        assert len(areas) == sum(r["level"] == 1 for r in tree)
        # Keyboard: focus the first area's summary and press Enter; its children show.
        summary = areas[0].find_element(By.TAG_NAME, "summary")
        driver.execute_script("arguments[0].focus()", summary)
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        assert areas[0].get_attribute("open") is not None
        assert any(c.is_displayed() for c in areas[0].find_elements(By.CSS_SELECTOR, ":scope > ul > li"))
        # Search a word from a quote: only themes holding it stay, opened, with the word marked.
        quote = driver.execute_script("return document.querySelector('#theme-tree blockquote').firstChild.textContent")
        word = max(re.findall(r"[a-zA-Z]{5,}", quote), key=len).lower()
        box = driver.find_element(By.ID, "tree-search")
        assert driver.find_element(By.CSS_SELECTOR, "label[for=tree-search]").text
        box.send_keys(word, Keys.ENTER)
        status = driver.find_element(By.ID, "tree-status").text
        leaves = _visible_leaves(driver)
        assert leaves and all(word in text for text in leaves), (word, status)
        assert status.startswith(str(len(leaves)))
        assert driver.find_elements(By.CSS_SELECTOR, "#theme-tree mark")
        driver.execute_script("document.getElementById('explorer').scrollIntoView()")
        driver.save_screenshot(str(OUTPUT / "report-tree.png"))
        # Follow a visible quote to its interview: the dialog shows the question and answer turns.
        button = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button.open-interview") if b.is_displayed())
        quoted = button.find_element(By.XPATH, "ancestor::blockquote").text.split("”")[0].strip("“ ").lower()
        button.click()
        dialog = driver.find_element(By.ID, "interview")
        assert dialog.get_attribute("open") is not None
        turns = dialog.find_elements(By.CSS_SELECTOR, ".turns li")
        roles = {t.find_element(By.CLASS_NAME, "who").text for t in turns}
        assert {"Interviewer", "Participant"} <= roles
        highlighted = dialog.find_element(By.CSS_SELECTOR, ".turns li.quoted").text.lower()
        assert quoted.rstrip("…")[:60] in highlighted
        driver.save_screenshot(str(OUTPUT / "report-tree-interview.png"))
        ActionChains(driver).send_keys(Keys.ESCAPE).perform()
        assert dialog.get_attribute("open") is None
        assert driver.switch_to.active_element == button  # focus returns to the quote
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert not errors, errors
    assert (OUTPUT / "report-tree.png").stat().st_size > 10_000
    assert (OUTPUT / "report-tree-interview.png").stat().st_size > 10_000


def _big_study(base, themes: int = 300):
    """The sample study's report data blown up to `themes` themes, with a real tree over them."""
    import numpy as np

    from miner.tree import build_tree, name_nodes, node_stats

    tables = base.tables
    models = tables["studies"][0]["session_models"]
    rng = np.random.default_rng(0)
    vocabulary = ("slow answers", "wrong citations", "friendly tone", "too verbose", "helpful code", "refused task",
                  "made up facts", "great summaries", "confusing steps", "fast replies", "kept context", "formatting")
    ids = list(range(themes))
    topic = rng.integers(0, len(vocabulary), size=themes)
    centroids = np.eye(len(vocabulary))[topic] + 0.3 * rng.normal(size=(themes, len(vocabulary)))
    sizes = [int(s) for s in rng.integers(20, 200, size=themes)]
    # Units: per theme, answers spread over the models and interviews.
    unit_theme, unit_interview, unit_model = [], [], []
    for t, size in zip(ids, sizes):
        for i in range(size):
            unit_theme.append(t)
            unit_interview.append(f"int{(t * 7 + i) % 4000:05d}")
            unit_model.append(models[(t + i) % len(models)])
    nodes = name_nodes(build_tree(ids, centroids, sizes),
                       {t: [vocabulary[topic[t]] + f" theme{t}"] * 3 for t in ids})
    stats = node_stats(nodes, unit_theme, unit_interview, unit_model)
    overall = {s.node_id: s for s in stats if s.session_model is None}
    label = {t: f"{vocabulary[topic[t]]} #{t}".capitalize() for t in ids}
    tree = [{"node_id": n.node_id, "parent_id": n.parent_id, "level": n.level, "kind": n.kind, "theme_id": n.theme_id,
             "label": label[n.theme_id] if n.kind == "theme" else n.label, "keywords": list(n.keywords),
             "labeller": n.labeller, "stance": None, "answers": overall[n.node_id].answers,
             "interviews": overall[n.node_id].interviews, "themes": len(n.theme_ids), "position": p,
             "suppressed": False} for p, n in enumerate(nodes)]
    position = {r["node_id"]: r["position"] for r in tree}
    by_model = [{"node_id": s.node_id, "session_model": s.session_model, "answers": s.answers,
                 "interviews": s.interviews, "share": s.share, "prevalence": s.prevalence,
                 "position": position[s.node_id], "suppressed": 0 < s.interviews < 5}
                for s in stats if s.session_model is not None]
    theme_rows = [{**tables["themes"][0], "theme_id": t, "label": label[t], "answers": sizes[t]} for t in ids]
    cells = [{**tables["theme_by_model"][0], "theme_id": t, "label": label[t], "session_model": m} for t in ids
             for m in models]
    evidence, transcripts = [], {}
    for t in ids:
        for rank in (1, 2, 3):
            interview = f"big{t:03d}{rank}"
            evidence.append({"theme_id": t, "label": label[t], "session_model": models[rank % len(models)],
                             "quote_rank": rank, "interview_id": interview, "unit_id": f"{interview}:0",
                             "question": "What did you think?", "suppressed": False,
                             "answer": f"Answer {rank} on {vocabulary[topic[t]]} in theme {t}, mostly fine."})
            transcripts[interview] = {"session_model": models[rank % len(models)], "session": [
                {"role": "user", "content": "help me"}, {"role": "assistant", "content": "sure"}],
                "interview": [{"role": "assistant", "content": "What did you think?"},
                              {"role": "user", "content": evidence[-1]["answer"]}]}
    big_tables = {**tables, "themes": theme_rows, "theme_by_model": cells, "theme_evidence": evidence,
                  "theme_tree": tree, "theme_tree_by_model": by_model, "theme_history": [],
                  "studies": [{**tables["studies"][0], "themes": themes}]}
    return replace(base, tables=big_tables, transcripts=transcripts)


def test_explorer_with_300_themes_renders_and_searches_without_freezing(report_path, conn):
    import json
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = _big_study(repository_reporting.read_report_data(conn, STUDY, evidence_per_cell=6))
    started = time.perf_counter()
    html = render_report(data)
    render_seconds = time.perf_counter() - started
    path = OUTPUT / "report-300-themes.html"
    path.write_text(html)
    driver = _chromium()
    try:
        driver.get(path.resolve().as_uri())
        load = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {dom_ready_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd,"
            " explorer_init_ms: Number(document.getElementById('theme-tree').dataset.initMs)};")
        leaves = driver.execute_script("return document.querySelectorAll('#theme-tree li.theme').length")
        box = driver.find_element(By.ID, "tree-search")
        box.send_keys("citations")
        search_ms = driver.execute_script(
            "const t = performance.now(); arguments[0].dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));"
            "return performance.now() - t;", box)
        matches = len(_visible_leaves(driver))
        expand_ms = driver.execute_script(
            "const t = performance.now(); document.querySelectorAll('#theme-tree details').forEach(d => d.open = true);"
            "document.body.offsetHeight; return performance.now() - t;")
        box.clear()
        box.send_keys(Keys.ENTER)
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    timing = {"themes": leaves, "html_mb": round(len(html) / 1e6, 2), "render_seconds": round(render_seconds, 2),
              **load, "search_ms": round(search_ms, 1), "expand_all_ms": round(expand_ms, 1), "matches": matches}
    (OUTPUT / "tree-timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    print(timing)
    assert not errors, errors
    assert leaves == 300 and 0 < matches < 300
    # "Without freezing": the explorer's own work (wiring 300 themes, a search, opening every node)
    # stays interactive. Page load is recorded, not asserted: it is mostly plotly.js and the charts,
    # and swings with the machine's load (8 s to 70 s on a shared 2-core machine).
    assert timing["explorer_init_ms"] < 2_000 and search_ms < 2_000 and expand_ms < 5_000, timing
