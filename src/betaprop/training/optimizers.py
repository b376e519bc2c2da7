"""Step 6: optimizers.

An optimizer is frozen hyperparameters plus an explicit state (``init`` / ``update``), as in
optax. ``update`` changes the flat parameter array in place with a handful of whole-array
operations, whatever the depth of the network. The update rules are exactly those of
``torch.optim`` (so trajectories can be compared step for step), except that
``weight_decay`` applies to the weights only, ``params[:n_weights]``, never to the biases
(as scikit-learn's ``alpha``).

The current learning rate lives in the state (``state["lr"]``), where a schedule sets it
between epochs. The state holds only what a checkpoint saves; the work arrays of an update
are scratch, kept per optimizer outside the state (``Optimizer.scratch``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "OPTIMIZERS",
    "get_optimizer",
]

Array = np.ndarray
# Adam updates its flat arrays this many elements at a time: 256-512 KiB per array, so a
# block's five arrays stay in cache, a few blocks pay little Python overhead, and the scratch
# is two blocks whatever the model's size (docs/performance.md, "Adam's update in blocks")
BLOCK = 1 << 16


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _in_range(name: str, value: float, low: float, high: float, high_open: bool = True) -> None:
    ok = (
        isinstance(value, (int, float))
        and low <= value
        and (value < high if high_open else value <= high)
    )
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value!r}")


@dataclass(frozen=True)
class Optimizer:
    """Base class: ``state = opt.init(params)``, then ``opt.update(params, grads, state, n)``.

    ``update`` reads the current learning rate from ``state["lr"]`` and counts steps in
    ``state["t"]``; ``n_weights`` is the length of the weight block at the start of the
    flat array (the part that ``weight_decay`` applies to), passed as ``n``.
    """

    learning_rate: float = 0.01
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _positive("learning_rate", self.learning_rate)
        _in_range("weight_decay", self.weight_decay, 0.0, math.inf)

    def init(self, params: Array) -> dict:
        """A fresh state for a flat parameter array: what a checkpoint saves, nothing else."""
        return {"lr": float(self.learning_rate), "t": 0}

    def scratch(self, params: Array, which: int) -> Array:
        """Work array ``which`` (0 or 1) shaped like ``params``: allocated once, never saved.

        Scratch is written before it is read within one update, so the optimizer keeps it
        (outside its fields: not compared, copied or pickled). Each thread has its own, so
        one optimizer may update separate networks from separate threads at once.
        """
        local = self.__dict__.get("_work")
        if local is None:
            local = threading.local()
            object.__setattr__(self, "_work", local)  # a frozen dataclass's scratch
        work = getattr(local, "arrays", None)
        if work is None or work[0].shape != params.shape or work[0].dtype != params.dtype:
            work = local.arrays = (np.empty_like(params), np.empty_like(params))
        return work[which]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_work"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def update(self, params: Array, grads: Array, state: dict, n_weights: int) -> None:
        """One step of the rule on the flat arrays, in place."""
        raise NotImplementedError

    def _decayed_gradient(self, params: Array, grads: Array, state: dict, n_weights: int) -> Array:
        """g = grad + lambda p on the weights (the L2 penalty), in scratch space.

        Without weight decay g is ``grads`` itself (one pass fewer): callers only read it.
        """
        if not self.weight_decay:
            return grads
        g = self.scratch(params, 0)
        np.copyto(g, grads)
        h = self.scratch(params, 1)[:n_weights]
        np.multiply(params[:n_weights], self.weight_decay, out=h)
        g[:n_weights] += h
        return g


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent with momentum and Nesterov's variant (torch.optim.SGD).

    g <- grad + lambda p (weights only);  v <- mu v + g;
    p <- p - eta (g + mu v) with nesterov, p - eta v with momentum, p - eta g without.
    eta: ``learning_rate``, mu: ``momentum``, lambda: ``weight_decay``.
    """

    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range("momentum", self.momentum, 0.0, 1.0)
        if self.nesterov and self.momentum == 0:
            raise ValueError("momentum must be > 0 when nesterov=True, got 0")

    def init(self, params: Array) -> dict:
        state = super().init(params)
        if self.momentum:
            state["v"] = np.zeros_like(params)
        return state

    def update(self, params: Array, grads: Array, state: dict, n_weights: int) -> None:
        state["t"] += 1
        g, h = self._decayed_gradient(params, grads, state, n_weights), self.scratch(params, 1)
        if self.momentum:
            v = state["v"]
            v *= self.momentum  # v <- mu v + g
            v += g
            if self.nesterov:
                np.multiply(v, self.momentum, out=h)  # g <- g + mu v
                g = np.add(g, h, out=h)
            else:
                g = v
        np.multiply(g, state["lr"], out=h)  # p <- p - eta g
        params -= h


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with torch.optim.Adam's bias correction.

    g <- grad + lambda p (weights only);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - eta / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    With ``epsilon_hat=True`` eps is the paper's eps-hat (Kingma & Ba, end of section 2),
    added before the bias correction, as in scikit-learn's MLP and Keras:
    p <- p - eta sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
    """

    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.0
    epsilon_hat: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range("beta_1", self.beta_1, 0.0, 1.0)
        _in_range("beta_2", self.beta_2, 0.0, 1.0)
        _positive("epsilon", self.epsilon)

    def init(self, params: Array) -> dict:
        state = super().init(params)
        state["m"] = np.zeros_like(params)
        state["v"] = np.zeros_like(params)
        return state

    def update(self, params: Array, grads: Array, state: dict, n_weights: int) -> None:
        state["t"] += 1
        self._adam_step(params, grads, state, n_weights, self.weight_decay)

    def _adam_step(
        self, params: Array, grads: Array, state: dict, n_weights: int, decay: float
    ) -> None:
        """The update, ``BLOCK`` elements at a time (one block when the parameters fit in
        one): the same element-wise operations in the same order for every element (the
        numbers of one block), with the work in cache and block-sized scratch.

        Deviation from torch's order of operations (the same values to rounding): with
        c = sqrt(1 - b2^t), m / (sqrt(v) / c + eps) = c m / (sqrt(v) + c eps), so both forms
        of eps share one rule, p <- p - s m / (sqrt(v) + e), with s = eta c / (1 - b1^t)
        and e = c eps (torch) or eps (eps-hat): one pass fewer over the arrays.
        """
        t, m, v = state["t"], state["m"], state["v"]
        correction = math.sqrt(1.0 - self.beta_2**t)  # c
        step_size = state["lr"] / (1.0 - self.beta_1**t) * correction  # s
        eps = self.epsilon if self.epsilon_hat else self.epsilon * correction  # e
        size, block = params.size, BLOCK
        if size <= block:  # one block: the arrays themselves
            h = self.scratch(params, 1)
            g = self._decayed_block(params, grads, n_weights, decay, self.scratch(params, 0), h)
            self._adam_block(params, g, m, v, h, step_size, eps)
            return
        h_work, g_work = self.scratch(params[:block], 1), self.scratch(params[:block], 0)
        for start in range(0, size, block):
            end = min(start + block, size)
            p, h = params[start:end], h_work[: end - start]
            g = grads[start:end]
            if start < n_weights:
                g = self._decayed_block(p, g, n_weights - start, decay, g_work[: end - start], h)
            self._adam_block(p, g, m[start:end], v[start:end], h, step_size, eps)

    @staticmethod
    def _decayed_block(p: Array, grad: Array, w: int, decay: float, g: Array, h: Array) -> Array:
        """g <- grad + lambda p on the block's first w elements (its weights), in ``g``;
        ``grad`` itself without decay (the block is then only read)."""
        if not decay:
            return grad
        w = min(w, p.size)
        np.copyto(g, grad)
        np.multiply(p[:w], decay, out=h[:w])
        g[:w] += h[:w]
        return g

    def _adam_block(
        self, p: Array, g: Array, m: Array, v: Array, h: Array, step_size: float, eps: float
    ) -> None:
        """One block of the update, in place; ``h`` is scratch."""
        m *= self.beta_1  # m <- b1 m + (1 - b1) g
        np.multiply(g, 1.0 - self.beta_1, out=h)
        m += h
        v *= self.beta_2  # v <- b2 v + (1 - b2) g^2
        np.multiply(g, g, out=h)
        h *= 1.0 - self.beta_2
        v += h
        np.sqrt(v, out=h)  # p <- p - s m / (sqrt(v) + e)
        h += eps
        np.divide(m, h, out=h)
        h *= step_size
        p -= h


@dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019; torch.optim.AdamW).

    p <- p (1 - eta lambda) on the weights only, then the Adam step without L2 term.
    """

    weight_decay: float = 0.01

    def update(self, params: Array, grads: Array, state: dict, n_weights: int) -> None:
        state["t"] += 1
        if self.weight_decay:
            params[:n_weights] *= 1.0 - state["lr"] * self.weight_decay
        self._adam_step(params, grads, state, n_weights, 0.0)


@dataclass(frozen=True)
class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop).

    g <- grad + lambda p (weights only);  a <- alpha a + (1 - alpha) g^2;
    centered: c <- alpha c + (1 - alpha) g, and a - c^2 replaces a below;
    r = sqrt(a) + eps;  with momentum: u <- mu u + g / r, p <- p - eta u;
    else p <- p - eta g / r.
    """

    learning_rate: float = 0.01
    alpha: float = 0.99
    epsilon: float = 1e-8
    momentum: float = 0.0
    centered: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range("alpha", self.alpha, 0.0, 1.0)
        _in_range("momentum", self.momentum, 0.0, 1.0)
        _positive("epsilon", self.epsilon)

    def init(self, params: Array) -> dict:
        state = super().init(params)
        state["a"] = np.zeros_like(params)
        if self.centered:
            state["c"] = np.zeros_like(params)
        if self.momentum:
            state["u"] = np.zeros_like(params)
        return state

    def update(self, params: Array, grads: Array, state: dict, n_weights: int) -> None:
        state["t"] += 1
        g, a = self._decayed_gradient(params, grads, state, n_weights), state["a"]
        h = self.scratch(params, 1)
        a *= self.alpha  # a <- alpha a + (1 - alpha) g^2
        np.multiply(g, g, out=h)
        h *= 1.0 - self.alpha
        a += h
        if self.centered:
            c = state["c"]
            c *= self.alpha  # c <- alpha c + (1 - alpha) g
            np.multiply(g, 1.0 - self.alpha, out=h)
            c += h
            np.multiply(c, c, out=h)  # r = sqrt(a - c^2) + eps
            np.subtract(a, h, out=h)
            np.sqrt(h, out=h)
        else:
            np.sqrt(a, out=h)  # r = sqrt(a) + eps
        h += self.epsilon
        np.divide(g, h, out=h)  # g / r
        if self.momentum:
            u = state["u"]
            u *= self.momentum
            u += h
            h = u
        step = self.scratch(params, 0)
        np.multiply(h, state["lr"], out=step)
        params -= step


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
}


def get_optimizer(name: str | Optimizer, **hyperparameters: object) -> Optimizer:
    """An optimizer from its registry name and hyperparameters (or the instance itself)."""
    if isinstance(name, Optimizer):
        return name
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name.lower()](**hyperparameters)  # type: ignore[arg-type]
