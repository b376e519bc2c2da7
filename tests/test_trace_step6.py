"""Step 6 in the trace: one gradient step by the engine, against NumPy doing the same step.

The oracle takes the same weights, PyTorch autograd's gradients (or, with dropout, the
trace's own masks), applies W <- W - eta dE/dW and b <- b - eta dE/db with NumPy, runs the
forward pass in NumPy and computes the loss itself: E after the step, W^q and b^q must equal
the trace's (which the engine's train_step computed).
"""

from __future__ import annotations

import numpy as np
import pytest

import betaprop as bp
from betaprop.explain.trace import as_dict, trace
from betaprop.explain.trace_text import render

from .test_trace import _autograd

F = {
    "sigmoid": lambda s: 1.0 / (1.0 + np.exp(-s)),
    "tanh": np.tanh,
    "relu": lambda s: np.maximum(s, 0.0),
    "identity": lambda s: s,
    "softmax": lambda s: np.exp(s - s.max()) / np.exp(s - s.max()).sum(),
}


def numpy_loss(W, b, activations, loss, x, d, masks=None):
    """E for one example, by NumPy alone (the seed's squared error or cross-entropy)."""
    y = np.asarray(x, dtype=np.float64)
    for q in range(1, len(W)):
        y = F[activations[q - 1]](W[q] @ y + b[q])
        if masks and q in masks:
            y = y * masks[q]
    if loss == "squared_error":
        return 0.5 * float(np.sum((y - d) ** 2))
    return -float(np.sum(d * np.log(y)))


@pytest.mark.parametrize(
    "sizes, activation, output, loss, eta",
    [
        ([2, 3, 2], "sigmoid", "sigmoid", "squared_error", 0.1),  # `betaprop trace`'s default
        ([3, 4, 4, 2], "tanh", "sigmoid", "squared_error", 0.5),
        ([4, 5, 3], "relu", "softmax", "cross_entropy", 0.05),
    ],
)
def test_step6_equals_numpys_gradient_step(sizes, activation, output, loss, eta):
    net = bp.Network(sizes, activation=activation, output=output, loss=loss, seed=3)
    rng = np.random.default_rng(1)
    x, d = rng.normal(size=sizes[0]), np.eye(sizes[-1])[0]
    t = trace(net, x, d, learning_rate=eta)
    grads = _autograd(t.net, x, d)
    W = [None] + [t.net.W[q] - eta * grads["dW"][q - 1] for q in range(1, t.net.Q + 1)]
    b = [None] + [t.net.b[q][:, 0] - eta * grads["db"][q - 1] for q in range(1, t.net.Q + 1)]
    for q in range(1, t.net.Q + 1):
        np.testing.assert_allclose(t.W_new[q], W[q], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(t.b_new[q], b[q], rtol=1e-12, atol=1e-15)
    before = [None] + [t.net.W[q] for q in range(1, t.net.Q + 1)]
    bias = [None] + [t.net.b[q][:, 0] for q in range(1, t.net.Q + 1)]
    np.testing.assert_allclose(t.loss, numpy_loss(before, bias, t.net.activations, loss, x, d))
    after = numpy_loss(W, b, t.net.activations, loss, x, d)
    np.testing.assert_allclose(t.loss_after, after, rtol=1e-12)
    assert t.loss_after < t.loss  # a small step downhill
    data = as_dict(t)
    assert data["learning_rate"] == eta and data["loss_after"] == t.loss_after
    assert data["W_new"]["1"] == t.W_new[1].tolist()


def test_step6_with_dropout_uses_the_traces_masks():
    net = bp.Network([3, 5, 2], "tanh", dtype="float64", seed=4, dropout=0.5)
    x, d = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.0])
    t = trace(net, x, d, learning_rate=0.2)
    W = [None] + [t.net.W[q] - 0.2 * t.dW[q] for q in (1, 2)]
    b = [None] + [t.net.b[q][:, 0] - 0.2 * t.db[q] for q in (1, 2)]
    after = numpy_loss(W, b, t.net.activations, "squared_error", x, d, t.mask)
    np.testing.assert_allclose(t.loss_after, after, rtol=1e-12)
    before = [None] + [t.net.W[q] for q in (1, 2)]
    bias = [None] + [t.net.b[q][:, 0] for q in (1, 2)]
    np.testing.assert_allclose(
        t.loss, numpy_loss(before, bias, t.net.activations, "squared_error", x, d, t.mask)
    )


def test_step6_in_the_text_trace():
    net = bp.Network([2, 3, 2], activation="sigmoid", output="sigmoid", seed=0)
    t = trace(net, [1.0, 0.5], [1.0, 0.0], learning_rate=0.5)
    text = render(t)
    assert "Step 6: one gradient step, learning rate eta = 0.5" in text
    assert "W^1 - η ∂E/∂W^1" in text and "b^2 - η ∂E/∂b^2" in text
    for value in (t.W_new[1][2, 1], t.b_new[2][0], t.loss, t.loss_after):
        assert f"{value:.6g}" in text
    assert text.index("Step 6") < text.index("Check:")
    ru = render(t, lang="ru")
    assert "Шаг 6: один шаг градиентного спуска" in ru and "E после шага" in ru
    assert "в обратном порядке" in ru and "размеры слоёв" in ru
    assert "$W^{1} - \\eta \\partial E/\\partial W^{1}$" in render(t, fmt="markdown")
    with pytest.raises(ValueError, match="learning_rate must be a number > 0, got 0"):
        trace(net, [1.0, 0.5], [1.0, 0.0], learning_rate=0)
