"""The one-example trace written out: text or Markdown, English or Russian.

``render(t, lang, fmt)`` writes the numbers of ``trace.trace`` beside the seed's formulas,
step by step, with the seed's words (``_WORDS``: one entry per sentence, en and ru).
"""

from __future__ import annotations

import textwrap

import numpy as np

from .trace import LANGUAGES, Trace, _kind, _residual
from .trace_words import WORDS

__all__ = ["render", "render_steps"]

Array = np.ndarray


_WORDS = WORDS  # the sentences, en and ru (trace_words.py)


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
    "\\eta": "η",
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
        _w(
            "header", w.lang, network=_w("network", w.lang), sizes=list(net.sizes),
            activations=net.activations, loss=net.loss.name,
        )
    )  # fmt: skip
    w.say(f"{_w('example', w.lang)}: x = {_numbers(t.x, w.max_entries, w.lang)}, "
        f"d = {_numbers(t.d, w.max_entries, w.lang)}")  # fmt: skip

    _render_step2(w, t)
    _render_step3(w, t)
    _render_step4(w, t)
    _render_step5(w, t)
    _render_step6(w, t)
    _render_check(w, t)
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
            norm, layer = t.normalization[q], _kind(net, q) == "layer"
            w.say(_w("lnorm2" if layer else "norm2", w.lang, q=q))
            mean = "(1/N_q) \\sum_j s_j" if layer else "(1/n) \\sum_i s_i"
            w.row(f"mu^{q}", f"\\mu^{{{q}}} = {mean}^{{{q}}}", norm["mu"])
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
            formula = f"f_{{{q}}}({a}) \\odot m^{{{q}}}"
        else:
            formula = f"f_{{{q}}}({a})"
        if _residual(net, q):
            w.say(_w("residual2", w.lang, q=q))
            formula = f"y^{{{q - 1}}} + {formula}"
        formula = f"y^{{{q}}} = {formula}"
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
        if _residual(t.net, q + 1):
            w.say(_w("residual4", w.lang, q=q, P=q + 1))
            w.row(f"g^{q}", f"g^{{{q}}} = {back} + g^{{{q + 1}}}", t.g[q])
            back = f"g^{{{q}}}"
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
        if _kind(t.net, q) == "layer":  # means over the layer's units, for this example
            ge = f"\\gamma^{{{q}}} \\odot e^{{{q}}}"
            w.row(
                f"beta^{q}",
                f"\\beta^{{{q}}} = ({ge} - mean_j({ge}) - \\hat x^{{{q}}} \\odot "
                f"mean_j({ge} \\odot \\hat x^{{{q}}})) / \\sigma^{{{q}}}",
                t.beta[q],
            )
            continue
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
    """Step 5: dE/dW^q and dE/db^q."""
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


def _render_step6(w: _Writer, t: Trace) -> None:
    """Step 6: the new W^q and b^q after one gradient step, and E before and after it."""
    w.heading(_w("step6", w.lang, eta=t.learning_rate))
    w.say(_w("step6_text", w.lang))
    w.row(_w("loss_before", w.lang), "E", np.array([t.loss]))
    w.row(_w("loss_after", w.lang), "E", np.array([t.loss_after]))
    for q in range(1, t.net.Q + 1):
        dW, db = f"\\partial E/\\partial W^{{{q}}}", f"\\partial E/\\partial b^{{{q}}}"
        w.matrix(f"W^{q} new", f"W^{{{q}}} - \\eta {dW}", t.W_new[q])
        w.row(f"b^{q} new", f"b^{{{q}}} - \\eta {db}", t.b_new[q])


def _render_check(w: _Writer, t: Trace) -> None:
    """Whether the literal reference agrees with the fast engine."""
    w.lines.append("")
    verdict = _w("agree", w.lang) if t.agrees else _w("disagree", w.lang)
    w.say(_w("check", w.lang, verdict=verdict, diff=t.reference_difference))


def render_steps(traces: list[Trace], lang: str = "en", fmt: str = "text") -> str:
    """Consecutive training steps (``trace_steps``): one row per step, E and max |beta^q|."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {list(LANGUAGES)}, got {lang!r}")
    w = _Writer(lang, fmt == "markdown", 8)
    w.heading(_w("steps", lang))
    Q = traces[0].net.Q
    header = ["k", "E", "E after"] + [f"|beta^{q}|" for q in range(1, Q + 1)]
    rows = [
        [str(k), f"{t.loss:.6g}", f"{t.loss_after:.6g}"]
        + [f"{float(np.abs(t.beta[q]).max()):.3g}" for q in range(1, Q + 1)]
        for k, t in enumerate(traces, 1)
    ]
    if w.md:
        w.lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        w.lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            w.lines.append("  " + "  ".join(c.rjust(n) for c, n in zip(row, widths, strict=True)))
    return "\n".join(w.lines).rstrip() + "\n"
