"""The page's exercise mode (`betaprop trace --exercise beta:1,db:2`), in headless Chromium.

The chosen quantities are hidden everywhere on the page (tables, formulas, labels, tooltips)
until the student types them in: a wrong answer is marked and stays hidden, a right one (to
the 4 significant digits the page shows) replaces the input by the number; "Show the answers"
reveals the rest.
"""

from __future__ import annotations

import pytest

from betaprop import cli
from tests.test_trace_page import (  # noqa: F401
    browser,
    check_numbers,
    no_errors,
    open_page,
    stage,
    trace_files,
)


def hidden_values_in_the_dom(driver, name: str, q: int) -> int:
    return driver.execute_script(
        "return document.querySelectorAll(`[data-name='${arguments[0]}'][data-q='${arguments[1]}']"
        "[data-value]`).length",
        name,
        q,
    )


def test_a_right_and_a_wrong_answer_then_the_answers_revealed(browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page, traced = trace_files(tmp_path, "--exercise", "beta:1,db:2")
    open_page(browser, page)
    browser.find_element(By.CSS_SELECTOR, '#stages li[data-stage="step4-1"] button').click()
    inputs = browser.find_elements(By.CSS_SELECTOR, "#table input.answer")
    assert len(inputs) == 3 and hidden_values_in_the_dom(browser, "beta", 1) == 0
    assert "?" in browser.find_element(By.CSS_SELECTOR, "#formulas .numbers").text
    beta = traced["beta"]["1"]

    inputs[0].send_keys(f"{beta[0] * 1.01 + 1e-3:.4g}", Keys.ENTER)  # wrong
    assert "wrong" in inputs[0].get_attribute("class")
    assert "not right to 4 significant digits" in browser.find_element(By.ID, "table").text
    assert hidden_values_in_the_dom(browser, "beta", 1) == 0 and stage(browser) == "step4-1"

    for j in range(3):  # right, to the 4 digits the page shows
        field = browser.find_element(By.CSS_SELECTOR, f'#table input.answer[data-j="{j}"]')
        field.clear()
        field.send_keys(f"{beta[j]:.4g}", Keys.ENTER)
    assert not browser.find_elements(By.CSS_SELECTOR, "#table input.answer")
    assert hidden_values_in_the_dom(browser, "beta", 1) >= 3
    check_numbers(browser, traced)
    assert stage(browser) == "step4-1"  # typing and Enter did not step the page

    browser.find_element(By.CSS_SELECTOR, '#stages li[data-stage="step5-2"] button').click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#table input.answer")) == 2  # db^2
    browser.find_element(By.ID, "reveal").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#table input.answer")
    assert hidden_values_in_the_dom(browser, "db", 2) == 2
    check_numbers(browser, traced)
    no_errors(browser)


@pytest.mark.parametrize(
    "value, message",
    [("beta:3", "the layer must be in 1..2, got 3"), ("W:1", "must be NAME:Q,... with NAME")],
)
def test_bad_exercises_are_refused(capsys, value, message):
    assert cli.main(["trace", "--exercise", value, "--format", "html"]) != 0
    assert message in capsys.readouterr().err
