"""The step-by-step trace: its numbers against PyTorch autograd, and its text."""

from __future__ import annotations

import json

import numpy as np
import pytest

import betaprop as bp
from betaprop.explain.trace import as_dict, trace
from betaprop.explain.trace_text import render

torch = pytest.importorskip("torch")

TORCH_F = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda s: s,
    "softmax": lambda s: torch.softmax(s, dim=0),
}


def _autograd(net: bp.Network, x: np.ndarray, d: np.ndarray) -> dict:
    """s^q, y^q, beta^q = dE/ds^q, dE/dW^q, dE/db^q for one example, by autograd."""
    W = [None] + [
        torch.tensor(net.W[q], dtype=torch.float64, requires_grad=True) for q in range(1, net.Q + 1)
    ]
    b = [None] + [
        torch.tensor(net.b[q][:, 0], dtype=torch.float64, requires_grad=True)
        for q in range(1, net.Q + 1)
    ]
    y = [torch.tensor(x, dtype=torch.float64)]
    s: list = [None]
    for q in range(1, net.Q + 1):
        s.append(W[q] @ y[q - 1] + b[q])
        s[q].retain_grad()
        y.append(TORCH_F[net.activations[q - 1]](s[q]))
    target = torch.tensor(d, dtype=torch.float64)
    if net.loss.name == "squared_error":
        E = 0.5 * torch.sum((y[-1] - target) ** 2)
    else:  # cross_entropy
        E = -torch.sum(target * torch.log_softmax(s[-1], dim=0))
    E.backward()
    Q = net.Q
    return {
        "s": [s[q].detach().numpy() for q in range(1, Q + 1)],
        "y": [y[q].detach().numpy() for q in range(1, Q + 1)],
        "beta": [s[q].grad.numpy() for q in range(1, Q + 1)],
        "dW": [W[q].grad.numpy() for q in range(1, Q + 1)],
        "db": [b[q].grad.numpy() for q in range(1, Q + 1)],
        "E": float(E.detach()),
    }


@pytest.mark.parametrize(
    "sizes, activation, output, loss",
    [
        ([2, 3, 2], "sigmoid", "sigmoid", "squared_error"),  # the default: the seed's chain
        ([4, 5, 3, 3], "tanh", None, "cross_entropy"),  # fused softmax + cross-entropy
        ([3, 4, 4, 2], "relu", "tanh", "squared_error"),
        ([3, 2], "sigmoid", "sigmoid", "squared_error"),  # Q = 1: no step 4
        ([3, 4, 3], "tanh", "softmax", "squared_error"),  # the softmax Jacobian in step 3
    ],
)
def test_trace_numbers_equal_autograd(sizes, activation, output, loss):
    net = bp.Network(sizes, activation=activation, output=output, loss=loss, seed=5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=sizes[0])
    d = np.eye(sizes[-1])[1]
    t = trace(net, x, d)
    oracle = _autograd(t.net, x, d)  # t.net: the float64 copy the trace ran on
    for q in range(1, net.Q + 1):
        np.testing.assert_allclose(t.s[q], oracle["s"][q - 1], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(t.y[q], oracle["y"][q - 1], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(t.beta[q], oracle["beta"][q - 1], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(t.dW[q], oracle["dW"][q - 1], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(t.db[q], oracle["db"][q - 1], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(t.loss, oracle["E"], rtol=1e-12)
    # step 4's pieces: beta^q = f'(s^q) * (W^{q+1})^T beta^{q+1}
    for q in range(1, net.Q):
        np.testing.assert_allclose(t.back[q], t.net.W[q + 1].T @ oracle["beta"][q], rtol=1e-10)
        np.testing.assert_allclose(t.f_prime[q] * t.back[q], t.beta[q], rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(t.error, oracle["y"][-1] - d, rtol=1e-12, atol=1e-15)
    assert t.agrees and t.reference_difference < 1e-12


def test_text_shows_the_numbers_and_the_formulas():
    net = bp.Network([2, 3, 2], activation="sigmoid", output="sigmoid", seed=0)
    t = trace(net, [1.0, 0.5], [1.0, 0.0])
    text = render(t)
    for step in ("Step 2", "Step 3", "Step 4", "Step 5"):
        assert step in text
    assert "δ^2 = (y^2 - d) ⊙ f'(s^2)" in text
    assert "β^1 = f'(s^1) ⊙ (W^2)^T β^2" in text
    for value in (t.beta[2][0], t.beta[1][2], t.dW[1][1, 0], t.s[1][1]):
        assert f"{value:.6g}" in text
    assert "agree" in text and "DISAGREE" not in text


def test_russian_and_markdown():
    net = bp.Network([2, 3, 2], activation="sigmoid", output="sigmoid", seed=0)
    t = trace(net, [1.0, 0.5], [1.0, 0.0])
    ru = render(t, lang="ru")
    assert "Шаг 3: локальная ошибка выходного слоя" in ru and "совпадают" in ru
    md = render(t, lang="en", fmt="markdown")
    assert md.startswith("# ") and "\n## Step 4" in md
    assert "$\\beta^{1} = f'(s^{1}) \\odot (W^{2})^T \\beta^{2}$" in md


def test_fused_pair_and_long_layers_are_explained():
    net = bp.Network([20, 30, 3], activation="relu", loss="cross_entropy", seed=0)
    t = trace(net, np.linspace(-1, 1, 20), [0.0, 0.0, 1.0])
    text = render(t, max_entries=4)
    assert "canonical pair" in text and "delta^Q = y^Q - d" in text
    assert "showing 4 of 30" in text


def test_as_dict_is_json_with_every_number_at_full_precision():
    net = bp.Network([2, 3, 2], activation="sigmoid", output="sigmoid", seed=0)
    t = trace(net, [1.0, 0.5], [1.0, 0.0])
    again = json.loads(json.dumps(as_dict(t)))
    assert again["beta"]["1"] == t.beta[1].tolist()
    assert again["dW"]["2"] == t.dW[2].tolist()
    assert again["reference_agrees"] is True


def test_disagreement_is_reported():
    net = bp.Network([2, 3, 2], activation="sigmoid", output="sigmoid", seed=0)
    t = trace(net, [1.0, 0.5], [1.0, 0.0])
    t.reference_difference = 1e-3
    assert not t.agrees
    assert "DISAGREE" in render(t)


def test_bad_arguments():
    net = bp.Network([2, 3, 2], seed=0)
    with pytest.raises(ValueError, match="x must have N_0 = 2 values, got 3"):
        trace(net, [1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="d must have N_Q = 2 values, got 1"):
        trace(net, [1, 2], [0])
    t = trace(net, [1, 2], [0, 1])
    with pytest.raises(ValueError, match=r"lang must be one of \['en', 'ru'\], got 'de'"):
        render(t, lang="de")
