"""Every registered activation and loss, against central differences and PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from betaprop import activations, losses

ELEMENTWISE = sorted(n for n, a in activations.ACTIVATIONS.items() if not a.output_only)
ALL = sorted(activations.ACTIVATIONS)

# Independent definitions of f, written with torch.
TORCH_F = {
    "identity": lambda s: s,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda s: torch.nn.functional.leaky_relu(s, 0.01),
    "elu": lambda s: torch.nn.functional.elu(s, 1.0),
    "softplus": torch.nn.functional.softplus,
    "gelu": lambda s: torch.nn.functional.gelu(s, approximate="none"),
    "softmax": lambda s: torch.softmax(s, dim=0),
    "exp": torch.exp,
}


def test_every_activation_has_a_torch_oracle() -> None:
    assert set(TORCH_F) == set(activations.ACTIVATIONS)


def _points(rng: np.random.Generator) -> np.ndarray:
    s = rng.normal(scale=3.0, size=(5, 7))
    # keep away from the kinks of relu / leaky_relu, where f' is not defined
    return np.where(np.abs(s) < 1e-3, 0.5, s)


@pytest.mark.parametrize("name", ALL)
def test_forward_equals_torch(name: str) -> None:
    s = _points(np.random.default_rng(0))
    y = np.empty_like(s)
    activations.get_activation(name).forward(s, out=y, row=np.empty((2, 7)))
    expected = TORCH_F[name](torch.tensor(s)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_equals_central_differences(name: str) -> None:
    f = activations.get_activation(name)
    s = _points(np.random.default_rng(1))
    h = 1e-6
    plus, minus, y, fprime = (np.empty_like(s) for _ in range(4))
    f.forward(s + h, out=plus)
    f.forward(s - h, out=minus)
    f.forward(s, out=y)
    f.derivative(s, y, fprime)
    np.testing.assert_allclose(fprime, (plus - minus) / (2 * h), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_multiply_derivative_equals_torch_vjp(name: str) -> None:
    """beta <- f'(s) ⊙ beta (or J^T beta for softmax), against autograd."""
    rng = np.random.default_rng(2)
    s, beta = _points(rng), rng.normal(size=(5, 7))
    f = activations.get_activation(name)
    y = np.empty_like(s)
    f.forward(s, out=y, row=np.empty((2, 7)))
    result = beta.copy()
    f.multiply_derivative(s, y, result, np.empty_like(s), np.empty((1, 7)))
    st = torch.tensor(s, requires_grad=True)
    TORCH_F[name](st).backward(torch.tensor(beta))
    np.testing.assert_allclose(result, st.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ALL)
def test_no_overflow_or_nan_at_large_inputs(name: str, dtype: type) -> None:
    s = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]] * 3, dtype=dtype).T.copy()
    f = activations.get_activation(name)
    y, tmp, beta = np.empty_like(s), np.empty_like(s), np.ones_like(s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        f.forward(s, out=y, row=np.empty((2, 3), dtype=dtype))
        f.multiply_derivative(s, y, beta, tmp, np.empty((1, 3), dtype=dtype))
    assert np.isfinite(y).all() and np.isfinite(beta).all()
    assert y.dtype == dtype


# ------------------------------------------------------------------------ losses
def _loss_case(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = rng.normal(scale=2.0, size=(4, 6))
    if name == "cross_entropy":
        d = np.eye(4)[:, rng.integers(0, 4, 6)]
    elif name == "binary_cross_entropy":
        d = (rng.random((4, 6)) > 0.5).astype(float)
    elif name == "poisson":
        d = rng.poisson(2.0, size=(4, 6)).astype(float)  # counts, zeros included
    else:
        d = rng.normal(size=(4, 6))
    return s, d


TORCH_LOSS = {
    "squared_error": lambda s, d: 0.5 * ((s - d) ** 2).sum(0).mean(),
    "cross_entropy": lambda s, d: -(d * torch.log_softmax(s, dim=0)).sum(0).mean(),
    "binary_cross_entropy": lambda s, d: (
        torch.nn.functional.binary_cross_entropy_with_logits(s, d, reduction="sum") / s.shape[1]
    ),
    "poisson": lambda s, d: (torch.exp(s) - d * s + torch.xlogy(d, d) - d).sum(0).mean(),
}


def test_every_loss_has_a_torch_oracle() -> None:
    assert set(TORCH_LOSS) == set(losses.LOSSES)


@pytest.mark.parametrize("name", sorted(TORCH_LOSS))
def test_loss_value_and_fused_delta_equal_torch(name: str) -> None:
    """The value from pre-activations, and delta = y - d = dE/ds for the canonical pair."""
    loss = losses.get_loss(name)
    s, d = _loss_case(name, np.random.default_rng(3))
    f = activations.get_activation(loss.canonical_output)
    y = np.empty_like(s)
    lse = np.empty((1, 6))  # step 2 of a softmax leaves log sum_j e^{s_j} here
    f.forward(s, out=y, lse=lse)
    value = loss.value(s, y, d, lse)
    st = torch.tensor(s, requires_grad=True)
    expected = TORCH_LOSS[name](st, torch.tensor(d))
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-12)
    # sum over the batch of dE_i/ds = (y - d); the mean divides by n = 6
    np.testing.assert_allclose((y - d) / 6, st.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", sorted(TORCH_LOSS))
def test_output_gradient_equals_central_differences(name: str) -> None:
    """dE/dy of the general chain, against differences of the loss as a function of y."""
    loss = losses.get_loss(name)
    rng = np.random.default_rng(4)
    _, d = _loss_case(name, rng)
    y = rng.uniform(0.1, 0.9, size=(4, 6))
    if name == "cross_entropy":
        y /= y.sum(axis=0)

    def per_example(yv: np.ndarray) -> float:  # the textbook formulas, literally, in y
        if name == "squared_error":
            return 0.5 * float(((yv - d) ** 2).sum())
        if name == "cross_entropy":
            return -float((d * np.log(yv)).sum())
        if name == "poisson":
            return float((yv - d * np.log(yv)).sum())
        return -float((d * np.log(yv) + (1 - d) * np.log(1 - yv)).sum())

    numeric = np.empty_like(y)
    for i in np.ndindex(y.shape):
        e = np.zeros_like(y)
        e[i] = 1e-7
        numeric[i] = (per_example(y + e) - per_example(y - e)) / 2e-7
    analytic = np.empty_like(y)
    loss.output_gradient(y, d, analytic)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(TORCH_LOSS))
def test_loss_finite_at_extreme_pre_activations(name: str, dtype: type) -> None:
    loss = losses.get_loss(name)
    s = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=dtype)
    d = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)  # confidently wrong: a huge loss
    y = np.empty_like(s)
    lse = np.empty((1, 2), dtype)
    activations.get_activation(loss.canonical_output).forward(s, out=y, lse=lse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss.value(s, y, d, lse)
    assert np.isfinite(value) and value > 100
