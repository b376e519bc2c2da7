"""Steps 2-6 for one example, with the seed's formulas and the actual numbers.

``trace(net, x, d)`` runs the fast engine on one example (n = 1, so the folded 1/n of the
batch mean is 1 and beta^q is the seed's beta^q exactly) on a float64 copy of the network,
and keeps every intermediate: s^q and y^q (step 2), y^Q - d, f'(s^Q) and delta^Q (step 3),
(W^{q+1})^T beta^{q+1}, f'(s^q) and beta^q for q = Q-1 .. 1 (step 4), dE/dW^q and dE/db^q
(step 5), and step 6: one gradient step W^q <- W^q - eta dE/dW^q, b^q <- b^q - eta dE/db^q
taken by the engine's ``train_step`` (plain SGD, learning rate eta) on a second copy, with the
loss E before and after it (the same example, batch and dropout masks). It also runs the
literal per-neuron transcription ``betaprop.reference`` on the same example and records the
largest difference between the two.

With batch normalisation (and dropout) the trace is a training pass, as in ``fit``. Dropout
draws its masks m^q from a copy of the network's generator and shows them in step 2 and
step 4. Batch normalisation needs a batch: the example becomes column 1 of a small batch
(``batch``: the other examples, by default 3 seeded random ones), and the trace shows
column 1's numbers with the batch's mu^q and sigma^q, xhat^q and u^q in step 2, and the
error at u^q, its way back to s^q, dE/dgamma^q and dE/dshift^q in step 4; beta^q is then
per example (n times the engine's), and step 5's gradients are the batch means.

``formulas`` describes each stage's arithmetic as small expression trees over the trace's
quantities (``as_dict(t)["lines"]``): the page writes each one twice, in symbols and with its
numbers, so it never needs to know which layer operations a network has.

``render`` writes the trace as text or Markdown, in English or in Russian (the seed's
language); ``as_dict`` gives every number at full precision (JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import reference
from ..engine.network import Network
from ..engine.workspace import Workspace

__all__ = ["Trace", "trace", "trace_steps", "as_dict", "formulas", "LANGUAGES", "FORMATS"]

Array = np.ndarray
LANGUAGES = ("en", "ru")
FORMATS = ("text", "markdown", "json")
# The engine and the literal reference must agree to this (float64, one example).
AGREEMENT = 1e-12


@dataclass
class Trace:
    """Every number of steps 2-5 for one example (float64; lists indexed by layer q)."""

    net: Network
    x: Array
    d: Array
    s: list[Any] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    error: Array | None = None  # y^Q - d
    f_prime: list[Any] = field(default_factory=list)  # f'(s^q), None where not element-wise
    back: list[Any] = field(default_factory=list)  # (W^{q+1})^T beta^{q+1}, q < Q
    beta: list[Any] = field(default_factory=list)
    dW: list[Any] = field(default_factory=list)
    db: list[Any] = field(default_factory=list)
    loss: float = 0.0
    reference_difference: float = 0.0
    n: int = 1  # examples in the pass (more than 1 with batch normalisation)
    # per normalised layer q: mu, sigma, xhat, u, error_u, dgamma, dshift (column 1's
    # values; mu, sigma, dgamma, dshift per neuron); per dropout layer: the mask m / (1 - p)
    normalization: dict[int, dict[str, Array]] = field(default_factory=dict)
    mask: dict[int, Array] = field(default_factory=dict)
    f_value: dict[int, Array] = field(default_factory=dict)  # f(u^q) before mask and skip
    g: list[Any] = field(default_factory=list)  # dE/dy^q, q < Q (with residual layers)
    output_gradient: Array | None = None  # dE/dy^Q where the loss is not the seed's
    # step 6: the learning rate eta, W^q and b^q after the step, E after it
    learning_rate: float = 0.1
    W_new: list[Any] = field(default_factory=list)
    b_new: list[Any] = field(default_factory=list)
    loss_after: float = 0.0
    after: Network | None = None  # the float64 network after step 6 (not part of as_dict)

    @property
    def agrees(self) -> bool:
        """Whether the literal reference and the engine agree to 1e-12 (relative)."""
        scale = max(
            1.0, *(float(np.abs(a).max()) for a in self.beta[1:] + self.dW[1:] + self.y[1:])
        )
        return self.reference_difference <= AGREEMENT * scale


def trace(
    net: Network,
    x: Sequence[float] | Array,
    d: Sequence[float] | Array,
    batch: tuple[Array, Array] | None = None,
    learning_rate: float = 0.1,
) -> Trace:
    """Steps 2-6 of the engine on one example x (N_0,), target d (N_Q,), all kept.

    ``batch`` = (X, D), (m, N_0) and (m, N_Q): the other examples of the pass when the
    network has batch normalisation (default: 3 seeded random ones); ignored otherwise.
    ``learning_rate``: eta of step 6 (plain gradient descent, one step).
    """
    if not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a number > 0, got {learning_rate!r}")
    twin = net.astype("float64")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    if x.shape != (net.sizes[0],):
        raise ValueError(f"x must have N_0 = {net.sizes[0]} values, got {x.shape[0]}")
    if d.shape != (net.sizes[-1],):
        raise ValueError(f"d must have N_Q = {net.sizes[-1]} values, got {d.shape[0]}")
    Q = twin.Q
    X, D = x[None, :], d[None, :]
    if any(_kind(twin, q) == "batch" for q in range(1, Q + 1)):  # a batch for its statistics
        if batch is None:
            rng = np.random.default_rng(0)
            batch = (
                rng.normal(size=(3, twin.sizes[0])),
                twin.loss.sample_targets(rng, 3, twin.sizes[-1]),
            )
        X = np.vstack([X, twin.check_X(batch[0])])
        D = np.vstack([D, twin.check_D(batch[1], len(batch[1]))])
    n = len(X)
    t = Trace(net=twin, x=x, d=d, n=n, learning_rate=float(learning_rate))
    t.loss = twin.loss_and_gradients(X, D)  # a training pass; n = 1: beta is per example
    ws = twin.workspace(n)
    t.s = [None] + [twin.s[q][:, 0].copy() for q in range(1, Q + 1)]
    t.y = [x.copy()] + [twin.y[q][:, 0].copy() for q in range(1, Q + 1)]
    t.beta = [None] + [n * twin.beta[q][:, 0] for q in range(1, Q + 1)]
    t.dW = [None] + [twin.dW[q].copy() for q in range(1, Q + 1)]
    t.db = [None] + [twin.db[q][:, 0].copy() for q in range(1, Q + 1)]
    t.error = t.y[Q] - d
    if not twin.loss.seed_form:
        t.output_gradient = np.empty_like(t.error)
        twin.loss.output_gradient_fn(t.y[Q], d, t.output_gradient)
    t.f_prime = [None]
    for q in range(1, Q + 1):
        f = twin.f[q]
        if f is None or f.output_only:
            t.f_prime.append(None)
            continue
        out = np.empty((twin.sizes[q], 1))
        f.derivative(ws.a[q][:, :1], ws.fy[q][:, :1], out)  # f'(u^q) where normalised
        t.f_prime.append(out[:, 0])
    t.back = [None] + [twin.W[q + 1].T @ t.beta[q + 1] for q in range(1, Q)] + [None]
    # g^q = dE/dy^q: (W^{q+1})^T beta^{q+1}, plus g^{q+1} where layer q+1 is residual
    t.g = [None] * (Q + 1)
    for q in range(Q - 1, 0, -1):
        t.g[q] = t.back[q] + t.g[q + 1] if _residual(twin, q + 1) else t.back[q]
    _hidden_details(t, twin, ws)  # f(u^q), masks, normalisation, q = 1..Q-1
    t.reference_difference = _reference_difference(t, X, D)
    _step6(t, net, X, D)
    return t


def _hidden_details(t: Trace, twin: Network, ws: Workspace) -> None:
    """The hidden layers' extra quantities: f(u^q) before the mask and the skip, dropout's
    mask m^q, and the normalisation's mu, sigma, xhat, u^q, gamma, shift and its way back."""
    Q = twin.Q
    for q in range(1, Q):
        if twin.p[q] or _residual(twin, q):
            t.f_value[q] = ws.fy[q][:, 0].copy()  # f(u^q), before the mask and the skip
        if twin.p[q]:
            t.mask[q] = ws.mask[q][:, 0].copy()
        if twin.normalized[q]:
            error_u = t.g[q] * t.f_prime[q]  # the error at u^q
            if twin.p[q]:
                error_u = error_u * t.mask[q]
            t.normalization[q] = {
                "mu": ws.mean[q][:, 0].copy(),
                "sigma": 1.0 / ws.inv_std[q][:, 0],
                "xhat": ws.xhat[q][:, 0].copy(),
                "u": ws.u[q][:, 0].copy(),
                "gamma": twin.gamma[q][:, 0].copy(),
                "shift": twin.shift[q][:, 0].copy(),
                "error_u": error_u,
                "dgamma": twin.dgamma[q][:, 0].copy(),
                "dshift": twin.dshift[q][:, 0].copy(),
            }
            if _kind(twin, q) == "layer":  # means over the N_q units of this example
                norm = t.normalization[q]
                norm["gamma_e"] = norm["gamma"] * error_u
                norm["mean_ge"] = np.array([norm["gamma_e"].mean()])
                norm["mean_gex"] = np.array([(norm["gamma_e"] * norm["xhat"]).mean()])


def _step6(t: Trace, net: Network, X: Array, D: Array) -> None:
    """Step 6 by the engine: ``train_step`` with plain SGD on a second float64 copy.

    The copy has the same parameters and the same dropout generator, so its pass draws the
    trace's masks and its gradient is the trace's; E after the step is the loss of the same
    pass (same batch, same masks) with the new parameters.
    """
    from ..training.loop import train_step
    from ..training.optimizers import SGD

    after, Q = net.astype("float64"), t.net.Q
    optimizer = SGD(learning_rate=t.learning_rate)
    x, d = np.ascontiguousarray(X.T), np.ascontiguousarray(D.T)
    train_step(after, optimizer, optimizer.init(after.params), x, d)
    t.W_new = [None] + [after.W[q].copy() for q in range(1, Q + 1)]
    t.b_new = [None] + [after.b[q][:, 0].copy() for q in range(1, Q + 1)]
    after.forward_columns(x, training=True, new_masks=False)  # the same masks
    t.loss_after = after.loss_value(d)
    t.after = after


def trace_steps(
    net: Network,
    x: Sequence[float] | Array,
    d: Sequence[float] | Array,
    steps: int,
    batch: tuple[Array, Array] | None = None,
    learning_rate: float = 0.1,
) -> list[Trace]:
    """``steps`` consecutive training steps on the example, each traced (steps 2-6).

    Step k traces the network that step k - 1's gradient step left (the engine's
    ``train_step``, plain SGD with ``learning_rate``): its W^q are step k - 1's new ones, its
    dropout masks the generator's next draws, and its E the loss of those parameters. ``net``
    itself is not changed.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    traces: list[Trace] = []
    current = net
    for _ in range(steps):
        traces.append(trace(current, x, d, batch, learning_rate))
        after = traces[-1].after
        assert after is not None  # trace() always takes step 6
        current = after
    return traces


def _reference_difference(t: Trace, X: Array, D: Array) -> float:
    """The largest difference between the trace and the literal transcription."""
    twin, Q = t.net, t.net.Q
    differences = [0.0]
    if any(len(ops) > 2 for ops in twin.ops):  # more than the seed's two lines: the batch
        # transcription (every layer operation's literal form), with the same masks
        masks = [None] + [twin.workspace(t.n).mask[q] for q in range(1, Q + 1)]
        ref = reference.batch_pass(twin, X, D, masks)
        s_ref = [None] + [[row[0] for row in ref.s[q]] for q in range(1, Q + 1)]
        y_ref = [None] + [[row[0] for row in ref.y[q]] for q in range(1, Q + 1)]
        beta_ref = [None] + [[row[0] for row in ref.beta[q]] for q in range(1, Q + 1)]
        dW_ref, db_ref = ref.dW, ref.db
        for q, values in t.normalization.items():
            differences += [
                float(np.abs(ref.dgamma[q][:, 0] - values["dgamma"]).max()),
                float(np.abs(ref.dshift[q][:, 0] - values["dshift"]).max()),
                float(np.abs(np.array([row[0] for row in ref.u[q]]) - values["u"]).max()),
            ]
    else:
        x, d = X[0], D[0]
        s_ref, y_ref = reference.forward_example(twin, list(x))
        beta_ref = reference.backward_example(twin, s_ref, y_ref, list(d))
        dW_ref, db_ref, _ = reference.gradients(twin, X, D)
    for q in range(1, Q + 1):
        differences += [
            float(np.abs(np.array(s_ref[q]) - t.s[q]).max()),
            float(np.abs(np.array(y_ref[q]) - t.y[q]).max()),
            float(np.abs(np.array(beta_ref[q]) - t.beta[q]).max()),
            float(np.abs(dW_ref[q] - t.dW[q]).max()),
            float(np.abs(db_ref[q][:, 0] - t.db[q]).max()),
        ]
    return max(differences)


# ----------------------------------------------------------------------------- the arithmetic
# An expression is a nested list: ["v", name, q] is the quantity ``name`` of layer q (a
# vector, or a number such as the learning rate), ["f", activation, e] applies an activation,
# [op, a, b] with op one of "⊙" (element-wise product), "+", "−", "/" (element-wise) or "·"
# (a number times a vector). A line is {"result": ["v", name, q], "expr": e}: result = e.
Expr = list[Any]
Line = dict[str, Expr]


def _kind(net: Network, q: int) -> str | None:
    """Layer q's normalisation: "batch", "layer" or None (its operations' names)."""
    names = [op.name for op in net.ops[q]] if q < len(net.ops) else []
    return next((name for name in names if name in ("batch", "layer")), None)


def _residual(net: Network, q: int) -> bool:
    """Whether layer q adds its input to its output (y^q = y^{q-1} + f(u^q))."""
    return any(op.name == "residual" for op in net.ops[q]) if 0 < q < len(net.ops) else False


def _v(name: str, q: int) -> Expr:
    return ["v", name, q]


def _line(name: str, q: int, expr: Expr) -> Line:
    return {"result": _v(name, q), "expr": expr}


def formulas(t: Trace) -> dict[str, Any]:
    """Each stage's arithmetic: step "2" and "4" and "6" per layer q, step "3" a list."""
    net, Q = t.net, t.net.Q
    forward: dict[str, list[Line]] = {}
    backward: dict[str, list[Line]] = {}
    for q in range(1, Q + 1):
        lines, a = [], _v("s", q)
        if q in t.normalization:  # x̂ = (s - mu) / sigma,  u = gamma ⊙ x̂ + shift
            lines.append(_line("xhat", q, ["/", ["−", _v("s", q), _v("mu", q)], _v("sigma", q)]))
            lines.append(_line("u", q, ["+", ["⊙", _v("gamma", q), _v("xhat", q)], _v("shift", q)]))
            a = _v("u", q)
        f = ["f", net.activations[q - 1], a]
        if q in t.f_value:  # f(u) first, then the mask, then the skip y^{q-1} + ...
            lines.append(_line("f_value", q, f))
            f = _v("f_value", q)
        if q in t.mask:
            f = ["⊙", f, _v("mask", q)]
        lines.append(_line("y", q, ["+", _v("y", q - 1), f] if _residual(net, q) else f))
        forward[str(q)] = lines
    for q in range(Q - 1, 0, -1):
        back, lines = _v("back", q), []
        if _residual(net, q + 1):  # g^q = (W^{q+1})^T beta^{q+1} + g^{q+1}
            lines.append(_line("g", q, ["+", back, _v("g", q + 1)]))
            back = _v("g", q)
        if q in t.mask:
            back = ["⊙", _v("mask", q), back]
        if _kind(net, q) == "batch":  # the error at u^q, then back through the batch's mean
            e = _v("error_u", q)  # and sigma: means over the batch, per neuron
            centred = ["−", ["−", e, _v("dshift", q)], ["⊙", _v("xhat", q), _v("dgamma", q)]]
            lines.append(_line("error_u", q, ["⊙", _v("f_prime", q), back]))
            lines.append(_line("beta", q, ["⊙", ["/", _v("gamma", q), _v("sigma", q)], centred]))
        elif _kind(net, q) == "layer":  # means over the layer's units, for this example
            ge = _v("gamma_e", q)
            centred = ["−", ["−", ge, _v("mean_ge", q)], ["⊙", _v("xhat", q), _v("mean_gex", q)]]
            lines.append(_line("error_u", q, ["⊙", _v("f_prime", q), back]))
            lines.append(_line("gamma_e", q, ["⊙", _v("gamma", q), _v("error_u", q)]))
            lines.append(_line("beta", q, ["/", centred, _v("sigma", q)]))
        else:
            lines.append(_line("beta", q, ["⊙", _v("f_prime", q), back]))
        backward[str(q)] = lines
    output = [_line("error", Q, ["−", _v("y", Q), _v("d", Q)])]
    if net.loss.fuses(net.f[Q]) and not net.loss.seed_form:  # the fused canonical pair
        output.append(_line("beta", Q, _v("error", Q)))
    elif t.f_prime[Q] is not None:  # the seed's chain (a Jacobian otherwise: no line)
        gradient = _v("error", Q) if net.loss.seed_form else _v("output_gradient", Q)
        output.append(_line("beta", Q, ["⊙", gradient, _v("f_prime", Q)]))
    update = {
        str(q): [_line("b_new", q, ["−", _v("b", q), ["·", _v("learning_rate", 0), _v("db", q)]])]
        for q in range(1, Q + 1)
    }
    return {"2": forward, "3": output, "4": backward, "6": update}


def as_dict(t: Trace) -> dict[str, Any]:
    """Every number of the trace at full precision, layers keyed by q (JSON-ready)."""
    Q = t.net.Q

    def layers(values: list[Any], first: int = 1, last: int = Q) -> dict[str, Any]:
        return {str(q): values[q].tolist() for q in range(first, last + 1) if values[q] is not None}

    return {
        "sizes": list(t.net.sizes),
        "activations": list(t.net.activations),
        "loss": t.net.loss.name,
        "fused_output_error": t.net.loss.fuses(t.net.f[t.net.Q]),
        "x": t.x.tolist(),
        "d": t.d.tolist(),
        "W": {str(q): t.net.W[q].tolist() for q in range(1, Q + 1)},
        "b": {str(q): t.net.b[q][:, 0].tolist() for q in range(1, Q + 1)},
        "s": layers(t.s),
        "y": layers(t.y, 0),
        "error": t.error.tolist() if t.error is not None else None,
        "f_prime": layers(t.f_prime),
        "back": layers(t.back, 1, Q - 1),
        "g": layers(t.g, 1, Q - 1),
        "beta": layers(t.beta),
        "dW": layers(t.dW),
        "db": layers(t.db),
        "loss_value": t.loss,
        "reference_max_difference": t.reference_difference,
        "reference_agrees": t.agrees,
        "batch_size": t.n,
        "normalization": {
            str(q): {key: value.tolist() for key, value in values.items()}
            for q, values in t.normalization.items()
        },
        "dropout": {str(q): {"p": t.net.p[q], "mask": mask.tolist()} for q, mask in t.mask.items()},
        "f_value": {str(q): value.tolist() for q, value in t.f_value.items()},
        "f_argument": {str(q): "u" if q in t.normalization else "s" for q in range(1, Q + 1)},
        "output_gradient": None if t.output_gradient is None else t.output_gradient.tolist(),
        "learning_rate": t.learning_rate,
        "W_new": {str(q): t.W_new[q].tolist() for q in range(1, Q + 1)},
        "b_new": layers(t.b_new),
        "loss_after": t.loss_after,
        "lines": formulas(t),
    }
