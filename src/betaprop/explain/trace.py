"""Steps 2-5 for one example, with the seed's formulas and the actual numbers.

``trace(net, x, d)`` runs the fast engine on one example (n = 1, so the folded 1/n of the
batch mean is 1 and beta^q is the seed's beta^q exactly) on a float64 copy of the network,
and keeps every intermediate: s^q and y^q (step 2), y^Q - d, f'(s^Q) and delta^Q (step 3),
(W^{q+1})^T beta^{q+1}, f'(s^q) and beta^q for q = Q-1 .. 1 (step 4), dE/dW^q and dE/db^q
(step 5). It also runs the literal per-neuron transcription ``betaprop.reference`` on the
same example and records the largest difference between the two.

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

    @property
    def agrees(self) -> bool:
        """Whether the literal reference and the engine agree to 1e-12 (relative)."""
        scale = max(
            1.0, *(float(np.abs(a).max()) for a in self.beta[1:] + self.dW[1:] + self.y[1:])
        )
        return self.reference_difference <= AGREEMENT * scale


def trace(net: Network, x: Sequence[float] | Array, d: Sequence[float] | Array) -> Trace:
    """Steps 2-5 of the engine on one example x (N_0,), target d (N_Q,), all kept."""
    twin = net.astype("float64")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    if x.shape != (net.sizes[0],):
        raise ValueError(f"x must have N_0 = {net.sizes[0]} values, got {x.shape[0]}")
    if d.shape != (net.sizes[-1],):
        raise ValueError(f"d must have N_Q = {net.sizes[-1]} values, got {d.shape[0]}")
    Q = twin.Q
    t = Trace(net=twin, x=x, d=d)
    t.loss = twin.loss_and_gradients(x[None, :], d[None, :])  # n = 1: beta is per example
    t.s = [None] + [twin.s[q][:, 0].copy() for q in range(1, Q + 1)]
    t.y = [x.copy()] + [twin.y[q][:, 0].copy() for q in range(1, Q + 1)]
    t.beta = [None] + [twin.beta[q][:, 0].copy() for q in range(1, Q + 1)]
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
        f.derivative(t.s[q][:, None], t.y[q][:, None], out)
        t.f_prime.append(out[:, 0])
    t.back = [None] + [twin.W[q + 1].T @ t.beta[q + 1] for q in range(1, Q)] + [None]

    # The literal transcription on the same example: every number must agree.
    s_ref, y_ref = reference.forward_example(twin, list(x))
    beta_ref = reference.backward_example(twin, s_ref, y_ref, list(d))
    dW_ref, db_ref, _ = reference.gradients(twin, x[None, :], d[None, :])
    differences = [0.0]
    for q in range(1, Q + 1):
        differences += [
            float(np.abs(np.array(s_ref[q]) - t.s[q]).max()),
            float(np.abs(np.array(y_ref[q]) - t.y[q]).max()),
            float(np.abs(np.array(beta_ref[q]) - t.beta[q]).max()),
            float(np.abs(dW_ref[q] - t.dW[q]).max()),
            float(np.abs(db_ref[q][:, 0] - t.db[q]).max()),
        ]
    t.reference_difference = max(differences)
    return t


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


_SYMBOLS = {"\\delta": "δ", "\\beta": "β", "\\odot": "⊙", "\\partial ": "∂", "{": "", "}": ""}


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


def render(t: Trace, lang: str = "en", fmt: str = "text", max_entries: int = 8) -> str:
    """The trace as text or Markdown, explanations in English ("en") or Russian ("ru")."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {list(LANGUAGES)}, got {lang!r}")
    if fmt not in ("text", "markdown"):
        raise ValueError(f"fmt must be one of ['text', 'markdown'], got {fmt!r}")
    if not isinstance(max_entries, int) or max_entries < 1:
        raise ValueError(f"max_entries must be an integer >= 1, got {max_entries!r}")
    md = fmt == "markdown"
    net, Q = t.net, t.net.Q
    lines: list[str] = []

    def heading(text: str, level: int = 2) -> None:
        if md:
            lines.extend(["", "#" * level + " " + text, ""])
        else:
            lines.extend(["", text, "-" * len(text)])

    def say(text: str) -> None:
        if md:
            lines.append(text + "\n")
        else:
            lines.extend(textwrap.wrap(text, 100, break_on_hyphens=False) or [""])

    def row(label: str, formula: str, values: Array, note: str = "") -> None:
        numbers = _numbers(values, max_entries, lang)
        if md:
            note = f" ({note})" if note else ""
            lines.append(f"- ${formula}${note} &nbsp; `{label} = {numbers}`")
        else:
            note = f", {note}" if note else ""
            lines.append(f"  {label:<14} = {numbers}    [{_plain(formula)}{note}]")

    def matrix(label: str, formula: str, values: Array) -> None:
        rows = _matrix(values, max_entries, lang)
        if md:
            lines.append(f"- ${formula}$, `{label}` ({values.shape[0]}×{values.shape[1]}):")
            lines.append("")
            lines.append("  ```")
            lines.extend(f"  {r}" for r in rows)
            lines.append("  ```")
        else:
            lines.append(f"  {label} ({values.shape[0]}x{values.shape[1]})    [{_plain(formula)}]")
            lines.extend(f"    {r}" for r in rows)

    if md:
        lines.append(f"# {_w('title', lang)}")
    else:
        lines.append(_w("title", lang))
        lines.append("=" * len(lines[-1]))
    lines.append("")
    say(
        f"{_w('network', lang)}: sizes {list(net.sizes)}, activations {net.activations}, "
        f"loss {net.loss.name} (float64)"
    )
    say(f"{_w('example', lang)}: x = {_numbers(t.x, max_entries, lang)}, "
        f"d = {_numbers(t.d, max_entries, lang)}")  # fmt: skip

    heading(_w("step2", lang))
    say(_w("step2_text", lang))
    for q in range(1, Q + 1):
        row(f"s^{q}", f"s^{{{q}}} = W^{{{q}}} y^{{{q - 1}}} + b^{{{q}}}", t.s[q])
        row(f"y^{q}", f"y^{{{q}}} = f_{{{q}}}(s^{{{q}}})", t.y[q], net.activations[q - 1])
    row(_w("loss", lang), "E", np.array([t.loss]))

    heading(_w("step3", lang))
    say(_w("step3_text", lang))
    assert t.error is not None
    row(f"y^{Q} - d", f"y^{{{Q}}} - d", t.error)
    output, loss = net.activations[-1], net.loss.name
    if t.f_prime[Q] is not None:
        row(f"f'(s^{Q})", f"f'(s^{{{Q}}})", t.f_prime[Q])
    if net.loss.fuses(net.f[Q]) and not net.loss.seed_form:
        say(_w("fused", lang, output=output, loss=loss))
        row(f"delta^{Q}", f"\\delta^{{{Q}}} = y^{{{Q}}} - d", t.beta[Q])
    elif t.f_prime[Q] is None:
        say(_w("jacobian", lang))
        row(f"delta^{Q}", f"\\delta^{{{Q}}} = J_f(s^{{{Q}}})^T (dE/dy^{{{Q}}})", t.beta[Q])
    else:
        row(
            f"delta^{Q}",
            f"\\delta^{{{Q}}} = (y^{{{Q}}} - d) \\odot f'(s^{{{Q}}})"
            if net.loss.seed_form
            else f"\\delta^{{{Q}}} = dE/dy^{{{Q}}} \\odot f'(s^{{{Q}}})",
            t.beta[Q],
        )

    heading(_w("step4", lang))
    say(_w("step4_text", lang))
    if Q == 1:
        say(_w("no_hidden", lang))
    for q in range(Q - 1, 0, -1):
        row(
            f"(W^{q + 1})^T beta^{q + 1}",
            f"(W^{{{q + 1}}})^T \\beta^{{{q + 1}}}",
            t.back[q],
        )
        row(f"f'(s^{q})", f"f'(s^{{{q}}})", t.f_prime[q])
        row(
            f"beta^{q}",
            f"\\beta^{{{q}}} = f'(s^{{{q}}}) \\odot (W^{{{q + 1}}})^T \\beta^{{{q + 1}}}",
            t.beta[q],
        )

    heading(_w("step5", lang))
    say(_w("step5_text", lang))
    for q in range(1, Q + 1):
        matrix(
            f"dE/dW^{q}",
            f"\\partial E/\\partial W^{{{q}}} = \\beta^{{{q}}} (y^{{{q - 1}}})^T",
            t.dW[q],
        )
        row(f"dE/db^{q}", f"\\partial E/\\partial b^{{{q}}} = \\beta^{{{q}}}", t.db[q])

    lines.append("")
    verdict = _w("agree", lang) if t.agrees else _w("disagree", lang)
    say(_w("check", lang, verdict=verdict, diff=t.reference_difference))
    return "\n".join(lines).rstrip() + "\n"
