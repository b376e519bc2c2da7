"""The sentences of the text trace (``trace_text.render``), one entry each, en and ru.

The Russian uses the seed's terms and one register (вы); placeholders in braces are filled in
with ``str.format``.
"""

from __future__ import annotations

__all__ = ["WORDS"]

WORDS: dict[str, dict[str, str]] = {
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
        "ru": "Шаг 4: локальные ошибки скрытых слоёв, q = Q-1, ..., 1 в обратном порядке",
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
    "step6": {
        "en": "Step 6: one gradient step, learning rate eta = {eta:g}",
        "ru": "Шаг 6: один шаг градиентного спуска, скорость обучения eta = {eta:g}",
    },
    "step6_text": {
        "en": "Every weight and bias moves against its gradient: W^q <- W^q - eta dE/dW^q, "
        "b^q <- b^q - eta dE/db^q (the engine's train_step with plain SGD). The loss of the "
        "same pass before and after the step:",
        "ru": "Каждый вес и каждое смещение сдвигаются против своего градиента: "
        "W^q <- W^q - eta dE/dW^q, b^q <- b^q - eta dE/db^q (train_step движка, обычный SGD). "
        "Потери того же прохода до и после шага:",
    },
    "loss_before": {"en": "E before", "ru": "E до шага"},
    "loss_after": {"en": "E after", "ru": "E после шага"},
    "steps": {
        "en": "Training steps on this example: E before each step and the largest |beta^q| "
        "per layer",
        "ru": "Шаги обучения на этом примере: E перед каждым шагом и наибольшее |beta^q| "
        "каждого слоя",
    },
    "header": {
        "en": "{network}: sizes {sizes}, activations {activations}, loss {loss} (float64)",
        "ru": "{network}: размеры слоёв {sizes}, активации {activations}, функция потерь "
        "{loss} (float64)",
    },
    "check": {
        "en": "Check: the literal per-neuron transcription (betaprop.reference) and the fast "
        "engine {verdict}: max |difference| over s, y, beta, dE/dW, dE/db = {diff:.3g}",
        "ru": "Проверка: дословная реализация с циклами по нейронам (betaprop.reference) и быстрый "
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
    "lnorm2": {
        "en": "Layer normalisation of layer {q}: for this example, s^q is centred by the mean "
        "mu^q of its N_q values and divided by their standard deviation sigma^q (xhat^q), then "
        "scaled and shifted, u^q = gamma^q xhat^q + shift^q, and f takes u^q.",
        "ru": "Послойная нормализация слоя {q}: для этого примера s^q центрируется средним mu^q "
        "по N_q значениям слоя и делится на их стандартное отклонение sigma^q (xhat^q), затем "
        "масштабируется и сдвигается, u^q = gamma^q xhat^q + shift^q, и f применяется к u^q.",
    },
    "residual2": {
        "en": "Layer {q} is residual: its input y^{{q-1}} is added to its output.",
        "ru": "Слой {q} остаточный: его вход y^{{q-1}} прибавляется к его выходу.",
    },
    "residual4": {
        "en": "Layer {P} is residual: the error g^{P} = dE/dy^{P} also reaches layer {q} "
        "directly, g^{q} = (W^{P})^T beta^{P} + g^{P}.",
        "ru": "Слой {P} остаточный: ошибка g^{P} = dE/dy^{P} приходит в слой {q} и напрямую, "
        "g^{q} = (W^{P})^T beta^{P} + g^{P}.",
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
