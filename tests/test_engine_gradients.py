"""Steps 2-5 of the whole network against three independent oracles.

1. central finite differences in float64 (betaprop.engine.gradcheck);
2. the literal per-example, per-neuron transcription of the seed (betaprop.reference);
3. PyTorch autograd on the same weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import betaprop as bp
from betaprop import activations, losses

HIDDEN = sorted(activations.names(hidden_only=True))
PAIRS = [(loss, None) for loss in sorted(losses.LOSSES)] + [
    ("squared_error", name) for name in sorted(activations.ACTIVATIONS) if name != "identity"
]


def _targets(loss: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    if loss == "cross_entropy":
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) > 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(2.0, size=(n, k)).astype(float)
    return rng.normal(size=(n, k))


def _inputs(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    return rng.normal(size=(n, m))


@pytest.mark.parametrize("hidden", HIDDEN)
def test_finite_differences_every_hidden_activation(hidden: str) -> None:
    rng = np.random.default_rng(10)
    net = bp.Network([3, 4, 5, 2], activation=hidden, loss="squared_error", dtype="float64", seed=1)
    net.params[net.n_weights :] = rng.normal(scale=0.3, size=net.n_params - net.n_weights)
    report = bp.gradcheck(net, _inputs(rng, 6, 3), _targets("squared_error", 6, 2, rng))
    assert report.passed, str(report)
    assert report.max_error <= 1e-7
    assert [(r.layer, r.name) for r in report.rows] == [
        (q, p) for q in (1, 2, 3) for p in ("W", "b")
    ]


@pytest.mark.parametrize(("loss", "output"), PAIRS)
def test_finite_differences_every_loss_pair(loss: str, output: str | None) -> None:
    rng = np.random.default_rng(11)
    net = bp.Network(
        [3, 5, 4], activation="tanh", output=output, loss=loss, dtype="float64", seed=2
    )
    report = bp.gradcheck(net, _inputs(rng, 5, 3), _targets(loss, 5, 4, rng))
    assert report.max_error <= 1e-7, str(report)


def test_gradcheck_detects_a_wrong_gradient() -> None:
    """The checker must fail when backpropagation is wrong (here: f' of tanh off by 1 %)."""
    tanh = activations.get_activation("tanh")

    def wrong(s: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
        np.subtract(1.0, y * y, out=out)
        out *= 1.01

    object.__setattr__(tanh, "derivative_fn", wrong)
    try:
        rng = np.random.default_rng(12)
        net = bp.Network([3, 4, 2], activation="tanh", dtype="float64", seed=3)
        report = bp.gradcheck(net, _inputs(rng, 4, 3), _targets("squared_error", 4, 2, rng))
    finally:
        object.__setattr__(tanh, "derivative_fn", activations._tanh_derivative)
    assert not report.passed
    assert report.rows[0].normwise > 1e-4  # layer 1 sees the wrong f'
    assert report.rows[-1].normwise < 1e-7  # the output layer does not


@pytest.mark.parametrize(("loss", "output"), PAIRS)
def test_fast_engine_equals_literal_reference(loss: str, output: str | None) -> None:
    rng = np.random.default_rng(13)
    net = bp.Network(
        [3, 4, 3, 4],
        activation=["sigmoid", "elu"],
        output=output,
        loss=loss,
        dtype="float64",
        seed=4,
    )
    net.params[net.n_weights :] = rng.normal(scale=0.5, size=net.n_params - net.n_weights)
    X, D = _inputs(rng, 5, 3), _targets(loss, 5, 4, rng)
    value = net.loss_and_gradients(X, D)
    dW, db, expected = bp.reference.gradients(net, X, D)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)
    for q in range(1, net.Q + 1):
        np.testing.assert_allclose(net.dW[q], dW[q], rtol=0, atol=1e-12)
        np.testing.assert_allclose(net.db[q], db[q], rtol=0, atol=1e-12)


def test_reference_local_errors_equal_engine_beta() -> None:
    """beta[q] of the engine (1/n folded in) is the per-example beta of the seed, over n."""
    rng = np.random.default_rng(14)
    net = bp.Network([2, 3, 3, 2], activation="sigmoid", output="sigmoid", dtype="float64", seed=5)
    X, D = _inputs(rng, 4, 2), rng.random((4, 2))
    net.loss_and_gradients(X, D)
    for i, (x, d) in enumerate(zip(X, D, strict=True)):
        s, y = bp.reference.forward_example(net, x)
        beta = bp.reference.backward_example(net, s, y, d)
        assert net.beta[0] is None  # step 4 never computes beta^0
        for q in range(1, net.Q + 1):
            np.testing.assert_allclose(net.beta[q][:, i] * 4, beta[q], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(net.s[q][:, i], s[q], rtol=1e-13)


# ------------------------------------------------------------------------ PyTorch autograd
TORCH_ACT = {
    "identity": torch.nn.Identity,
    "sigmoid": torch.nn.Sigmoid,
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "leaky_relu": lambda: torch.nn.LeakyReLU(0.01),
    "elu": lambda: torch.nn.ELU(1.0),
    "softplus": torch.nn.Softplus,
    "gelu": lambda: torch.nn.GELU(approximate="none"),
    "softmax": lambda: torch.nn.Softmax(dim=1),
    "exp": lambda: _Exp(),
}


class _Exp(torch.nn.Module):
    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.exp(s)


def torch_model(net: bp.Network) -> torch.nn.Sequential:
    """An nn.Sequential with the same weights (rows: samples, as torch expects)."""
    layers: list[torch.nn.Module] = []
    for q in range(1, net.Q + 1):
        linear = torch.nn.Linear(net.sizes[q - 1], net.sizes[q]).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(net.W[q].astype(np.float64)))
            linear.bias.copy_(torch.from_numpy(net.b[q][:, 0].astype(np.float64)))
        layers += [linear, TORCH_ACT[net.activations[q - 1]]()]
    return torch.nn.Sequential(*layers)


def torch_loss(net: bp.Network, model: torch.nn.Sequential, X: np.ndarray, D: np.ndarray):
    Xt, Dt = torch.from_numpy(X), torch.from_numpy(D)
    logits = model[:-1](Xt)  # pre-activation of the output layer
    y = model[-1](logits)
    if net.loss.name == "cross_entropy":
        value = -(Dt * torch.log_softmax(logits, dim=1)).sum(1).mean()
    elif net.loss.name == "binary_cross_entropy":
        value = torch.nn.functional.binary_cross_entropy_with_logits(logits, Dt, reduction="none")
        value = value.sum(1).mean()
    elif net.loss.name == "poisson":
        value = (torch.exp(logits) - Dt * logits + torch.xlogy(Dt, Dt) - Dt).sum(1).mean()
    else:
        value = 0.5 * ((y - Dt) ** 2).sum(1).mean()
    return value, y


def _random_case(seed: int) -> tuple[bp.Network, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Q = int(rng.integers(1, 7))  # depth 1-6
    sizes = [int(v) for v in rng.integers(1, 9, size=Q + 1)]
    loss, output = PAIRS[int(rng.integers(0, len(PAIRS)))]
    if loss == "cross_entropy" or output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    hidden = [HIDDEN[int(i)] for i in rng.integers(0, len(HIDDEN), size=Q - 1)]
    net = bp.Network(sizes, hidden, output, loss, dtype="float64", seed=seed)
    net.params[net.n_weights :] = rng.normal(scale=0.2, size=net.n_params - net.n_weights)
    n = int(rng.integers(1, 65))  # batch 1-64
    return net, _inputs(rng, n, sizes[0]), _targets(loss, n, sizes[-1], rng)


@pytest.mark.parametrize("seed", range(40))
def test_loss_outputs_gradients_equal_torch_autograd(seed: int) -> None:
    net, X, D = _random_case(seed)
    model = torch_model(net)
    value, y = torch_loss(net, model, X, D)
    value.backward()
    ours = net.loss_and_gradients(X, D)
    assert ours == pytest.approx(value.item(), rel=1e-10, abs=1e-14)
    np.testing.assert_allclose(net.forward(X), y.detach().numpy(), rtol=1e-10, atol=1e-14)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    net.loss_and_gradients(X, D)
    for q, linear in enumerate(linears, start=1):
        np.testing.assert_allclose(net.dW[q], linear.weight.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(
            net.db[q][:, 0], linear.bias.grad.numpy(), rtol=1e-10, atol=1e-14
        )


def test_random_cases_cover_every_activation_and_loss() -> None:
    """The 40 random architectures above exercise every registry entry."""
    seen_activations, seen_losses = set(), set()
    for seed in range(40):
        net, _, _ = _random_case(seed)
        seen_activations |= set(net.activations)
        seen_losses.add(net.loss.name)
    assert seen_losses == set(losses.LOSSES)
    assert seen_activations == set(activations.ACTIVATIONS)
