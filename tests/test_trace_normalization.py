"""The trace of a network with batch normalisation and dropout: the new lines and numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import betaprop as bp
from betaprop.explain.trace import as_dict, trace
from betaprop.explain.trace_page import page
from betaprop.explain.trace_text import render


def _net() -> bp.Network:
    return bp.Network([3, 5, 4, 2], "tanh", dtype="float64", seed=2,
                      normalization=["batch", None], dropout=[0.0, 0.5])  # fmt: skip


def test_trace_equals_the_reference_and_shows_each_formula() -> None:
    net = _net()
    state = net.dropout_rng.bit_generator.state
    x, d = [1.0, -0.5, 0.25], [0.0, 1.0]
    t = trace(net, x, d)
    assert net.dropout_rng.bit_generator.state == state  # the network's masks untouched
    assert t.agrees and t.reference_difference < 1e-12
    assert t.n == 4 and sorted(t.normalization) == [1] and sorted(t.mask) == [2]
    norm = t.normalization[1]
    # step 2's lines, for the traced example (column 1)
    np.testing.assert_allclose(norm["xhat"], (t.s[1] - norm["mu"]) / norm["sigma"], atol=1e-14)
    np.testing.assert_allclose(norm["u"], norm["gamma"] * norm["xhat"] + norm["shift"])
    np.testing.assert_allclose(t.y[1], np.tanh(norm["u"]), atol=1e-15)
    np.testing.assert_allclose(t.y[2], np.tanh(t.s[2]) * t.mask[2], atol=1e-15)
    assert set(np.unique(t.mask[2])) <= {0.0, 2.0}
    # step 4's lines: the mask, then f' of layer 2; the error at u^1 from (W^2)^T beta^2
    np.testing.assert_allclose(t.beta[2], t.f_prime[2] * t.mask[2] * t.back[2], atol=1e-15)
    np.testing.assert_allclose(norm["error_u"], t.f_prime[1] * t.back[1], atol=1e-15)
    np.testing.assert_allclose(t.f_prime[1], 1.0 - np.tanh(norm["u"]) ** 2, atol=1e-15)
    np.testing.assert_allclose(t.db[1], 0.0, atol=1e-15)  # the batch mean removes b^1's effect
    for lang, words in (("en", "Batch normalisation of layer 1"), ("ru", "Пакетная нормализация")):
        text = render(t, lang)
        assert words in text
        for label in ("mu^1", "sigma^1", "xhat^1", "u^1", "m^2/(1-p)", "e^1", "dE/dgamma^1"):
            assert label in text, (lang, label)


def test_as_dict_and_the_page_carry_the_new_lines() -> None:
    t = trace(_net(), [0.5, 0.5, -1.0], [1.0, 0.0])
    data = json.loads(json.dumps(as_dict(t)))
    assert data["batch_size"] == 4
    assert data["normalization"]["1"]["mu"] == t.normalization[1]["mu"].tolist()
    assert data["dropout"]["2"] == {"p": 0.5, "mask": t.mask[2].tolist()}
    assert "<html" in page(t, "en").lower()


def test_a_given_batch_and_dropout_alone() -> None:
    net = _net()
    rng = np.random.default_rng(5)
    batch = (rng.normal(size=(6, 3)), rng.normal(size=(6, 2)))
    assert trace(net, [1.0, 0.0, 0.0], [0.0, 0.0], batch=batch).n == 7
    alone = bp.Network([3, 4, 2], "relu", dtype="float64", seed=0, dropout=0.5)
    t = trace(alone, [1.0, 0.0, 0.0], [0.0, 1.0])
    assert t.n == 1 and t.agrees and 1 in t.mask and not t.normalization
    with pytest.raises(ValueError, match="X must have shape"):
        trace(net, [1.0, 0.0, 0.0], [0.0, 0.0], batch=(np.ones((2, 4)), np.ones((2, 2))))


def _value(data: dict, name: str, q: int) -> np.ndarray:
    if name in ("x", "d", "error", "output_gradient"):
        return np.array(data[name])
    if name in ("learning_rate", "loss_value"):
        return np.array([data[name]])
    if name == "mask":
        return np.array(data["dropout"][str(q)]["mask"])
    if name in data["normalization"].get(str(q), {}):
        return np.array(data["normalization"][str(q)][name])
    return np.array(data[name][str(q)])


ACT = {"tanh": np.tanh, "sigmoid": lambda s: 1 / (1 + np.exp(-s)), "identity": lambda s: s}
OPS = {"⊙": np.multiply, "+": np.add, "−": np.subtract, "/": np.divide, "·": np.multiply}


def _evaluate(data: dict, e: list) -> np.ndarray:
    if e[0] == "v":
        return _value(data, e[1], e[2])
    if e[0] == "f":
        return ACT[e[1]](_evaluate(data, e[2]))
    return OPS[e[0]](_evaluate(data, e[1]), _evaluate(data, e[2]))


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"normalization": "batch"},
        {"dropout": 0.5},
        {"normalization": "batch", "dropout": 0.3},
        {"normalization": "layer"},
        {"residual": True},
        {"residual": True, "normalization": "layer", "dropout": 0.3},
        {"residual": True, "normalization": "batch"},
    ],
)
def test_every_line_the_trace_claims_holds_at_full_precision(settings) -> None:
    """The lines the page writes (as_dict's "lines"), evaluated in float64 from the trace's
    own numbers: layer norm, residual layers, batch norm and dropout alike."""
    net = bp.Network([3, 4, 4, 4, 2], "tanh", dtype="float64", seed=1, **settings)
    t = trace(net, [1.0, -0.5, 0.25], [0.0, 1.0])
    assert t.agrees, settings  # the literal reference, every operation's own form
    data = json.loads(json.dumps(as_dict(t)))
    lines = [*data["lines"]["3"]] + [
        line for step in ("2", "4", "6") for q in data["lines"][step].values() for line in q
    ]
    assert len(lines) >= 3 * 4
    for line in lines:
        result = _evaluate(data, line["result"])
        np.testing.assert_allclose(
            np.broadcast_to(_evaluate(data, line["expr"]), result.shape), result,
            rtol=1e-9, atol=1e-12, err_msg=str((settings, line)),
        )  # fmt: skip
    text = render(t)
    if settings.get("residual"):
        assert "g^1 = (W^2)^T β^2 + g^2" in text and "y^2 = y^1 + f_2(" in text
    if settings.get("normalization") == "layer":
        assert "Layer normalisation of layer 1" in text and "mean_j(γ^1 ⊙ e^1)" in text
