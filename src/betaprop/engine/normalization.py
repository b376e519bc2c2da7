"""Batch normalisation and dropout: the seed's remedy for vanishing gradients, in its notation.

With normalisation on hidden layer q, step 2 gains one line between the product and f:

    u^q = gamma^q ⊙ (s^q - mu^q) / sigma^q + shift^q,      y^q = f_q(u^q)

mu^q and sigma^q are the batch's mean and biased standard deviation per neuron (with eps),
in training; at inference the running estimates (updated as ``torch.nn.BatchNorm1d`` does:
momentum 0.1, unbiased variance). ``shift`` is the literature's beta, renamed because
``beta[q]`` is the seed's local error. The local error keeps its meaning, dE/ds^q, so step 5
is unchanged; step 4 gains one line, from the error at u^q to the error at s^q:

    beta^q <- (gamma^q / sigma^q) ⊙ (beta^q - mean(beta^q) - xhat^q ⊙ mean(beta^q ⊙ xhat^q))

with dE/dgamma^q = sum over the batch of beta^q ⊙ xhat^q and dE/dshift^q = sum of beta^q,
taken from the error at u^q. Means and sums run over the n examples (the columns).

Dropout on hidden layer q (inverted, rate p): y^q <- y^q ⊙ m^q / (1 - p) in training, with
m^q_j ~ Bernoulli(1 - p); nothing at inference. Step 4 multiplies the incoming
(W^{q+1})^T beta^{q+1} by the same m^q / (1 - p) first.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = [
    "MOMENTUM",
    "EPS",
    "normalize_batch",
    "normalize_running",
    "normalize_backward",
    "draw_mask",
    "BatchSum",
]

Array = np.ndarray
MOMENTUM = 0.1  # running <- (1 - momentum) running + momentum batch  (torch's default)
EPS = 1e-5  # sigma = sqrt(variance + eps)  (torch's default)


class BatchSum(Protocol):
    """Data parallel (training/distributed.py): one batch's columns are spread over processes.

    ``total(a)`` replaces the (N_q, 1) array ``a`` by its sum over the processes, in place;
    ``total.n`` is the whole batch's size. The kernels below call it where they sum over
    the columns, so every process gets the statistics of the whole batch.
    """

    n: int

    def __call__(self, a: Array) -> None: ...


def normalize_batch(
    s: Array,
    gamma: Array,
    shift: Array,
    xhat: Array,
    u: Array,
    mean: Array,
    inv_std: Array,
    running: tuple[Array, Array] | None,
    total: BatchSum | None = None,
) -> None:
    """u = gamma ⊙ (s - mu) / sigma + shift with the batch's statistics (training).

    s, xhat, u: (N_q, n); gamma, shift, mean, inv_std: (N_q, 1). Writes xhat = (s - mu) /
    sigma, mean = mu and inv_std = 1 / sigma (kept for step 4), and, when ``running`` =
    (running mean, running variance) is given, updates them as torch does. ``total``
    (data parallel): the sums run over the whole batch, all processes' columns.
    """
    n = s.shape[1] if total is None else total.n
    np.add.reduce(s, axis=1, keepdims=True, out=mean)
    if total is not None:
        total(mean)  # data parallel: the sum over all processes' columns
    mean /= n  # mu = (1/n) sum_i s_i
    np.subtract(s, mean, out=xhat)
    np.square(xhat, out=u)
    np.add.reduce(u, axis=1, keepdims=True, out=inv_std)
    if total is not None:
        total(inv_std)  # data parallel: the sum over all processes' columns
    inv_std /= n  # sigma^2 = (1/n) sum_i (s_i - mu)^2, biased
    if running is not None:
        running_mean, running_var = running
        running_mean *= 1.0 - MOMENTUM
        running_mean += MOMENTUM * mean
        running_var *= 1.0 - MOMENTUM
        running_var += (MOMENTUM * n / (n - 1)) * inv_std  # unbiased: n / (n - 1)
    inv_std += EPS
    np.sqrt(inv_std, out=inv_std)
    np.divide(1.0, inv_std, out=inv_std)  # 1 / sigma
    xhat *= inv_std  # xhat = (s - mu) / sigma
    np.multiply(xhat, gamma, out=u)
    u += shift  # u = gamma ⊙ xhat + shift


def normalize_running(
    s: Array,
    gamma: Array,
    shift: Array,
    u: Array,
    running_mean: Array,
    running_var: Array,
    scale: Array,
) -> None:
    """u = gamma ⊙ (s - running mean) / sqrt(running variance + eps) + shift (inference).

    ``scale`` (N_q, 1) is scratch.
    """
    np.add(running_var, EPS, out=scale)
    np.sqrt(scale, out=scale)
    np.divide(gamma, scale, out=scale)  # gamma / sigma
    np.subtract(s, running_mean, out=u)
    u *= scale
    u += shift


def normalize_backward(
    beta: Array,
    xhat: Array,
    gamma: Array,
    inv_std: Array,
    dgamma: Array,
    dshift: Array,
    tmp: Array,
    column: Array,
    total: BatchSum | None = None,
) -> None:
    """Step 4's extra line: beta (the error at u) becomes the error at s, in place.

    Also writes dE/dgamma = sum_i beta_i ⊙ xhat_i and dE/dshift = sum_i beta_i. ``tmp``
    (N_q, n) and ``column`` (N_q, 1) are scratch. ``total`` (data parallel): the two means
    run over the whole batch; dgamma and dshift stay this process's sums (the gradient's
    all-reduce adds them up).
    """
    n = beta.shape[1] if total is None else total.n
    np.add.reduce(beta, axis=1, keepdims=True, out=dshift)  # dE/dshift = sum_i beta_i
    np.multiply(beta, xhat, out=tmp)
    np.add.reduce(tmp, axis=1, keepdims=True, out=dgamma)  # dE/dgamma = sum_i beta_i xhat_i
    # beta <- (gamma / sigma) ⊙ (beta - mean(beta) - xhat ⊙ mean(beta ⊙ xhat))
    np.divide(dgamma, n, out=column)
    if total is not None:
        total(column)  # data parallel: the mean over all processes' columns
    np.multiply(xhat, column, out=tmp)
    beta -= tmp
    np.divide(dshift, n, out=column)
    if total is not None:
        total(column)  # data parallel: the mean over all processes' columns
    beta -= column
    np.multiply(gamma, inv_std, out=column)
    beta *= column


def draw_mask(rng: np.random.Generator, p: float, mask: Array) -> None:
    """m / (1 - p) into ``mask``: each entry 1 / (1 - p) with probability 1 - p, else 0."""
    rng.random(dtype=mask.dtype, out=mask)
    np.greater_equal(mask, p, out=mask)  # m_j = 1 with probability 1 - p
    mask *= 1.0 / (1.0 - p)
