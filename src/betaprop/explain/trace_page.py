"""The one-example trace as an interactive page (``betaprop trace --format html``).

``page(t, lang)`` returns one self-contained HTML file: the template ``trace_page.html``
(inline CSS, a script that draws the network as SVG; nothing is fetched from a network) with
two JSON documents embedded in it:

- ``#trace-data``: the trace exactly as :func:`betaprop.explain.trace.as_dict` gives it, the
  numbers of ``betaprop trace --format json``. The script draws every number from it, so the
  page and the JSON cannot disagree.
- ``#page-words``: the page's words in English and Russian; the Russian uses the seed's
  terms (прямой проход, локальная ошибка, обратное распространение, ...). The page starts in
  ``lang`` and has a switch for the other language.

The page steps through the seed's order: the network and the example; step 2 for
q = 1..Q (s^q, y^q); step 3 (y^Q - d, f'(s^Q), delta^Q); step 4 for q = Q-1 down to 1
((W^{q+1})^T beta^{q+1}, f'(s^q), beta^q, the edges of W^{q+1} carrying the error back);
step 5 for q = 1..Q (dE/dW^q on the edges, dE/db^q); step 6 for q = 1..Q (the gradient step
W^q <- W^q - eta dE/dW^q taken by the engine, the new W^q and b^q, E before and after); and the
check of the literal reference against the fast engine.

What a stage computes comes from the trace (``as_dict(t)["lines"]``, expression trees over its
quantities): the page writes each line in symbols and again with its numbers, for whatever layer
operations the network has (batch normalisation, dropout), without branching on them.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from ..engine.network import Network
from .trace import LANGUAGES, Trace, as_dict, trace_steps
from .trace_text import render, render_steps

__all__ = ["page", "data", "show", "TraceView", "WORDS"]

# Placeholders in braces ({q}, {P} = q + 1, {Q}, ...) are filled in by the page's script;
# in running text a^{b} and a_{b} become superscripts and subscripts (so s^{{q}} is s^q).
WORDS: dict[str, dict[str, str]] = {
    "title": {
        "en": "Backpropagation, step by step, for one example",
        "ru": "Обратное распространение ошибки по шагам для одного примера",
    },
    "network": {
        "en": "network {sizes} · {activations} · loss {loss} · float64",
        "ru": "сеть {sizes} · {activations} · функция потерь {loss} · float64",
    },
    "loss_squared_error": {"en": "squared error", "ru": "квадратичная ошибка"},
    "loss_cross_entropy": {"en": "cross-entropy", "ru": "перекрёстная энтропия"},
    "loss_binary_cross_entropy": {
        "en": "binary cross-entropy",
        "ru": "бинарная перекрёстная энтропия",
    },
    "loss_poisson": {"en": "Poisson deviance", "ru": "пуассоновское отклонение"},
    "input": {"en": "input", "ru": "вход"},
    "output": {"en": "output", "ru": "выход"},
    "back": {"en": "Back", "ru": "Назад"},
    "next": {"en": "Next", "ru": "Далее"},
    "keys": {"en": "keys: ← →", "ru": "клавиши: ← →"},
    "positive": {"en": "positive", "ru": "положительные"},
    "negative": {"en": "negative", "ru": "отрицательные"},
    "legend": {
        "en": "line width and neuron colour: size of the value (per layer); hover for the "
        "numbers to 6 digits (every digit is in the JSON)",
        "ru": "толщина линии и цвет нейрона: величина значения (в пределах слоя); наведите "
        "курсор, чтобы увидеть числа с 6 значащими цифрами (все цифры есть в JSON)",
    },
    "scale_layer": {"en": "colours: per layer", "ru": "цвета: по слоям"},
    "scale_log": {"en": "colours: one log scale", "ru": "цвета: общая лог. шкала"},
    "legend_log": {
        "en": "line width and neuron colour: log10 of the size, on one scale for all layers "
        "(a faint layer is small); hover for the numbers to 6 digits",
        "ru": "толщина линии и цвет нейрона: log10 величины, одна шкала для всех слоёв (бледный "
        "слой — малые значения); наведите курсор, чтобы увидеть числа с 6 значащими цифрами",
    },
    "beta_bars": {
        "en": "largest |β^{q}| per layer, log scale (shorter and shorter towards q = 1: the "
        "vanishing gradient)",
        "ru": "наибольшее |β^{q}| каждого слоя, логарифмическая шкала (всё короче к q = 1 — "
        "затухание градиента)",
    },
    "step_label": {"en": "Step {n}", "ru": "Шаг {n}"},
    "exercise_note": {
        "en": "Exercise: type the hidden values to 4 significant digits, Enter to check",
        "ru": "Упражнение: введите скрытые значения с 4 значащими цифрами и нажмите Enter",
    },
    "reveal": {"en": "Show the answers", "ru": "Показать ответы"},
    "wrong": {
        "en": "{value} is not right to 4 significant digits: try again",
        "ru": "{value} — неверно с точностью до 4 значащих цифр; попробуйте ещё раз",
    },
    "training_step": {
        "en": "training step {k} of {n}",
        "ru": "шаг обучения {k} из {n}",
    },
    "over_steps": {
        "en": "E and the largest |β^{q}| per layer over the training steps (log scale)",
        "ru": "E и наибольшее |β^{q}| каждого слоя по шагам обучения (логарифмическая шкала)",
    },
    "seed": {"en": "the algorithm", "ru": "алгоритм"},
    "seed_vector": {
        "en": "the algorithm, for the whole layer (⊙: element-wise or Hadamard product)",
        "ru": "алгоритм для всего слоя (⊙: поэлементное произведение, произведение Адамара)",
    },
    "seed_general": {"en": "every layer q", "ru": "для каждого слоя q"},
    "this_stage": {"en": "this layer, this network", "ru": "этот слой этой сети"},
    "start": {"en": "The network and one example", "ru": "Сеть и один обучающий пример"},
    "start_text": {
        "en": "Layers are columns: q = 0 is the input x, q = {Q} the output layer. A line "
        "joins neuron r of layer q−1 to neuron j of layer q: the weight w_{jr} of W^{q} "
        "(N_{q} × N_{q−1}; its rows are the neurons of layer q). Its width and colour show the "
        "weight. d is the target of this example. Press Next or → to run it.",
        "ru": "Слои — столбцы: q = 0 — вход x, q = {Q} — выходной слой. Линия соединяет "
        "нейрон r слоя q−1 с нейроном j слоя q: это вес w_{jr} матрицы W^{q} (N_{q} × N_{q−1}, "
        "строки — нейроны слоя q). Толщина и цвет линии показывают вес. d — целевое "
        "значение из обучающего примера. Нажмите «Далее» или →.",
    },
    "step2": {
        "en": "Step 2: forward pass, layer {q}",
        "ru": "Шаг 2: прямой проход, слой {q}",
    },
    "step2_text": {
        "en": "The weighted sum of the previous layer's outputs plus the bias gives the "
        "pre-activation s^{{q}}; the activation gives the output y^{{q}}. Keep both: steps 3 and "
        "4 need them.",
        "ru": "Взвешенная сумма выходов предыдущего слоя плюс смещение даёт преактивацию "
        "s^{{q}}; функция активации даёт выход y^{{q}}. Сохраняем оба: они нужны на шагах 3 и 4.",
    },
    "step3": {
        "en": "Step 3: local error of the output layer",
        "ru": "Шаг 3: локальная ошибка выходного слоя",
    },
    "step3_text": {
        "en": "For every output neuron j: the prediction error y_{j} − d_{j} times the "
        "derivative of the activation f′(s_{j}). All neurons at once: an element-wise "
        "product. Keep δ^{{Q}}: it is where step 4 starts.",
        "ru": "Для каждого нейрона j выходного слоя: ошибка предсказания y_{j} − d_{j}, "
        "умноженная на производную активации f′(s_{j}). Для всех нейронов сразу — "
        "поэлементное произведение (произведение Адамара). Запомните вектор δ^{{Q}}: "
        "это стартовая точка обратного распространения на шаге 4.",
    },
    "fused": {
        "en": "Output {output} with loss {loss} is a canonical pair: f′ cancels against the "
        "loss derivative, and the engine computes δ = y − d directly (stable).",
        "ru": "Выход {output} с функцией потерь {loss} — каноническая пара: f′ сокращается с "
        "производной потерь, и движок вычисляет δ = y − d напрямую (устойчиво).",
    },
    "jacobian": {
        "en": "softmax is not element-wise: δ is the product with its Jacobian.",
        "ru": "softmax не поэлементна: δ — произведение с её матрицей Якоби.",
    },
    "no_hidden": {
        "en": "No hidden layers (Q = 1): step 4 has nothing to do.",
        "ru": "Скрытых слоёв нет (Q = 1): на шаге 4 делать нечего.",
    },
    "step4": {
        "en": "Step 4: local error of hidden layer {q} (backpropagation, q = Q−1 down to 1)",
        "ru": "Шаг 4: локальная ошибка скрытого слоя {q} (обратное распространение, "
        "q = Q−1, …, 1 в обратном порядке)",
    },
    "step4_text": {
        "en": "The error of layer {P} goes back through the transposed weights (W^{{P}})ᵀ: "
        "neuron j of layer {q} collects Σ_{r} w_{rj} β_{r}, the errors of the next layer "
        "weighted by the lines that leave it (highlighted, flowing backwards). Then, "
        "element-wise, times the derivative of the activation f′(s^{{q}}). First the whole "
        "product, then f′: never the other way round.",
        "ru": "Ошибка слоя {P} идёт назад через транспонированную матрицу весов (W^{{P}})ᵀ: "
        "нейрон j слоя {q} собирает Σ_{r} w_{rj} β_{r} — взвешенную сумму ошибок следующего слоя "
        "по выходящим из него линиям (подсвечены, текут назад). Это промежуточная ошибка; "
        "затем поэлементно умножаем на производную активации f′(z^{{q}}), z^{{q}} = s^{{q}} — "
        "преактивации. Сначала матричное умножение, потом поэлементное: никогда не меняйте "
        "порядок!",
    },
    "step5": {"en": "Step 5: gradients of layer {q}", "ru": "Шаг 5: градиенты слоя {q}"},
    "step5_text": {
        "en": "Each weight's gradient is the local error of the neuron it feeds times the "
        "output that enters it: an outer product. The lines now show ∂E/∂W^{{q}}.",
        "ru": "Градиент каждого веса — локальная ошибка нейрона, в который он входит, умноженная "
        "на входящий по нему выход: внешнее произведение. Линии теперь показывают ∂E/∂W^{{q}}.",
    },
    "step6": {
        "en": "Step 6: gradient step, layer {q}",
        "ru": "Шаг 6: шаг градиентного спуска, слой {q}",
    },
    "step6_text": {
        "en": "Every weight and bias moves against its gradient, by the learning rate η: "
        "W^{{q}} ← W^{{q}} − η ∂E/∂W^{{q}}. The engine took this step (betaprop's train_step "
        "with plain SGD); the lines now show the new weights. E is the loss of the same pass "
        "before and after the step: it falls when η is small enough.",
        "ru": "Каждый вес и каждое смещение сдвигаются против своего градиента на величину, "
        "пропорциональную скорости обучения η: W^{{q}} ← W^{{q}} − η ∂E/∂W^{{q}}. Этот шаг "
        "сделал движок (train_step из betaprop, обычный SGD); линии теперь показывают новые "
        "веса. E — потери того же прохода до и после шага: при достаточно малом η они "
        "уменьшаются.",
    },
    "loss_step": {
        "en": "loss E before → after the step (the same example and pass)",
        "ru": "потери E до шага → после шага (тот же пример и тот же проход)",
    },
    "check": {
        "en": "Check: the literal reference and the fast engine",
        "ru": "Проверка: дословная реализация и быстрый движок",
    },
    "check_text": {
        "en": "The same example through the literal per-neuron transcription of the seed's "
        "loops (betaprop.engine.reference) and through the fast engine: every s, y, β, "
        "∂E/∂W, ∂E/∂b is compared.",
        "ru": "Тот же пример через дословную реализацию алгоритма с циклами по нейронам "
        "(betaprop.engine.reference) и через быстрый движок: сравниваются все s, y, β, "
        "∂E/∂W, ∂E/∂b.",
    },
    "agree": {
        "en": "The literal reference equals the fast engine (to 1e-12).",
        "ru": "Дословная реализация и быстрый движок совпадают (до 1e-12).",
    },
    "disagree": {
        "en": "The literal reference and the fast engine DISAGREE.",
        "ru": "Дословная реализация и быстрый движок НЕ СОВПАДАЮТ.",
    },
    "sum_for": {
        "en": "neuron j = {j} of layer {q}: row {j} of (W^{{P}})ᵀ, i.e. column {j} of W^{{P}} "
        "(the weights that leave it), times β^{{P}}, summed (click a neuron of layer {q} to "
        "choose j)",
        "ru": "нейрон j = {j} слоя {q}: строка {j} матрицы (W^{{P}})ᵀ, то есть столбец {j} "
        "матрицы W^{{P}} (веса, выходящие из нейрона), умножается на β^{{P}} и суммируется "
        "(щёлкните по нейрону слоя {q}, чтобы выбрать j)",
    },
    "layer_values": {"en": "layer {q}, N = {N} neurons", "ru": "слой {q}, N = {N} нейронов"},
    "more_rows": {"en": "… {n} more (in the JSON)", "ru": "… ещё {n} (в JSON)"},
    "first_columns": {"en": "first {n} columns", "ru": "первые {n} столбцов"},
    "target": {
        "en": "target d (the example's true values)",
        "ru": "целевое значение d (истинные значения примера)",
    },
    "loss": {"en": "loss of this example", "ru": "потери на этом примере"},
    "neuron": {"en": "layer {q}, neuron j = {j}", "ru": "слой {q}, нейрон j = {j}"},
    "edge": {
        "en": "weight of W^{q}: from neuron {r} of layer {p} to neuron {j} of layer {q}",
        "ru": "вес матрицы W^{q}: от нейрона {r} слоя {p} к нейрону {j} слоя {q}",
    },
    "summarised": {
        "en": "neurons {from}–{to} ({n}) are not drawn; every value is in the tables' JSON",
        "ru": "нейроны {from}–{to} ({n}) не нарисованы; все значения есть в JSON",
    },
}


def data(t: Trace | Sequence[Trace]) -> dict[str, Any]:
    """What the page embeds: ``as_dict`` of one trace, or {"steps": [...]} of several."""
    if isinstance(t, Trace):
        return as_dict(t)
    return {"steps": [as_dict(one) for one in t]}


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: '<' written as \\u003c, so no '</script>' can end it."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def page(
    t: Trace | Sequence[Trace], lang: str = "en", exercise: Sequence[tuple[str, int]] = ()
) -> str:
    """The trace ``t`` as one self-contained HTML page, opening in ``lang`` ("en" or "ru").

    The embedded numbers are ``as_dict(t)``, the same as ``betaprop trace --format json``.
    Several traces (``trace_steps``: consecutive training steps) are embedded as
    ``{"steps": [as_dict(t) for each]}``, and the page has a scrubber over them.

    ``exercise``: (name, q) pairs of the quantities the page hides for a class (e.g.
    ("beta", 1), ("db", 2)); their table cells become inputs, checked to the 4 significant
    digits the page shows, with a button that reveals the answers. The numbers stay in the
    embedded JSON (a student who reads the source finds them).
    """
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {list(LANGUAGES)}, got {lang!r}")
    template = resources.files(__package__).joinpath("trace_page.html").read_text("utf-8")
    return (
        template.replace("__LANG__", lang)
        .replace("__TRACE__", _script_json(data(t)))
        .replace("__WORDS__", _script_json(WORDS))
        .replace("__EXERCISE__", _script_json([[name, int(q)] for name, q in exercise]))
    )


class TraceView:
    """What ``betaprop.trace`` returns: the page in a notebook, the text trace as a string.

    In Jupyter (JupyterLab, VS Code, Colab) its rich display is the page itself, in an
    ``<iframe srcdoc>``: self-contained, no server, nothing fetched; ``str(view)`` is the text
    trace; ``view.traces`` the traced steps; ``view.save(path)`` writes the page.
    """

    def __init__(
        self, traces: list[Trace], lang: str = "en", exercise: Sequence[tuple[str, int]] = ()
    ) -> None:
        self.traces, self.lang, self.exercise = traces, lang, list(exercise)

    @property
    def html(self) -> str:
        """The page, as ``betaprop trace --format html`` writes it."""
        one: Trace | list[Trace] = self.traces[0] if len(self.traces) == 1 else self.traces
        return page(one, self.lang, self.exercise)

    def save(self, path: str) -> None:
        """Write the page to ``path`` (UTF-8)."""
        with open(path, "w", encoding="utf-8") as out:
            out.write(self.html)

    def _repr_html_(self) -> str:
        # the page is a whole document with its own styles: an iframe keeps the notebook's
        # styles and the page's apart (srcdoc: nothing to serve, works offline)
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 760px; border: 1px solid #d9dde5; border-radius: 8px" '
            'title="betaprop trace"></iframe>'
        )

    def __str__(self) -> str:
        text = render(self.traces[0], self.lang)
        if len(self.traces) > 1:
            text += render_steps(self.traces, self.lang)
        return text

    def __repr__(self) -> str:
        t = self.traces[0]
        return (
            f"<betaprop trace: sizes {list(t.net.sizes)}, {len(self.traces)} step(s), "
            f"E {t.loss:.6g} -> {self.traces[-1].loss_after:.6g}; print() for the text>"
        )


def show(
    net: Network,
    x: Sequence[float] | Any,
    d: Sequence[float] | Any,
    *,
    steps: int = 1,
    learning_rate: float = 0.1,
    batch: tuple[Any, Any] | None = None,
    lang: str = "en",
    exercise: Sequence[tuple[str, int]] = (),
) -> TraceView:
    """Steps 2-6 for one example (``steps`` consecutive training steps), for a notebook.

    ``betaprop.trace(net, x, d)``: the options of ``betaprop trace`` (``steps``,
    ``learning_rate``, ``batch`` for batch normalisation, ``lang``, ``exercise``). The result
    displays as the interactive page in Jupyter and prints as the text trace.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {list(LANGUAGES)}, got {lang!r}")
    return TraceView(trace_steps(net, x, d, steps, batch, learning_rate), lang, exercise)
