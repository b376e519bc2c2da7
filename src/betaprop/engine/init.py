"""Step 1: initialise the weights W^q and biases b^q.

By default each layer takes the rule that suits its activation (``Activation.init``):
Glorot-uniform (Glorot & Bengio, 2010) for sigmoid, tanh, identity, softplus and softmax
layers, W ~ U(−a, a), a = sqrt(6 / (N_{q−1} + N_q)); He-uniform (He et al., 2015) for the
ReLU family, a = sqrt(6 / N_{q−1}). ``init=`` chooses one rule for every layer:

- glorot: W ~ U(−a, a), a = sqrt(6 / (fan_in + fan_out)); b = 0
- he: a = sqrt(6 / fan_in);  lecun: a = sqrt(3 / fan_in); b = 0
- glorot_normal, he_normal, lecun_normal: W ~ N(0, a^2 / 3), the same variance; b = 0
- torch (``torch.nn.Linear``'s default): W, b ~ U(−a, a), a = 1 / sqrt(fan_in)

Randomness comes only from the generator passed in, so a seed reproduces the weights.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["RULES", "uniform_limit", "initialize", "check_rule"]

RULES = ("glorot", "glorot_normal", "he", "he_normal", "lecun", "lecun_normal", "torch")


def check_rule(rule: object) -> str:
    """``rule`` if it names an initialisation, else a ValueError listing them."""
    if rule not in RULES:
        raise ValueError(f"init must be one of {list(RULES)}, got {rule!r}")
    return str(rule)


def uniform_limit(rule: str, fan_in: int, fan_out: int) -> float:
    """The half-width a of U(−a, a) for a uniform ``rule`` (glorot, he, lecun, torch)."""
    if rule == "glorot":
        return math.sqrt(6.0 / (fan_in + fan_out))
    if rule == "he":
        return math.sqrt(6.0 / fan_in)
    if rule == "lecun":
        return math.sqrt(3.0 / fan_in)
    if rule == "torch":
        return 1.0 / math.sqrt(fan_in)
    raise ValueError(f"init rule must be one of ['glorot', 'he', 'lecun', 'torch'], got {rule!r}")


def initialize(W: list, b: list, rules: list, rng: np.random.Generator) -> None:
    """Fill W[q] (N_q, N_{q−1}) and b[q] for q = 1..Q in place; ``rules[q]`` names the rule."""
    for q in range(1, len(W)):
        fan_out, fan_in = W[q].shape
        rule = check_rule(rules[q])
        if rule.endswith("_normal"):  # the same variance as the uniform rule: a^2 / 3
            std = uniform_limit(rule.removesuffix("_normal"), fan_in, fan_out) / math.sqrt(3.0)
            W[q][...] = rng.normal(0.0, std, size=W[q].shape)
        else:
            a = uniform_limit(rule, fan_in, fan_out)
            W[q][...] = rng.uniform(-a, a, size=W[q].shape)
        if rule == "torch":
            a = 1.0 / math.sqrt(fan_in)
            b[q][...] = rng.uniform(-a, a, size=b[q].shape)
        else:
            b[q][...] = 0.0
