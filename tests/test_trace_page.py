"""The trace as an interactive page, opened in a real browser (headless Chromium, Selenium).

Every number the page shows is compared with ``betaprop trace --format json`` (read back at
full precision from the elements' data-value), the stages are clicked through in the seed's
order (step 4: q = Q-1 down to 1), and the Russian page is checked for the seed's terms. A
screenshot of step 4 is written to pytest's tmp_path and, when BETAPROP_ARTEFACTS names a
folder, copied there.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import betaprop as bp
from betaprop import cli
from betaprop.explain.trace import trace
from betaprop.explain.trace_page import page

HOW_TO_INSTALL = (
    "no headless browser: install Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver) to run the trace page's browser tests"
)
BROWSER = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if BROWSER is None or DRIVER is None:
        pytest.skip(HOW_TO_INSTALL)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,860")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def trace_files(tmp_path: Path, *options: str) -> tuple[Path, dict]:
    """`betaprop trace --format html` and `--format json` with the same options."""
    page, data = tmp_path / "trace.html", tmp_path / "trace.json"
    for fmt, out in (("html", page), ("json", data)):
        code = cli.main(["trace", *options, "--format", fmt, "--out", str(out)])
        assert code == 0
    return page, json.loads(data.read_text(encoding="utf-8"))


def expected(traced: dict, name: str, q: int, j: int, r: int | None) -> float:
    if name in ("x", "d", "error", "output_gradient"):
        return traced[name][j]
    if name in ("loss_value", "reference_max_difference", "learning_rate", "loss_after"):
        return traced[name]
    if name == "mask":
        return traced["dropout"][str(q)]["mask"][j]
    if name in traced["normalization"].get(str(q), {}):
        return traced["normalization"][str(q)][name][j]
    value = traced[name][str(q)][j]
    return value if r is None else value[r]


def check_numbers(driver, traced: dict, selector: str = "[data-value]") -> int:
    """Every number shown under selector equals the JSON's, exactly; returns how many."""
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => [e.dataset.name, "
        "Number(e.dataset.q), Number(e.dataset.j), e.dataset.r === undefined ? null : "
        "Number(e.dataset.r), e.dataset.value, e.textContent])",
        selector,
    )
    for name, q, j, r, full, text in shown:
        value = expected(traced, name, q, j, r)
        assert float(full) == value, (name, q, j, r)
        rounded = text.split("=")[-1].strip() if "=" in text else text.strip()
        if rounded != full:  # the visible text: the value to 4 significant digits
            assert float(rounded) == pytest.approx(value, rel=5e-3, abs=1e-300), (name, text)
    return len(shown)


def stage(driver) -> str:
    return driver.execute_script("return document.body.dataset.stage")


def open_page(driver, page: Path) -> None:
    driver.get(page.as_uri())
    driver.get_log("browser")  # start with an empty log


def no_errors(driver) -> None:
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe


def seed_order(Q: int) -> list[str]:
    """The seed's order: step 2 forward, step 3, step 4 for q = Q-1 down to 1, steps 5, 6."""
    order = ["start"] + [f"step2-{q}" for q in range(1, Q + 1)] + ["step3"]
    order += [f"step4-{q}" for q in range(Q - 1, 0, -1)]
    order += [f"step5-{q}" for q in range(1, Q + 1)]
    return order + [f"step6-{q}" for q in range(1, Q + 1)] + ["check"]


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = os.environ.get("BETAPROP_ARTEFACTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copy(path, Path(folder) / name)
    return path


# ----------------------------------------------------------------------------- no browser needed
def test_the_page_is_one_file_embedding_the_json_trace(tmp_path):
    page, traced = trace_files(tmp_path, "--sizes", "3,4,4,2", "--activation", "tanh")
    html = page.read_text(encoding="utf-8")
    for outside in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert outside not in html.replace("http://www.w3.org/2000/svg", "")
    start = html.index('<script type="application/json" id="trace-data">')
    embedded = html[html.index(">", start) + 1 : html.index("</script>", start)]
    assert json.loads(embedded) == traced  # one source of truth: the JSON trace itself
    assert traced["W"]["2"] and traced["b"]["1"]  # the page draws the weights from it too


def test_bad_language():
    t = trace(bp.Network([2, 2], seed=0), [1, 2], [0, 1])
    with pytest.raises(ValueError, match=r"lang must be one of \['en', 'ru'\], got 'de'"):
        page(t, "de")


# ----------------------------------------------------------------------------- in the browser
@pytest.mark.parametrize(
    "options",
    [
        [],  # the default 2-3-2 sigmoid network of `betaprop trace`
        ["--sizes", "3,4,4,2", "--activation", "tanh", "--output", "tanh"],  # Q = 3
    ],
)
def test_click_through_every_stage_in_the_seeds_order(browser, tmp_path, options):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page, traced = trace_files(tmp_path, *options)
    Q = len(traced["sizes"]) - 1
    open_page(browser, page)
    listed = [
        li.get_attribute("data-stage")
        for li in browser.find_elements(By.CSS_SELECTOR, "#stages li")
    ]
    assert listed == seed_order(Q)

    visited, checked = [stage(browser)], check_numbers(browser, traced)
    next_button = browser.find_element(By.ID, "next")
    while next_button.is_enabled():
        next_button.click()
        visited.append(stage(browser))
        checked += check_numbers(browser, traced)
        title = browser.find_element(By.ID, "stage-title").text
        formulas = browser.find_element(By.ID, "formulas").text
        if visited[-1].startswith("step4-"):
            q = int(visited[-1].split("-")[1])
            assert f"hidden layer {q}" in title
            assert f"β{q} = f′(s{q}) ⊙ (W{q + 1})ᵀβ{q + 1}" in formulas.replace("\n", "")
            assert "β" in formulas and "f′(z" in formulas  # the seed's own formula
            flowing = browser.find_elements(By.CSS_SELECTOR, f'g[data-layer="{q + 1}"] .edge.flow')
            assert len(flowing) == traced["sizes"][q] * traced["sizes"][q + 1]
            if q == 1:
                screenshot(browser, tmp_path, f"trace-step4-Q{Q}.png")
        if visited[-1] == "step3":
            assert "local error of the output layer" in title
            assert "δ2 = (y2 − d) ⊙ f′(s2)".replace("2", str(Q)) in formulas.replace("\n", "")
    assert visited == seed_order(Q)
    assert checked > 20 * Q

    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.get_attribute("data-agrees") == "true" == str(traced["reference_agrees"]).lower()
    assert "equals the fast engine" in verdict.text

    # Back and the arrow keys walk the same list
    browser.find_element(By.ID, "back").click()
    assert stage(browser) == seed_order(Q)[-2]
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(len(visited)):
        body.send_keys(Keys.ARROW_LEFT)
    assert stage(browser) == "start" and not browser.find_element(By.ID, "back").is_enabled()
    body.send_keys(Keys.ARROW_RIGHT)
    assert stage(browser) == "step2-1"
    no_errors(browser)


@pytest.mark.parametrize(
    "options, note",
    [
        (["--sizes", "3,2"], "No hidden layers (Q = 1)"),  # no step 4 at all
        (["--sizes", "4,5,3", "--loss", "cross_entropy", "--output", "softmax"], "canonical pair"),
        (["--sizes", "3,4,3", "--activation", "tanh", "--output", "softmax"], "Jacobian"),
    ],
)
def test_no_hidden_layer_fused_pair_and_softmax_jacobian(browser, tmp_path, options, note):
    from selenium.webdriver.common.by import By

    page, traced = trace_files(tmp_path, *options)
    Q = len(traced["sizes"]) - 1
    open_page(browser, page)
    visited = [stage(browser)]
    while browser.find_element(By.ID, "next").is_enabled():
        browser.find_element(By.ID, "next").click()
        visited.append(stage(browser))
        check_numbers(browser, traced)
        if visited[-1] == "step3":
            assert note in browser.find_element(By.ID, "explain").text
    assert visited == seed_order(Q)
    no_errors(browser)


def test_hovering_shows_six_digits(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page, traced = trace_files(tmp_path)
    open_page(browser, page)
    tip = browser.find_element(By.ID, "tip")
    neuron = browser.find_element(By.CSS_SELECTOR, 'circle.neuron[data-q="1"][data-j="2"]')
    ActionChains(browser).move_to_element(neuron).perform()
    assert tip.is_displayed() and "neuron j = 3" in tip.text
    assert check_numbers(browser, traced, "#tip [data-value]") == 7  # s y f' (W)^T beta beta b db
    beta = traced["beta"]["1"][2]  # rounded to 6 digits, not 17 (every digit is in data-value)
    assert f"{beta:.6g}" in tip.text and repr(beta) not in tip.text

    edge = browser.find_element(By.CSS_SELECTOR, 'line.edge[data-q="2"][data-j="0"][data-r="1"]')
    # a fifth of the way along the line: its middle crosses other lines
    dx, dy = browser.execute_script(
        "const l = arguments[0], m = l.getScreenCTM(), r = l.getBoundingClientRect();"
        "const x = l.x1.baseVal.value * 0.8 + l.x2.baseVal.value * 0.2;"
        "const y = l.y1.baseVal.value * 0.8 + l.y2.baseVal.value * 0.2;"
        "const p = new DOMPoint(x, y).matrixTransform(m);"
        "return [p.x - (r.left + r.width / 2), p.y - (r.top + r.height / 2)];",
        edge,
    )
    ActionChains(browser).move_to_element_with_offset(edge, round(dx), round(dy)).perform()
    assert "from neuron 2 of layer 1 to neuron 1 of layer 2" in tip.text
    assert check_numbers(browser, traced, "#tip [data-value]") == 4  # w, dE/dw, beta_j, y_r
    assert f"{traced['W']['2'][0][1]:.6g}" in tip.text
    no_errors(browser)


def test_russian_page_uses_the_seeds_terms_and_switches_language(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page, traced = trace_files(tmp_path, "--lang", "ru", "--sizes", "3,4,4,2")
    open_page(browser, page)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ru"
    texts = []
    next_button = browser.find_element(By.ID, "next")
    while True:
        texts.append(browser.find_element(By.TAG_NAME, "main").text)
        if not next_button.is_enabled():
            break
        next_button.click()
    seen = "\n".join(texts)
    for term in (
        "Шаг 2: прямой проход",
        "Шаг 3: локальная ошибка выходного слоя",
        "Шаг 4: локальная ошибка скрытого слоя 2 (обратное распространение",
        "транспонированную матрицу весов",
        "промежуточная ошибка",
        "производную активации",
        "преактивации",
        "целевое значение",
        "никогда не меняйте порядок",  # one register: вы
        "в обратном порядке",
        "произведение Адамара",
        "Шаг 6: шаг градиентного спуска, слой 1",
        "Дословная реализация и быстрый движок совпадают",
    ):
        assert term in seen, term
    assert "Далее" in next_button.text

    browser.find_element(By.ID, "lang-en").click()  # the switch: same stage, English words
    assert stage(browser) == "check"
    assert "equals the fast engine" in browser.find_element(By.ID, "verdict").text
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    browser.find_element(By.ID, "lang-ru").click()
    assert "совпадают" in browser.find_element(By.ID, "verdict").text
    check_numbers(browser, traced)
    no_errors(browser)


def test_wide_layers_are_summarised_without_breaking_the_drawing(browser, tmp_path):
    from selenium.webdriver.common.by import By

    options = ["--sizes", "100,64,80,3", "--activation", "relu"]
    page, traced = trace_files(tmp_path, *options, "--loss", "cross_entropy", "--output", "softmax")
    open_page(browser, page)
    drawn = browser.execute_script(
        "const box = document.getElementById('net').viewBox.baseVal; const out = {};"
        "document.querySelectorAll('circle.neuron').forEach(c => {"
        " const q = c.dataset.q; out[q] = (out[q] || 0) + 1;"
        " if (c.cy.baseVal.value < 0 || c.cy.baseVal.value > box.height) out.outside = 1; });"
        "return out;"
    )
    assert drawn == {"0": 63, "1": 64, "2": 63, "3": 3}  # 64 shown: wider layers 63 + summary
    more = {
        e.get_attribute("data-q"): e.text for e in browser.find_elements(By.CSS_SELECTOR, "g.more")
    }
    assert more == {"0": "+37", "2": "+17"}
    while browser.find_element(By.ID, "next").is_enabled():
        browser.find_element(By.ID, "next").click()
        check_numbers(browser, traced)
        if stage(browser) == "step4-2":  # layer 2: 80 rows, 64 in the table
            assert "… 16 more" in browser.find_element(By.ID, "panel").text
        if stage(browser) == "step4-1":
            screenshot(browser, tmp_path, "trace-step4-wide.png")
    assert stage(browser) == "check"
    no_errors(browser)


def test_a_trained_model_with_the_example_chosen_by_row(browser, tmp_path):
    from selenium.webdriver.common.by import By

    args = cli.build_parser().parse_args(
        ["train", "--quiet", "--data", "iris", "--out", str(tmp_path / "run"), "--epochs", "3"]
        + ["--hidden", "5"]
    )
    run = cli.train_run(args, None)
    model = str(tmp_path / "run" / "model.safetensors")
    page, traced = trace_files(tmp_path, "--model", model, "--example", "7")
    assert traced["sizes"] == [4, 5, 3]
    np.testing.assert_array_equal(traced["x"], run.prep.transform(run.data.X[7:8])[0])
    open_page(browser, page)
    assert "4–5–3" in browser.find_element(By.ID, "net-summary").text
    while browser.find_element(By.ID, "next").is_enabled():
        check_numbers(browser, traced)
        browser.find_element(By.ID, "next").click()
    assert browser.find_element(By.ID, "verdict").get_attribute("data-agrees") == "true"
    no_errors(browser)


def test_step6_shows_the_engines_gradient_step(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page, traced = trace_files(tmp_path, "--sizes", "3,4,2", "--learning-rate", "0.5")
    open_page(browser, page)
    browser.find_element(By.CSS_SELECTOR, '#stages li[data-stage="step6-2"] button').click()
    assert stage(browser) == "step6-2"
    assert "Step 6: gradient step, layer 2" in browser.find_element(By.ID, "stage-title").text
    assert "η = 0.5" in browser.find_element(By.ID, "formulas").text
    shown = check_numbers(browser, traced, '#table [data-name="W_new"]')
    assert shown == 2 * 4  # W^2 after the step, every entry, equal to the JSON's
    losses = browser.find_elements(By.CSS_SELECTOR, "#loss-step [data-value]")
    assert [float(e.get_attribute("data-value")) for e in losses] == [
        traced["loss_value"],
        traced["loss_after"],
    ]
    assert traced["loss_after"] < traced["loss_value"]
    assert "→" in browser.find_element(By.ID, "loss-step").text
    # the lines of W^2 now show the new weights
    colours = browser.execute_script(
        "return Array.from(document.querySelectorAll('g[data-layer=\"2\"] .edge'))"
        ".map(e => e.getAttribute('stroke-width'))"
    )
    assert len(colours) == 8
    no_errors(browser)


def test_weights_as_numbers_and_the_sum_for_one_neuron(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.test_trace_page_arithmetic import check_line

    page, traced = trace_files(tmp_path, "--sizes", "3,4,5,2")
    W2 = np.array(traced["W"]["2"])  # (N_2, N_1) = (5, 4)
    open_page(browser, page)
    browser.find_element(By.CSS_SELECTOR, '#stages li[data-stage="step4-1"] button').click()
    for j in (0, 2):
        if j:  # a click on neuron j of layer 1 chooses the neuron whose sum is written out
            browser.find_element(
                By.CSS_SELECTOR, f'circle.neuron[data-q="1"][data-j="{j}"]'
            ).click()
        table = browser.find_element(By.CSS_SELECTOR, "table.transposed")
        assert check_numbers(browser, traced, "table.transposed [data-value]") == 4 * 5 + 5 + 4
        shown = [  # row i of (W^2)^T is column i of W^2, its entries in order
            [
                float(e.get_attribute("data-value"))
                for e in row.find_elements(By.CSS_SELECTOR, '[data-name="W"]')
            ]
            for row in table.find_elements(By.CSS_SELECTOR, "tr[data-row]")
        ]
        np.testing.assert_array_equal(shown, W2.T)
        key = table.find_elements(By.CSS_SELECTOR, 'td.key [data-name="W"]')
        assert [float(e.get_attribute("data-value")) for e in key] == W2[:, j].tolist()
        total = browser.find_element(By.ID, "sum")
        assert len(total.find_elements(By.CSS_SELECTOR, '[data-name="W"]')) == 5  # every term
        assert check_line(total.text) == []  # the written-out sum holds for its numbers
        last = total.find_elements(By.CSS_SELECTOR, "[data-value]")[-1]
        assert float(last.get_attribute("data-value")) == traced["back"]["1"][j]
        assert f"row {j + 1} of (W2)ᵀ" in browser.find_element(By.ID, "sum-caption").text
    no_errors(browser)


def test_a_common_log_scale_shows_the_error_vanishing(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page, traced = trace_files(tmp_path, "--sizes", "4,6,6,6,2")  # a deep sigmoid net
    largest = [max(abs(v) for v in traced["beta"][str(q)]) for q in range(1, 5)]
    assert largest[0] < largest[2] / 5  # beta shrinks on the way back
    open_page(browser, page)
    browser.find_element(By.CSS_SELECTOR, '#stages li[data-stage="step5-1"] button').click()

    def strongest(q: int) -> float:  # layer q's most coloured neuron: 1 is the full colour
        fills = browser.execute_script(
            "return Array.from(document.querySelectorAll("
            "`circle.neuron[data-q='${arguments[0]}']`))"
            ".map(c => c.getAttribute('fill').match(/\\d+/g).map(Number))",
            q,
        )
        full = {True: 765 - (192 + 57 + 43), False: 765 - (33 + 102 + 172)}  # red, blue
        return max(sum(255 - c for c in rgb) / full[rgb[0] > rgb[2]] for rgb in fills)

    assert strongest(1) == pytest.approx(strongest(3), abs=0.01)  # per layer: equally strong
    bars = browser.find_elements(By.CSS_SELECTOR, "#beta-bars .bar-row")
    assert [float(b.get_attribute("data-largest")) for b in bars] == largest
    widths = [b.find_element(By.CLASS_NAME, "bar").size["width"] for b in bars]
    assert np.argsort(widths).tolist() == np.argsort(largest).tolist()  # as |beta^q| grows
    browser.find_element(By.ID, "scale-mode").click()
    assert browser.find_element(By.ID, "scale-mode").get_attribute("aria-pressed") == "true"
    assert "one scale for all layers" in browser.find_element(By.ID, "legend").text
    assert strongest(1) < strongest(3) - 0.1  # one log scale: the small beta^1 looks faint
    browser.find_element(By.ID, "scale-mode").click()
    assert strongest(1) == pytest.approx(strongest(3), abs=0.01)
    no_errors(browser)
