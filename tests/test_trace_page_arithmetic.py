"""Displayed numbers are claims: every formula the trace page writes with its numbers holds.

The page writes lines such as ``y¹ = sigmoid(0.04788, -1.535) = (0.512, 0.1772)`` and
``(0.2492, 0.1) ⊙ (0.02366, 1) = (0.005896, 0.1)``. This test reads the text of each such
line from the DOM of the page in headless Chromium, parses it, and recomputes it with interval
arithmetic: each displayed number d stands for the interval the page's rounding allows
(4 significant digits, 3 in exponent form; "0" is exactly zero), every operation and
activation is applied to the intervals, and the displayed result must lie in what comes out.
No number is taken from the JSON: a line that contradicts itself fails, whatever the data say.

The crossing is the unit (STYLE.md §8): plain, batch-norm, dropout and batch-norm + dropout
networks, several activations and losses, every stage of the page.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.special import expit, ndtr

from tests.test_trace_page import browser, no_errors, open_page, stage, trace_files  # noqa: F401

# ----------------------------------------------------------------------------- intervals
Interval = tuple[float, float]


def displayed(text: str) -> Interval:
    """The values a number shown by the page may stand for (its rounding: short() in JS)."""
    v = float(text)
    if v == 0.0:
        return (0.0, 0.0)
    exponent = math.floor(math.log10(abs(v)))
    digits = 3 if "e" in text else 4  # toExponential(2) or toPrecision(4)
    half = 0.5 * 10.0 ** (exponent - digits + 1) + 1e-12 * abs(v)
    return (v - half, v + half)


def _monotone(f):
    return lambda a: (float(f(a[0])), float(f(a[1])))


_GELU_MIN_AT = -0.7517916243876923  # s Phi(s) is smallest there (not monotone)


def _gelu(a: Interval) -> Interval:
    values = [a[0] * ndtr(a[0]), a[1] * ndtr(a[1])]
    if a[0] <= _GELU_MIN_AT <= a[1]:
        values.append(_GELU_MIN_AT * ndtr(_GELU_MIN_AT))
    return (float(min(values)), float(max(values)))


# Element-wise activations, recomputed here (not the registry's): NumPy's own functions.
ELEMENTWISE = {
    "identity": _monotone(lambda s: s),
    "sigmoid": _monotone(expit),
    "tanh": _monotone(np.tanh),
    "relu": _monotone(lambda s: max(s, 0.0)),
    "leaky_relu": _monotone(lambda s: s if s > 0 else 0.01 * s),
    "elu": _monotone(lambda s: s if s > 0 else math.expm1(s)),
    "softplus": _monotone(lambda s: np.logaddexp(0.0, s)),
    "exp": _monotone(math.exp),
    "gelu": _gelu,
}


def softmax(vector: list[Interval]) -> list[Interval]:
    """Softmax of intervals: entry j grows with s_j and falls with every other s_k."""
    top = max(hi for _, hi in vector)
    out = []
    for j, (lo, hi) in enumerate(vector):
        rest_hi = sum(math.exp(b - top) for k, (_, b) in enumerate(vector) if k != j)
        rest_lo = sum(math.exp(a - top) for k, (a, _) in enumerate(vector) if k != j)
        low, high = math.exp(lo - top), math.exp(hi - top)
        out.append((low / (low + rest_hi), high / (high + rest_lo)))
    return out


def combine(op: str, a: Interval, b: Interval) -> Interval:
    if op == "+":
        return (a[0] + b[0], a[1] + b[1])
    if op == "−":
        return (a[0] - b[1], a[1] - b[0])
    if op in ("⊙", "·", "×"):
        products = [x * y for x in a for y in b]
        return (min(products), max(products))
    assert op == "/"
    if b[0] <= 0.0 <= b[1]:
        return (-math.inf, math.inf)
    return combine("⊙", a, (1.0 / b[1], 1.0 / b[0]))


# ----------------------------------------------------------------------------- parsing
class NotNumeric(Exception):
    """A part of a line that is a symbol (y¹, δ²), not numbers."""


TOKEN = re.compile(r"\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|[A-Za-z_][A-Za-z_0-9]*|[()⊙·×/+−,…])")


def tokens(text: str) -> list[str]:
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        m = TOKEN.match(text, i)
        if not m:
            raise NotNumeric(text[i:])
        out.append(m.group(1))
        i = m.end()
    return out


class Value:
    """A vector of intervals (a number is a vector of one); ``cut``: ends in '…'."""

    def __init__(self, items: list[Interval], cut: bool = False) -> None:
        self.items, self.cut = items, cut

    def pair(self, other: Value, op: str) -> Value:
        a, b = self.items, other.items
        if len(a) == 1 or len(b) == 1:  # a number and a vector
            n = max(len(a), len(b))
            a, b = a * n if len(a) == 1 else a, b * n if len(b) == 1 else b
        else:
            n = min(len(a), len(b))
            assert self.cut or other.cut or len(a) == len(b), ("lengths differ", len(a), len(b))
        cut = (self.cut and len(self.items) > 1) or (other.cut and len(other.items) > 1)
        return Value([combine(op, x, y) for x, y in zip(a[:n], b[:n], strict=True)], cut)


class Parser:
    """expression := term (('+' | '−') term)*; term := factor (('⊙' | '·' | '/') factor)*;
    factor := number | name '(' list ')' | '(' list ')'; list := expression (',' ...)*."""

    def __init__(self, text: str) -> None:
        self.t, self.i = tokens(text), 0
        self.functions: list[str] = []

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> str:
        self.i += 1
        return self.t[self.i - 1]

    def parse(self) -> Value:
        value = self.expression()
        if self.peek() is not None:
            raise NotNumeric(self.t[self.i :])
        return value

    def expression(self) -> Value:
        value = self.term()
        while self.peek() in ("+", "−"):
            op = self.take()
            value = value.pair(self.term(), op)
        return value

    def term(self) -> Value:
        value = self.factor()
        while self.peek() in ("⊙", "·", "×", "/"):
            op = self.take()
            value = value.pair(self.factor(), op)
        return value

    def factor(self) -> Value:
        token = self.take() if self.peek() is not None else None
        if token is None:
            raise NotNumeric("end")
        if re.fullmatch(r"-?\d.*", token):
            return Value([displayed(token)])
        if token == "(":
            return self.group()
        if re.fullmatch(r"[A-Za-z_]\w*", token) and self.peek() == "(":
            self.take()
            argument = self.group()
            self.functions.append(token)
            if token == "softmax":
                assert not argument.cut, "softmax of a vector shown in part cannot be checked"
                return Value(softmax(argument.items))
            if token not in ELEMENTWISE:
                raise AssertionError(f"the page applies {token!r}, which this test cannot check")
            return Value([ELEMENTWISE[token](a) for a in argument.items], argument.cut)
        raise NotNumeric(token)

    def group(self) -> Value:  # after '(': a vector, or one parenthesised expression
        items, cut = [], False
        while True:
            if self.peek() == "…":
                self.take()
                cut = True
            else:
                part = self.expression()
                if len(items) == 0 and self.peek() == ")":
                    self.take()
                    return part
                assert len(part.items) == 1, "a vector of vectors"
                items += part.items
            token = self.take()
            if token == ")":
                return Value(items, cut)
            if token != ",":
                raise NotNumeric(token)


def check_line(text: str) -> list[str] | None:
    """Every numeric side of 'symbol = expression = result' agrees; returns the functions
    applied (None: a line with one numeric side, such as 'E = 0.25', claims nothing)."""
    sides, functions = [], []
    for part in text.replace("\n", " ").split(" = "):
        try:
            parser = Parser(part)
            sides.append((part, parser.parse()))
            functions += parser.functions
        except NotNumeric:
            continue
    if len(sides) < 2:
        return None
    (_, result), computed = sides[-1], sides[:-1]
    for part, value in computed:
        n = min(len(value.items), len(result.items))
        assert n == len(result.items) or value.cut or result.cut, text
        for j in range(n):
            (lo, hi), (a, b) = value.items[j], result.items[j]
            assert a <= hi and lo <= b, (
                f"entry {j + 1} of {text!r}: {part} gives [{lo:.6g}, {hi:.6g}], "
                f"the page shows [{a:.6g}, {b:.6g}]"
            )
    return functions


# ----------------------------------------------------------------------------- the checker itself
def test_the_checker_accepts_true_lines_and_refuses_the_issues_false_ones():
    s = (0.04788, -1.535, 1.138)
    y = tuple(float(f"{v:.4g}") for v in expit(np.array(s)))
    assert check_line(f"y1 = sigmoid{s} = {y}".replace("'", "")) == ["sigmoid"]
    with pytest.raises(AssertionError, match="entry 1"):  # issue 23: the y of u, not of s
        check_line("y1 = sigmoid(0.04788, -1.535, 1.138) = (0.8256, 0, 1.172)")
    with pytest.raises(AssertionError, match="entry 1"):  # issue 23: 0.2492 ⊙ 0.02366
        check_line("β1 = (0.2492) ⊙ (0.02366) = (0.0198)")
    check_line("β1 = (0.2492) ⊙ (0.02366) = (0.005896)")
    check_line("x = ((1.5, -2) − (0.5, 1)) / (2, 3) = (0.5, -1)")
    check_line("b = (0.5, 1) − 0.1 · (1, -2) = (0.4, 1.2)")
    check_line("δ = softmax(1, 2, 3) = (0.09003, 0.2447, 0.6652)")
    with pytest.raises(AssertionError):
        check_line("δ = (1.01, 2) ⊙ (1, 1, …) = (1, 2)")  # 1.01 is not 1 at 4 digits


# ----------------------------------------------------------------------------- in the browser
NETWORKS = {
    "plain": ["--sizes", "3,4,4,2", "--activation", "sigmoid"],
    "batch_norm": ["--sizes", "3,3,4,2", "--activation", "sigmoid", "--batch-norm"],
    "dropout": ["--sizes", "3,5,4,2", "--activation", "tanh", "--dropout", "0.5", "--seed", "3"],
    "batch_norm+dropout": ["--sizes", "3,3,3,2", "--batch-norm", "--dropout", "0.5"],
    "relu_softmax_cross_entropy": ["--sizes", "4,5,3", "--activation", "relu"]
    + ["--output", "softmax", "--loss", "cross_entropy", "--batch-norm"],
    "gelu_identity_output": ["--sizes", "2,3,2", "--activation", "gelu", "--output", "identity"],
    "layer_norm": ["--sizes", "3,4,4,2", "--activation", "tanh", "--layer-norm"],
    "residual": ["--sizes", "3,4,4,4,2", "--activation", "tanh", "--residual"],
    "residual+layer_norm+dropout": ["--sizes", "3,4,4,4,2", "--residual", "--layer-norm"]
    + ["--dropout", "0.3"],
    "residual+batch_norm": ["--sizes", "3,4,4,2", "--residual", "--batch-norm"],
}


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_every_displayed_formula_holds_for_its_displayed_numbers(browser, tmp_path, kind):  # noqa: F811
    from selenium.webdriver.common.by import By

    page, traced = trace_files(tmp_path, *NETWORKS[kind])
    Q = len(traced["sizes"]) - 1
    open_page(browser, page)
    applied: dict[str, list[str]] = {}  # stage -> functions applied in its lines
    products = 0
    while True:
        here = stage(browser)
        for line in browser.find_elements(By.CSS_SELECTOR, "#panel .numbers"):
            text = line.text
            functions = check_line(text)
            if functions is not None:
                applied.setdefault(here, []).extend(functions)
                products += "⊙" in text
        if not browser.find_element(By.ID, "next").is_enabled():
            break
        browser.find_element(By.ID, "next").click()
    # nothing passes by being absent: each forward stage applies its layer's activation,
    # each backward stage shows its element-wise product, step 6 its update
    for q in range(1, Q + 1):
        assert traced["activations"][q - 1] in applied.get(f"step2-{q}", []), (kind, q, applied)
        assert f"step6-{q}" in applied, (kind, q)
    for q in range(1, Q):
        assert f"step4-{q}" in applied, (kind, q)
    assert products >= Q - 1
    no_errors(browser)
