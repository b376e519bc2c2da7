"""Steps 2-5 for one example, with the seed's formulas and the actual numbers.

``trace(net, x, d)`` runs the fast engine on one example (n = 1, so the folded 1/n of the
batch mean is 1 and beta^q is the seed's beta^q exactly) on a float64 copy of the network,
and keeps every intermediate: s^q and y^q (step 2), y^Q - d, f'(s^Q) and delta^Q (step 3),
(W^{q+1})^T beta^{q+1}, f'(s^q) and beta^q for q = Q-1 .. 1 (step 4), dE/dW^q and dE/db^q
(step 5). It also runs the literal per-neuron transcription ``betaprop.reference`` on the
same example and records the largest difference between the two.

With batch normalisation (and dropout) the trace is a training pass, as in ``fit``. Dropout
draws its masks m^q from a copy of the network's generator and shows them in step 2 and
step 4. Batch normalisation needs a batch: the example becomes column 1 of a small batch
(``batch``: the other examples, by default 3 seeded random ones), and the trace shows
column 1's numbers with the batch's mu^q and sigma^q, xhat^q and u^q in step 2, and the
error at u^q, its way back to s^q, dE/dgamma^q and dE/dshift^q in step 4; beta^q is then
per example (n times the engine's), and step 5's gradients are the batch means.

``render`` writes the trace as text or Markdown, in English or in Russian (the seed's
language); ``as_dict`` gives every number at full precision (JSON).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import reference
from ..engine.network import Network

__all__ = ["Trace", "trace", "render", "as_dict", "LANGUAGES", "FORMATS"]

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
) -> Trace:
    """Steps 2-5 of the engine on one example x (N_0,), target d (N_Q,), all kept.

    ``batch`` = (X, D), (m, N_0) and (m, N_Q): the other examples of the pass when the
    network has batch normalisation (default: 3 seeded random ones); ignored otherwise.
    """
    twin = net.astype("float64")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    if x.shape != (net.sizes[0],):
        raise ValueError(f"x must have N_0 = {net.sizes[0]} values, got {x.shape[0]}")
    if d.shape != (net.sizes[-1],):
        raise ValueError(f"d must have N_Q = {net.sizes[-1]} values, got {d.shape[0]}")
    Q = twin.Q
    X, D = x[None, :], d[None, :]
    if any(twin.normalized):
        if batch is None:
            rng = np.random.default_rng(0)
            batch = (
                rng.normal(size=(3, twin.sizes[0])),
                twin.loss.sample_targets(rng, 3, twin.sizes[-1]),
            )
        X = np.vstack([X, twin.check_X(batch[0])])
        D = np.vstack([D, twin.check_D(batch[1], len(batch[1]))])
    n = len(X)
    t = Trace(net=twin, x=x, d=d, n=n)
    t.loss = twin.loss_and_gradients(X, D)  # a training pass; n = 1: beta is per example
    ws = twin.workspace(n)
    t.s = [None] + [twin.s[q][:, 0].copy() for q in range(1, Q + 1)]
    t.y = [x.copy()] + [twin.y[q][:, 0].copy() for q in range(1, Q + 1)]
    t.beta = [None] + [n * twin.beta[q][:, 0] for q in range(1, Q + 1)]
    t.dW = [None] + [twin.dW[q].copy() for q in range(1, Q + 1)]
    t.db = [None] + [twin.db[q][:, 0].copy() for q in range(1, Q + 1)]
    t.error = t.y[Q] - d
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
    for q in range(1, Q):
        if twin.p[q]:
            t.mask[q] = ws.mask[q][:, 0].copy()
        if twin.normalized[q]:
            error_u = t.back[q] * t.f_prime[q]  # the error at u^q
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
    t.reference_difference = _reference_difference(t, X, D)
    return t


def _reference_difference(t: Trace, X: Array, D: Array) -> float:
    """The largest difference between the trace and the literal transcription."""
    twin, Q = t.net, t.net.Q
    differences = [0.0]
    if any(twin.normalized) or any(twin.p):  # the batch transcription, with the same masks
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
    }


# ----------------------------------------------------------------------------- words
_WORDS: dict[str, dict[str, str]] = {
    "title": {
        "en": "Backpropagation, step by step, for one example",
        "ru": "Обратное распространение ошибки по шагам для одного примера",
    },
    "network": {"en": "Network", "ru": "Сеть"},
    "example": {"en": "Example", "ru": "Пример"},
    "step2": {"en": "Step 2: forward pass", "ru": "Шаг 2: прямой проход"},
    "step2_text": {
        "en": "For each layer q = 1..Q: the weighted sum s^q of the previous layer's outputs, "
        "then the activation y^q = f(s^q). Keep s^q and y^q: steps 3 and 4 need them.",
        "ru": "Для каждого слоя q = 1..Q: взвешенная сумма s^q выходов предыдущего слоя, "
        "затем активация y^q = f(s^q). Сохраняем s^q и y^q: они нужны на шагах 3 и 4.",
    },
    "step3": {
        "en": "Step 3: local error of the output layer",
        "ru": "Шаг 3: локальная ошибка выходного слоя",
    },
    "step3_text": {
        "en": "For every output neuron j: the prediction error y_j^Q - d_j times the derivative "
        "of the activation f'(s_j^Q); element-wise for the whole layer at once.",
        "ru": "Для каждого нейрона j выходного слоя: ошибка предсказания y_j^Q - d_j, "
        "умноженная на производную активации f'(s_j^Q); поэлементно для всего слоя сразу.",
    },
    "fused": {
        "en": "For this canonical pair (output {output}, loss {loss}) f' cancels against the "
        "loss derivative, and the engine computes delta^Q = y^Q - d directly (stable).",
        "ru": "Для этой канонической пары (выход {output}, функция потерь {loss}) f' "
        "сокращается с производной потерь, и движок вычисляет delta^Q = y^Q - d напрямую "
        "(устойчиво).",
    },
    "jacobian": {
        "en": "softmax is not element-wise: delta^Q is the product with its Jacobian.",
        "ru": "softmax не поэлементна: delta^Q — произведение с её матрицей Якоби.",
    },
    "step4": {
        "en": "Step 4: local errors of the hidden layers, q = Q-1 down to 1",
        "ru": "Шаг 4: локальные ошибки скрытых слоёв, q = Q-1 вниз до 1",
    },
    "step4_text": {
        "en": "Going backwards, each layer's error is the next layer's error sent back through "
        "the transposed weights, (W^{q+1})^T beta^{q+1}, times f'(s^q) element-wise. "
        "beta^0 is never needed.",
        "ru": "Идём назад: ошибка слоя — это ошибка следующего слоя, переданная назад через "
        "транспонированные веса, (W^{q+1})^T beta^{q+1}, поэлементно умноженная на f'(s^q). "
        "beta^0 не нужна.",
    },
    "no_hidden": {
        "en": "(no hidden layers: Q = 1, nothing to propagate)",
        "ru": "(скрытых слоёв нет: Q = 1, распространять нечего)",
    },
    "step5": {"en": "Step 5: gradients", "ru": "Шаг 5: градиенты"},
    "step5_text": {
        "en": "dE/dw_jr^q = beta_j^q y_r^{q-1} (an outer product) and dE/db_j^q = beta_j^q.",
        "ru": "dE/dw_jr^q = beta_j^q y_r^{q-1} (внешнее произведение) и dE/db_j^q = beta_j^q.",
    },
    "loss": {"en": "loss E", "ru": "потери E"},
    "check": {
        "en": "Check: the literal per-neuron transcription (betaprop.reference) and the fast "
        "engine {verdict}: max |difference| over s, y, beta, dE/dW, dE/db = {diff:.3g}",
        "ru": "Проверка: дословная поэлементная реализация (betaprop.reference) и быстрый "
        "движок {verdict}: max |разница| по s, y, beta, dE/dW, dE/db = {diff:.3g}",
    },
    "agree": {"en": "agree", "ru": "совпадают"},
    "disagree": {"en": "DISAGREE", "ru": "НЕ СОВПАДАЮТ"},
    "shown": {"en": "showing {shown} of {total}", "ru": "показано {shown} из {total}"},
    "batch": {
        "en": "Batch normalisation needs a batch: the example is column 1 of a batch of n = {n} "
        "(the others are fixed random examples). mu^q and sigma^q are taken over the batch; "
        "the numbers shown are column 1's; beta^q is per example (n times the engine's "
        "folded 1/n), and dE/dW^q, dE/db^q are the means over the batch.",
        "ru": "Пакетной нормализации нужен пакет: пример — первый столбец пакета из n = {n} "
        "примеров (остальные — фиксированные случайные). mu^q и sigma^q считаются по пакету; "
        "показаны числа первого столбца; beta^q — для одного примера (в n раз больше, чем в "
        "движке с его множителем 1/n), а dE/dW^q, dE/db^q — средние по пакету.",
    },
    "norm2": {
        "en": "Batch normalisation of layer {q}: between the weighted sum and f, s^q is centred "
        "by the batch mean mu^q and divided by the batch standard deviation sigma^q (xhat^q), "
        "then scaled and shifted, u^q = gamma^q xhat^q + shift^q, and f takes u^q.",
        "ru": "Пакетная нормализация слоя {q}: между взвешенной суммой и f значение s^q "
        "центрируется средним по пакету mu^q и делится на стандартное отклонение по пакету "
        "sigma^q (xhat^q), затем масштабируется и сдвигается, u^q = gamma^q xhat^q + shift^q, "
        "и f применяется к u^q.",
    },
    "drop2": {
        "en": "Dropout on layer {q} (p = {p}): each output is kept with probability 1 - p and "
        "divided by 1 - p, or set to 0: y^q is multiplied by the mask m^q.",
        "ru": "Прореживание (dropout) слоя {q} (p = {p}): каждый выход сохраняется с "
        "вероятностью 1 - p и делится на 1 - p либо обнуляется: y^q умножается на маску m^q.",
    },
    "drop4": {
        "en": "The same mask m^{q} multiplies the error sent back to layer {q}.",
        "ru": "Та же маска m^{q} умножает ошибку, переданную назад в слой {q}.",
    },
    "norm4": {
        "en": "Back through the normalisation of layer {q}: the error at u^q becomes the error "
        "at s^q; through mu^q and sigma^q every example of the batch takes part in it.",
        "ru": "Назад через нормализацию слоя {q}: ошибка по u^q становится ошибкой по s^q; "
        "через mu^q и sigma^q в ней участвуют все примеры пакета.",
    },
}


def _w(key: str, lang: str, **values: object) -> str:
    text = _WORDS[key][lang]
    return text.format(**values) if values else text


def _numbers(values: Array, max_entries: int, lang: str) -> str:
    flat = np.asarray(values).reshape(-1)
    shown = ", ".join(f"{v:.6g}" for v in flat[:max_entries])
    if flat.size > max_entries:
        return f"[{shown}, ...] ({_w('shown', lang, shown=max_entries, total=flat.size)})"
    return f"[{shown}]"


_SYMBOLS = {
    "\\delta": "δ",
    "\\beta": "β",
    "\\odot": "⊙",
    "\\partial ": "∂",
    "\\mu": "μ",
    "\\sigma": "σ",
    "\\gamma": "γ",
    "\\epsilon": "ε",
    "\\hat x": "x̂",
    "\\sqrt": "sqrt",
    "\\sum_i": "Σ_i",
    "{": "",
    "}": "",
}


def _plain(formula: str) -> str:
    """A LaTeX formula as plain text: s^{q} -> s^q, \\beta -> β."""
    for latex, text in _SYMBOLS.items():
        formula = formula.replace(latex, text)
    return formula


def _matrix(values: Array, max_entries: int, lang: str) -> list[str]:
    rows = [_numbers(row, max_entries, lang) for row in values[:max_entries]]
    if len(values) > max_entries:
        rows.append(f"... ({_w('shown', lang, shown=max_entries, total=len(values))} rows)")
    return rows


class _Writer:
    """The lines of a rendered trace, in text or Markdown, and how each kind is written."""

    def __init__(self, lang: str, md: bool, max_entries: int) -> None:
        self.lang, self.md, self.max_entries = lang, md, max_entries
        self.lines: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        if self.md:
            self.lines.extend(["", "#" * level + " " + text, ""])
        else:
            self.lines.extend(["", text, "-" * len(text)])

    def say(self, text: str) -> None:
        if self.md:
            self.lines.append(text + "\n")
        else:
            self.lines.extend(textwrap.wrap(text, 100, break_on_hyphens=False) or [""])

    def row(self, label: str, formula: str, values: Array, note: str = "") -> None:
        numbers = _numbers(values, self.max_entries, self.lang)
        if self.md:
            note = f" ({note})" if note else ""
            self.lines.append(f"- ${formula}${note} &nbsp; `{label} = {numbers}`")
        else:
            note = f", {note}" if note else ""
            self.lines.append(f"  {label:<14} = {numbers}    [{_plain(formula)}{note}]")

    def matrix(self, label: str, formula: str, values: Array) -> None:
        rows = _matrix(values, self.max_entries, self.lang)
        if self.md:
            self.lines.append(f"- ${formula}$, `{label}` ({values.shape[0]}×{values.shape[1]}):")
            self.lines.extend(["", "  ```", *(f"  {r}" for r in rows), "  ```"])
        else:
            shape = f"({values.shape[0]}x{values.shape[1]})"
            self.lines.append(f"  {label} {shape}    [{_plain(formula)}]")
            self.lines.extend(f"    {r}" for r in rows)


def render(t: Trace, lang: str = "en", fmt: str = "text", max_entries: int = 8) -> str:
    """The trace as text or Markdown, explanations in English ("en") or Russian ("ru")."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {list(LANGUAGES)}, got {lang!r}")
    if fmt not in ("text", "markdown"):
        raise ValueError(f"fmt must be one of ['text', 'markdown'], got {fmt!r}")
    if not isinstance(max_entries, int) or max_entries < 1:
        raise ValueError(f"max_entries must be an integer >= 1, got {max_entries!r}")
    w = _Writer(lang, fmt == "markdown", max_entries)
    net = t.net
    if w.md:
        w.lines.append(f"# {_w('title', w.lang)}")
    else:
        w.lines.append(_w("title", w.lang))
        w.lines.append("=" * len(w.lines[-1]))
    w.lines.append("")
    w.say(
        f"{_w('network', w.lang)}: sizes {list(net.sizes)}, activations {net.activations}, "
        f"loss {net.loss.name} (float64)"
    )
    w.say(f"{_w('example', w.lang)}: x = {_numbers(t.x, w.max_entries, w.lang)}, "
        f"d = {_numbers(t.d, w.max_entries, w.lang)}")  # fmt: skip

    _render_step2(w, t)
    _render_step3(w, t)
    _render_step4(w, t)
    _render_step5(w, t)
    return "\n".join(w.lines).rstrip() + "\n"


def _render_step2(w: _Writer, t: Trace) -> None:
    """Step 2, layer by layer: s^q (mu, sigma, xhat, u where normalised), the mask, y^q."""
    net, Q = t.net, t.net.Q
    w.heading(_w("step2", w.lang))
    w.say(_w("step2_text", w.lang))
    if t.n > 1:
        w.say(_w("batch", w.lang, n=t.n))
    for q in range(1, Q + 1):
        w.row(f"s^{q}", f"s^{{{q}}} = W^{{{q}}} y^{{{q - 1}}} + b^{{{q}}}", t.s[q])
        a = f"s^{{{q}}}"
        if q in t.normalization:
            norm = t.normalization[q]
            w.say(_w("norm2", w.lang, q=q))
            w.row(f"mu^{q}", f"\\mu^{{{q}}} = (1/n) \\sum_i s_i^{{{q}}}", norm["mu"])
            w.row(
                f"sigma^{q}",
                f"\\sigma^{{{q}}} = \\sqrt{{(var(s^{{{q}}}) + \\epsilon)}}",
                norm["sigma"],
            )
            w.row(
                f"xhat^{q}",
                f"\\hat x^{{{q}}} = (s^{{{q}}} - \\mu^{{{q}}}) / \\sigma^{{{q}}}",
                norm["xhat"],
            )
            w.row(
                f"u^{q}",
                f"u^{{{q}}} = \\gamma^{{{q}}} \\odot \\hat x^{{{q}}} + shift^{{{q}}}",
                norm["u"],
            )
            a = f"u^{{{q}}}"
        if q in t.mask:
            w.say(_w("drop2", w.lang, q=q, p=f"{net.p[q]:g}"))
            w.row(f"m^{q}/(1-p)", f"m^{{{q}}} / (1 - p)", t.mask[q])
            formula = f"y^{{{q}}} = f_{{{q}}}({a}) \\odot m^{{{q}}}"
        else:
            formula = f"y^{{{q}}} = f_{{{q}}}({a})"
        w.row(f"y^{q}", formula, t.y[q], net.activations[q - 1])
    w.row(_w("loss", w.lang), "E", np.array([t.loss]))


def _render_step3(w: _Writer, t: Trace) -> None:
    """Step 3: y^Q - d, f'(s^Q) and delta^Q (fused, through the Jacobian, or the seed's)."""
    net, Q = t.net, t.net.Q
    w.heading(_w("step3", w.lang))
    w.say(_w("step3_text", w.lang))
    assert t.error is not None
    w.row(f"y^{Q} - d", f"y^{{{Q}}} - d", t.error)
    output, loss = net.activations[-1], net.loss.name
    if t.f_prime[Q] is not None:
        w.row(f"f'(s^{Q})", f"f'(s^{{{Q}}})", t.f_prime[Q])
    if net.loss.fuses(net.f[Q]) and not net.loss.seed_form:
        w.say(_w("fused", w.lang, output=output, loss=loss))
        w.row(f"delta^{Q}", f"\\delta^{{{Q}}} = y^{{{Q}}} - d", t.beta[Q])
    elif t.f_prime[Q] is None:
        w.say(_w("jacobian", w.lang))
        w.row(f"delta^{Q}", f"\\delta^{{{Q}}} = J_f(s^{{{Q}}})^T (dE/dy^{{{Q}}})", t.beta[Q])
    else:
        w.row(
            f"delta^{Q}",
            f"\\delta^{{{Q}}} = (y^{{{Q}}} - d) \\odot f'(s^{{{Q}}})"
            if net.loss.seed_form
            else f"\\delta^{{{Q}}} = dE/dy^{{{Q}}} \\odot f'(s^{{{Q}}})",
            t.beta[Q],
        )


def _render_step4(w: _Writer, t: Trace) -> None:
    """Step 4 for q = Q-1 down to 1 (the mask, f', batch normalisation's way back)."""
    Q = t.net.Q
    w.heading(_w("step4", w.lang))
    w.say(_w("step4_text", w.lang))
    if Q == 1:
        w.say(_w("no_hidden", w.lang))
    for q in range(Q - 1, 0, -1):
        w.row(
            f"(W^{q + 1})^T beta^{q + 1}",
            f"(W^{{{q + 1}}})^T \\beta^{{{q + 1}}}",
            t.back[q],
        )
        back = f"(W^{{{q + 1}}})^T \\beta^{{{q + 1}}}"
        if q in t.mask:
            w.say(_w("drop4", w.lang, q=q))
            w.row(f"m^{q}/(1-p)", f"m^{{{q}}} / (1 - p)", t.mask[q])
            back = f"m^{{{q}}} \\odot {back}"
        a = f"u^{{{q}}}" if q in t.normalization else f"s^{{{q}}}"
        w.row(f"f'({a.replace('{', '').replace('}', '')})", f"f'({a})", t.f_prime[q])
        if q not in t.normalization:
            w.row(f"beta^{q}", f"\\beta^{{{q}}} = f'(s^{{{q}}}) \\odot {back}", t.beta[q])
            continue
        norm = t.normalization[q]
        w.row(f"e^{q}", f"e^{{{q}}} = f'(u^{{{q}}}) \\odot {back}", norm["error_u"])
        w.say(_w("norm4", w.lang, q=q))
        w.row(
            f"beta^{q}",
            f"\\beta^{{{q}}} = (\\gamma^{{{q}}} / \\sigma^{{{q}}}) \\odot (e^{{{q}}} - "
            f"mean(e^{{{q}}}) - \\hat x^{{{q}}} \\odot mean(e^{{{q}}} \\odot \\hat x^{{{q}}}))",
            t.beta[q],
        )
        w.row(
            f"dE/dgamma^{q}",
            f"\\partial E/\\partial \\gamma^{{{q}}} = mean(e^{{{q}}} \\odot \\hat x^{{{q}}})",
            norm["dgamma"],
        )
        w.row(
            f"dE/dshift^{q}",
            f"\\partial E/\\partial shift^{{{q}}} = mean(e^{{{q}}})",
            norm["dshift"],
        )


def _render_step5(w: _Writer, t: Trace) -> None:
    """Step 5, then whether the literal reference agrees."""
    Q = t.net.Q
    w.heading(_w("step5", w.lang))
    w.say(_w("step5_text", w.lang))
    mean = "mean_i " if t.n > 1 else ""  # a batch: the mean of the examples' gradients
    for q in range(1, Q + 1):
        w.matrix(
            f"dE/dW^{q}",
            f"\\partial E/\\partial W^{{{q}}} = {mean}\\beta^{{{q}}} (y^{{{q - 1}}})^T",
            t.dW[q],
        )
        w.row(f"dE/db^{q}", f"\\partial E/\\partial b^{{{q}}} = {mean}\\beta^{{{q}}}", t.db[q])
    w.lines.append("")
    verdict = _w("agree", w.lang) if t.agrees else _w("disagree", w.lang)
    w.say(_w("check", w.lang, verdict=verdict, diff=t.reference_difference))
