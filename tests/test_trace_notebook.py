"""`bp.trace(...)` in Jupyter: a real kernel runs a notebook (nbclient), and its output is the
page (an <iframe srcdoc>, self-contained) and, printed, the text trace.

The rich output is then opened in headless Chromium as a notebook front end would show it,
and the page inside the iframe is clicked through.
"""

from __future__ import annotations

import html
import json
import re

import pytest

import betaprop as bp
from betaprop.explain.trace import as_dict, trace
from tests.test_trace_page import browser, no_errors  # noqa: F401

CELLS = [
    "import betaprop as bp\n"
    "net = bp.Network([2, 3, 2], seed=0)\n"
    "view = bp.trace(net, [1.0, 0.5], [1.0, 0.0], learning_rate=0.5)\n"
    "view",
    "print(view)",
]


def run_notebook(cells: list[str]):  # type: ignore[no-untyped-def]
    """A notebook of these code cells, executed by a real Python kernel (nbclient)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3").execute()
    return notebook


@pytest.fixture(scope="module")
def executed():
    return run_notebook(CELLS)


def test_the_notebook_shows_the_page_and_prints_the_text(executed):
    shown, printed = executed.cells[0].outputs, executed.cells[1].outputs
    data = shown[0]["data"]
    assert "<betaprop trace: sizes [2, 3, 2]" in data["text/plain"]
    frame = data["text/html"]
    assert frame.startswith("<iframe srcdoc=")
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    start = page.index('<script type="application/json" id="trace-data">')
    embedded = json.loads(page[page.index(">", start) + 1 : page.index("</script>", start)])
    expected = as_dict(trace(bp.Network([2, 3, 2], seed=0), [1.0, 0.5], [1.0, 0.0], None, 0.5))
    assert embedded == json.loads(json.dumps(expected))  # the engine's numbers, in the kernel
    for outside in ("http://", "https://", "<link", " src="):
        assert outside not in page.replace("http://www.w3.org/2000/svg", "")
    text = "".join(o.get("text", "") for o in printed)
    assert "Step 6: one gradient step, learning rate eta = 0.5" in text and "agree" in text


def test_the_displayed_page_works_inside_its_iframe(executed, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    frame = executed.cells[0].outputs[0]["data"]["text/html"]
    wrapper = tmp_path / "notebook-output.html"
    wrapper.write_text(f"<!DOCTYPE html><html><body>{frame}</body></html>", encoding="utf-8")
    browser.get(wrapper.as_uri())
    browser.get_log("browser")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    try:
        stages = browser.find_elements(By.CSS_SELECTOR, "#stages li")
        assert len(stages) == 10  # 0, 2·1, 2·2, 3, 4·1, 5·1, 5·2, 6·1, 6·2, check
        while browser.find_element(By.ID, "next").is_enabled():
            browser.find_element(By.ID, "next").click()
        assert browser.find_element(By.ID, "verdict").get_attribute("data-agrees") == "true"
    finally:
        browser.switch_to.default_content()
    no_errors(browser)


def test_bp_trace_options():
    view = bp.trace(bp.Network([3, 4, 2], seed=1), [1, 0, 0], [0, 1], steps=3, lang="ru")
    assert len(view.traces) == 3 and "Шаг 6" in str(view) and "Шаги обучения" in str(view)
    assert '"steps"' in view.html
    with pytest.raises(ValueError, match=r"lang must be one of \['en', 'ru'\], got 'de'"):
        bp.trace(bp.Network([3, 4, 2], seed=1), [1, 0, 0], [0, 1], lang="de")
