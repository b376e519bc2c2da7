"""Step 1: initialise the weights W^q and biases b^q.

Glorot-uniform (Glorot & Bengio, 2010) for sigmoid, tanh, identity, softplus and softmax
layers: W ~ U(−a, a), a = sqrt(6 / (N_{q−1} + N_q)). He-uniform (He et al., 2015) for the
ReLU family (relu, leaky_relu, elu, gelu): a = sqrt(6 / N_{q−1}). Biases start at zero.
Randomness comes only from the generator passed in, so a seed reproduces the weights.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["uniform_limit", "initialize"]


def uniform_limit(rule: str, fan_in: int, fan_out: int) -> float:
    """The half-width a of U(−a, a) for ``rule`` ("glorot" or "he")."""
    if rule == "glorot":
        return math.sqrt(6.0 / (fan_in + fan_out))
    if rule == "he":
        return math.sqrt(6.0 / fan_in)
    raise ValueError(f"init rule must be one of ['glorot', 'he'], got {rule!r}")


def initialize(W: list, b: list, rules: list, rng: np.random.Generator) -> None:
    """Fill W[q] (N_q, N_{q−1}) and b[q] for q = 1..Q in place; ``rules[q]`` names the rule."""
    for q in range(1, len(W)):
        fan_out, fan_in = W[q].shape
        a = uniform_limit(rules[q], fan_in, fan_out)
        W[q][...] = rng.uniform(-a, a, size=W[q].shape)
        b[q][...] = 0.0
