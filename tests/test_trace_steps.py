"""`betaprop trace --steps N`: N consecutive training steps, each computed by the engine.

Step k + 1 starts from the weights step k's gradient step left, so its E is step k's E after
(without dropout: the same function); the page's scrubber shows each step's own numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import betaprop as bp
from betaprop import cli
from betaprop.explain.trace import trace_steps
from betaprop.explain.trace_text import render_steps
from tests.test_trace_page import browser, check_numbers, no_errors, open_page  # noqa: F401


def test_consecutive_steps_chain_the_engines_updates():
    net = bp.Network([4, 6, 6, 2], "sigmoid", dtype="float64", seed=1)
    before = net.params.copy()
    traces = trace_steps(net, [1.0, 0.5, -0.5, 0.5], [1.0, 0.0], steps=4, learning_rate=0.1)
    np.testing.assert_array_equal(net.params, before)  # the caller's network is untouched
    assert len(traces) == 4 and all(t.agrees for t in traces)
    for one, two in zip(traces, traces[1:], strict=False):
        for q in range(1, 4):
            np.testing.assert_array_equal(two.net.W[q], one.W_new[q])
            np.testing.assert_array_equal(two.net.b[q][:, 0], one.b_new[q])
        assert two.loss == pytest.approx(one.loss_after, rel=1e-14)
    losses = [t.loss for t in traces]
    assert losses == sorted(losses, reverse=True)  # E falls step after step
    table = render_steps(traces)
    assert "|beta^3|" in table and f"{traces[3].loss_after:.6g}" in table
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        trace_steps(net, [1.0, 0.5, -0.5, 0.5], [1.0, 0.0], steps=0)


def test_steps_with_dropout_draw_new_masks():
    net = bp.Network([3, 8, 2], "tanh", dtype="float64", seed=2, dropout=0.5)
    traces = trace_steps(net, [1.0, 0.0, -1.0], [0.0, 1.0], steps=3)
    masks = [t.mask[1].tolist() for t in traces]
    assert masks[0] != masks[1] or masks[1] != masks[2]  # the generator's next draws


def test_the_scrubber_shows_each_steps_numbers(browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    options = ["--sizes", "3,4,2", "--steps", "3", "--learning-rate", "2"]
    page, data = tmp_path / "steps.html", tmp_path / "steps.json"
    for fmt, out in (("html", page), ("json", data)):
        assert cli.main(["trace", *options, "--format", fmt, "--out", str(out)]) == 0
    steps = json.loads(data.read_text(encoding="utf-8"))["steps"]
    assert len(steps) == 3 and steps[1]["W"] == steps[0]["W_new"]
    open_page(browser, page)
    browser.find_element(By.CSS_SELECTOR, '#stages li[data-stage="step6-1"] button').click()
    scrubber = browser.find_element(By.ID, "scrubber")
    assert scrubber.is_displayed() and "training step 1 of 3" in scrubber.text
    drawn = browser.execute_script(
        "return JSON.parse(document.querySelector('#over-steps [data-series=E]').dataset.values)"
    )
    assert drawn == [s["loss_value"] for s in steps]
    for k in (2, 0, 1):
        browser.execute_script(
            "const r = document.getElementById('step-range'); r.value = arguments[0];"
            "r.dispatchEvent(new Event('input'))",
            k + 1,
        )
        assert f"training step {k + 1} of 3" in scrubber.text
        assert check_numbers(browser, steps[k]) > 10  # every number is step k's own
        assert browser.execute_script("return document.body.dataset.stage") == "step6-1"
    no_errors(browser)


def test_the_deep_sigmoid_preset_shows_vanishing_step_after_step(tmp_path):
    out = tmp_path / "deep.json"
    assert (
        cli.main(["trace", "--preset", "deep-sigmoid", "--format", "json", "--out", str(out)]) == 0
    )
    steps = json.loads(out.read_text(encoding="utf-8"))["steps"]
    assert len(steps) == 20 and steps[0]["sizes"] == [4, 8, 8, 8, 8, 8, 2]
    assert steps[0]["learning_rate"] == 1.0 and set(steps[0]["activations"]) == {"sigmoid"}
    for step in steps:  # beta^1 a hundred times smaller than delta^Q, at every step
        largest = [max(abs(v) for v in step["beta"][str(q)]) for q in range(1, 7)]
        assert largest[0] < largest[5] / 100
    assert steps[-1]["loss_after"] < steps[0]["loss_value"]
    assert cli.main(["trace", "--preset", "deep-sigmoid", "--model", "m.safetensors"]) != 0
