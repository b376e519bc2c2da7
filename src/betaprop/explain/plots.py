"""Figures of a training run (matplotlib, Agg backend; no window, no global pyplot state).

``report`` draws one PNG, a 2 x 2 grid readable on a laptop (1080 x 900 pixels, no text under
10 points), with: the training and validation loss per epoch, the validation
score, the per-layer RMS of the local errors beta^q over the epochs on a log scale (the
seed's "beta is large at the output and fades in deep layers", recorded by
``Diagnostics``), and, for classification, the confusion matrix of the test (or
validation) split: of the ``MOST_CLASSES`` most frequent classes when there are more, so
that drawing it takes time and memory bounded by that number, never by the number of
classes (10 000 classes: a 10 000 x 10 000 matrix is 763 MiB, 20 000 tick labels minutes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..training.loop import History

__all__ = ["report", "Confusion", "MOST_CLASSES", "depth_figure", "color", "COLORS"]

MOST_CLASSES = 25  # the confusion panel shows at most this many classes
LABEL_CHARACTERS = 24  # a longer class label is cut to this many characters on the axes
REPORT_SIZE = (12.0, 10.0)  # inches: 1080 x 900 pixels at the report's 90 dpi
REPORT_FONT = 10  # points: the smallest text of the report


@dataclass(frozen=True)
class Confusion:
    """The part of a confusion matrix that the report shows.

    counts : (k, k) counts, rows the true class and columns the predicted one, for the k
        classes shown: all C classes if C <= ``MOST_CLASSES``, else the k = ``MOST_CLASSES``
        most frequent true classes (predictions of the other classes are not counted).
    labels : the k classes shown, in the model's order.
    n_classes : C, the number of classes of the model.
    """

    counts: np.ndarray
    labels: list[str]
    n_classes: int

    @classmethod
    def of(
        cls,
        truth: Sequence[str],
        predicted: Sequence[str],
        classes: Sequence[str],
        most: int = MOST_CLASSES,
    ) -> Confusion:
        """The shown block, counted from the labels in O(n + C) memory (never C x C)."""
        index = {label: j for j, label in enumerate(classes)}
        t = np.fromiter((index.get(v, -1) for v in truth), dtype=np.intp, count=len(truth))
        p = np.fromiter((index.get(v, -1) for v in predicted), dtype=np.intp, count=len(truth))
        return cls.of_codes(t, p, classes, most)

    @classmethod
    def of_codes(
        cls,
        t: np.ndarray,
        p: np.ndarray,
        classes: Sequence[str],
        most: int = MOST_CLASSES,
        total: Callable[[np.ndarray], None] | None = None,
    ) -> Confusion:
        """``of`` from the labels' indices in ``classes`` (-1: not a class). ``total`` sums
        an int64 array in place over the processes that hold the other rows (data parallel:
        an ``Allreduce``): the class counts that choose the classes shown, then the block."""
        frequency = np.bincount(t[t >= 0], minlength=len(classes)).astype(np.int64)
        if total is not None:
            total(frequency)
        shown = np.sort(np.argsort(-frequency, kind="stable")[:most])  # in the model's order
        position = np.full(len(classes) + 1, -1, dtype=np.intp)  # slot -1: a label not known
        position[shown] = np.arange(len(shown))
        rows, columns = position[t], position[p]
        kept = (rows >= 0) & (columns >= 0)
        counts = np.zeros((len(shown), len(shown)), dtype=np.int64)
        np.add.at(counts, (rows[kept], columns[kept]), 1)
        if total is not None:
            total(counts)
        return cls(counts, [str(classes[j]) for j in shown], len(classes))

    @classmethod
    def of_counts(
        cls, counts: np.ndarray, labels: Sequence[str], most: int = MOST_CLASSES
    ) -> Confusion:
        """The shown block of a whole (C, C) matrix: the ``most`` rows with the largest sums."""
        counts = np.asarray(counts)
        shown = np.sort(np.argsort(-counts.sum(axis=1), kind="stable")[:most])
        return cls(counts[np.ix_(shown, shown)], [str(labels[j]) for j in shown], len(counts))

    @property
    def title(self) -> str:
        """What the panel shows, when it is not every class."""
        k = len(self.labels)
        return "" if k == self.n_classes else f"the {k} most frequent of {self.n_classes} classes"


def report(
    history: History,
    path: str | os.PathLike[str],
    *,
    confusion: Confusion | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    confusion_title: str = "confusion matrix (test)",
    score_name: str = "score",
    title: str | None = None,
) -> Any:
    """Write the report figure of a run to ``path`` (PNG); returns the matplotlib Figure.

    Parameters
    ----------
    history : the run's History; ``history.extra["beta_rms_q"]`` series are drawn if present.
    confusion : a ``Confusion``, or (C, C) counts, rows the true class and columns the
        predicted one (then the ``MOST_CLASSES`` classes with most examples are drawn).
    class_names : the C class labels, in the order of (C, C) counts.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=REPORT_SIZE, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(2, 2)  # a 2 x 2 grid: loss, score / beta, confusion
    axes = list(grid.ravel())
    if confusion is None:
        fig.delaxes(axes.pop())  # three panels: the fourth cell stays empty
    _loss_panel(axes[0], history)
    _score_panel(axes[1], history, score_name)
    _beta_panel(axes[2], history)
    if confusion is not None:
        if not isinstance(confusion, Confusion):
            counts = np.asarray(confusion)
            labels = class_names if class_names is not None else range(len(counts))
            confusion = Confusion.of_counts(counts, [str(label) for label in labels])
        _confusion_panel(fig, axes[3], confusion, confusion_title)
    for ax in axes[:3]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in axes:  # readable on a laptop: nothing under REPORT_FONT points
        ax.title.set_fontsize(REPORT_FONT + 2)
        ax.xaxis.label.set_fontsize(REPORT_FONT + 1)
        ax.yaxis.label.set_fontsize(REPORT_FONT + 1)
        ax.tick_params(labelsize=REPORT_FONT)
        for text in ax.texts:
            text.set_fontsize(max(text.get_fontsize(), REPORT_FONT))
    if title:
        fig.suptitle(title, fontsize=REPORT_FONT + 4)
    fig.savefig(os.fspath(path), dpi=90)
    return fig


def _loss_panel(ax: Any, history: History) -> None:
    """The training (and validation) loss per epoch, on a log scale when it is positive."""
    ax.plot(history.epoch, history.loss, label="training")
    if history.val_loss:
        ax.plot(history.epoch, history.val_loss, label="validation")
    ax.set(xlabel="epoch", ylabel="mean loss E", title="loss")
    if min(history.loss + history.val_loss, default=1.0) > 0:
        ax.set_yscale("log")
    ax.legend(fontsize=REPORT_FONT)


def _score_panel(ax: Any, history: History, score_name: str) -> None:
    """The validation score per epoch, or a line saying there is no validation split."""
    if history.val_score:
        ax.plot(history.epoch, history.val_score, color="tab:green")
        ax.set(xlabel="epoch", ylabel=score_name, title=f"validation {score_name}")
    else:
        ax.text(0.5, 0.5, "no validation split", ha="center", va="center")
        ax.set(title=f"validation {score_name}")


def _beta_panel(ax: Any, history: History) -> None:
    """RMS beta^q per layer per epoch (the diagnostics' ``beta_rms_q`` series), log scale."""
    layers = sorted(
        int(key.rsplit("_", 1)[1]) for key in history.extra if key.startswith("beta_rms_")
    )
    for q in layers:
        values = np.asarray(history.extra[f"beta_rms_{q}"], dtype=float)
        ax.plot(history.epoch[: len(values)], np.maximum(values, 1e-300), label=f"$\\beta^{{{q}}}$")
    ax.set(xlabel="epoch", ylabel="RMS of $\\beta^q$ (one example)", title="local errors per layer")
    if layers:
        ax.set_yscale("log")
        ax.legend(fontsize=REPORT_FONT, ncol=1 + len(layers) // 8)
    else:
        ax.text(0.5, 0.5, "no diagnostics recorded", ha="center", va="center")


def _confusion_panel(fig: Any, ax: Any, confusion: Confusion, confusion_title: str) -> None:
    """The confusion counts as an image, with their numbers written in when 12 classes or
    fewer are shown."""
    counts = confusion.counts
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = np.arange(len(counts))
    names = [_short(label) for label in confusion.labels]
    ax.set_xticks(ticks, names, rotation=90 if len(ticks) > 6 else 0, fontsize=REPORT_FONT)
    ax.set_yticks(ticks, names, fontsize=REPORT_FONT)
    shown = f"{confusion_title}\n{confusion.title}" if confusion.title else confusion_title
    ax.set(xlabel="predicted", ylabel="true", title=shown)
    if len(ticks) <= 12:
        limit = counts.max() / 2 if counts.size else 0
        for i in ticks:
            for j in ticks:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=REPORT_FONT,
                        color="white" if counts[i, j] > limit else "black")  # fmt: skip


def _short(label: str) -> str:
    """A class label as an axis shows it: at most ``LABEL_CHARACTERS`` characters, and its
    dollar signs as written (two of them would start matplotlib's mathtext)."""
    if len(label) > LABEL_CHARACTERS:
        label = label[: LABEL_CHARACTERS - 1] + "…"
    return label.replace("$", r"\$")


# ----------------------------------------------------------------------------- the depth study
# One colour per configuration, the same in every run and every figure (a name not listed gets
# a colour from its CRC-32, also the same in every run: Python's hash() is salted per process).
COLORS = {
    "sigmoid": "#1f77b4",
    "tanh": "#ff7f0e",
    "relu": "#2ca02c",
    "relu+bn": "#d62728",
    "relu+ln": "#e377c2",
    "relu+res": "#7f7f7f",
    "relu+res+ln": "#9467bd",
    "relu+res+bn": "#8c564b",
}
SPARE_COLORS = ("#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")

STEP_4 = r"$\beta^q = f'(s^q) \odot (W^{{q+1}})^T \beta^{{q+1}}$"  # braces doubled: format()
STUDY_TEXT = {
    "en": {
        "title": r"Local errors $\beta^q$ per layer $q$: the seed's remark on step 4, measured",
        "start": r"RMS $\beta^q$ at initialisation",
        "end": r"RMS $\beta^q$ after {epochs} epochs",
        "curve": "training loss",
        "accuracy": "test accuracy (dashed: chance)",
        "r2": r"test $R^2$",
        "layer": r"layer $q$",
        "epoch": "epoch",
        "depth": r"$Q$ = {Q} {layers}",
        "diverged": "diverged",
        "caption": r"RMS over neurons and examples of the per-example local error $\beta^q$ "
        r"(log scale); {data}, hidden width {width}, Adam; trained on {n_train} rows, "
        r"accuracy on {n_test} held-out test rows. Lines falling towards $q = 1$ are the "
        rf"vanishing gradient: step 4, {STEP_4}, multiplies $\beta$ by $f'(s^q)$ and "
        r"$(W^{{q+1}})^T$ once per layer; sigmoid's $f' \leq 1/4$, ReLU's $f' = 1$ on active "
        r"units, batch norm rescales each layer.",
        "note": r"Why {name} stays low at $Q$ = {Q}: batch norm divides each layer's $s^q$ by "
        r"its spread, so $\beta$ does not fade; in a plain stack it grows towards the input "
        r"instead ($\beta^1 / \beta^{{Q-1}}$ = {ratio} at initialisation), and the network "
        r"reaches {percent} test accuracy in {epochs} {epochs_word}. Batch norm is not broken: "
        r"with the skip (+res) the output's error reaches every layer by addition, not "
        r"through a product of every layer's factors (docs/study.md).",
    },
    "ru": {
        "title": r"Локальные ошибки $\beta^q$ по слоям $q$: проверка замечания к шагу 4",
        "start": r"СКЗ $\beta^q$ при инициализации",
        "end": r"СКЗ $\beta^q$ после обучения (эпох: {epochs})",
        "curve": "ошибка на обучающих примерах",
        "accuracy": "точность на тестовых примерах\n(пунктир: случайное угадывание)",
        "r2": r"$R^2$ на тестовых примерах",
        "layer": r"слой $q$",
        "epoch": "эпоха",
        "depth": r"$Q$ = {Q} {layers}",
        "diverged": "обучение разошлось",
        "caption": r"Среднеквадратичное значение (СКЗ) по нейронам и примерам локальной "
        r"ошибки $\beta^q$, вычисленной для "
        r"каждого примера отдельно (логарифмическая шкала); {data}, ширина скрытых слоёв "
        r"{width}, Adam; обучение на {n_train} примерах, точность — на {n_test} отложенных "
        r"тестовых примерах. Линии, падающие к $q = 1$, — затухание градиента: шаг 4, "
        rf"{STEP_4}, в каждом слое умножает $\beta$ на $f'(s^q)$ и "
        r"$(W^{{q+1}})^T$; у сигмоиды $f' \leq 1/4$, у ReLU $f' = 1$ на активных нейронах, "
        r"батч-нормализация заново масштабирует каждый слой.",
        "note": r"Почему у {name} низкая точность при $Q$ = {Q}: батч-нормализация делит $s^q$ "
        r"каждого слоя на его разброс, поэтому $\beta$ не затухает; но в сети без "
        r"пропускающих связей $\beta$ растёт к входу ($\beta^1 / \beta^{{Q-1}}$ = {ratio} при "
        r"инициализации), и за {epochs} {epochs_word} сеть достигает точности {percent} на "
        r"тестовых примерах. Дело не в неисправности батч-нормализации: с пропускающей связью "
        r"(+res) ошибка выхода доходит до каждого слоя сложением, а не произведением "
        r"множителей всех слоёв (docs/study.md).",
    },
}
NOTE_BOX = {"boxstyle": "round", "facecolor": "#fff4d6", "edgecolor": "#c8a04a"}
PANEL_HEIGHT = 2.7  # inches per row of panels
TEXT_LINE = 0.21  # inches per line of caption at 10 pt


def color(configuration: str) -> str:
    """The fixed colour of a study configuration (the same in every run)."""
    import zlib

    if configuration in COLORS:
        return COLORS[configuration]
    return SPARE_COLORS[zlib.crc32(configuration.encode("utf-8")) % len(SPARE_COLORS)]


def depth_figure(study: Any, lang: str = "en") -> Any:
    """The depth study's figure (Agg, no pyplot state): one column per depth Q; rows: RMS
    beta^q against q at initialisation and after training (log scale), the training loss
    (log scale) and the test score per configuration; below, the caption and, where a plain
    batch-norm configuration is in the study, the note on why it stays low at depth."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if lang not in STUDY_TEXT:
        raise ValueError(f"lang must be one of {list(STUDY_TEXT)}, got {lang!r}")
    text = STUDY_TEXT[lang]
    columns = len(study.depths)
    width = max(4.3 * columns + 0.8, 9.0)
    characters = int(width * 12)  # about what a line of 10 pt text holds
    caption = _wrap_math(text["caption"].format(data=study.data, width=study.width,
                                                n_train=study.n_train, n_test=study.n_test),
                         characters)  # fmt: skip
    note = _batch_norm_note(study, text)
    note = _wrap_math(note, characters) if note else ""
    lines = caption.count("\n") + 1 + (note.count("\n") + 2 if note else 0)
    text_height = TEXT_LINE * lines + 0.3
    fig = Figure(figsize=(width, 4 * PANEL_HEIGHT + 1.2 + text_height), layout="constrained")
    FigureCanvasAgg(fig)
    parts: Any = fig.subfigures(2, 1, height_ratios=[4 * PANEL_HEIGHT + 1.2, text_height])
    top, bottom = parts
    axes = top.subplots(4, columns, squeeze=False)
    for column, Q in enumerate(study.depths):
        _depth_column(axes[:, column], study, Q, text)
    axes[0, 0].set_ylabel(text["start"])
    axes[1, 0].set_ylabel(text["end"].format(epochs=study.epochs))
    axes[2, 0].set_ylabel(text["curve"])
    axes[3, 0].set_ylabel(text["accuracy"] if study.loss == "cross_entropy" else text["r2"])
    handles = [Line2D([], [], color=color(name), lw=2.5) for name in study.configurations]
    top.legend(handles, study.configurations, loc="outside upper center",
               ncol=min(len(handles), 8), fontsize=11, frameon=False)  # fmt: skip
    fig.suptitle(text["title"], fontsize=14)
    bottom.text(0.01, 1.0, caption, va="top", ha="left", fontsize=10)
    if note:
        y = 1.0 - (caption.count("\n") + 1.6) * TEXT_LINE / text_height
        bottom.text(0.01, y, note, va="top", ha="left", fontsize=10, bbox=NOTE_BOX)
    return fig


def _depth_column(axes: Any, study: Any, Q: int, text: dict[str, str]) -> None:
    """The four panels of depth Q: beta at the start, at the end, the loss, the test score."""
    from matplotlib.ticker import MaxNLocator

    scores = []
    for name in study.configurations:
        run = study.run(name, Q)
        layers = np.arange(1, Q + 1)
        style = {"color": color(name), "marker": "o" if Q <= 20 else None, "ms": 3, "lw": 1.6}
        axes[0].semilogy(layers, _positive(run.beta_start), **style)
        axes[1].semilogy(layers, _positive(run.beta_end), **style)
        epochs = np.arange(1, len(run.loss) + 1)
        axes[2].semilogy(epochs, _positive(run.loss), color=color(name), lw=1.6)
        scores.append(run.test_score)
        if run.diverged:
            axes[2].annotate(text["diverged"], (epochs[-1], run.loss[-1]), fontsize=9)
    noun = _words(text, Q, ("layer", "layers"), ("слой", "слоя", "слоёв"))
    axes[0].set_title(text["depth"].format(Q=Q, layers=noun), fontsize=12)
    for ax in axes[:2]:
        ax.set_xlabel(text["layer"])
    axes[2].set_xlabel(text["epoch"])
    for ax in axes[:3]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="major", alpha=0.3)
    positions = np.arange(len(scores))
    bars = axes[3].bar(positions, scores, color=[color(n) for n in study.configurations])
    axes[3].bar_label(bars, fmt="%.2f", fontsize=9)
    axes[3].set_xticks(positions, study.configurations, rotation=30, ha="right", fontsize=9)
    if study.loss == "cross_entropy" and study.n_outputs > 1:
        chance = 1.0 / study.n_outputs
        axes[3].axhline(chance, color="black", ls="--", lw=1)
        axes[3].set_ylim(0, 1.12)
    axes[3].grid(True, axis="y", alpha=0.3)


def _batch_norm_note(study: Any, text: dict[str, str]) -> str:
    """The note on a plain batch-norm configuration (+bn without +res) at the largest depth
    Q >= 20 of the study, with its measured numbers; "" when there is none."""
    deepest = max(study.depths)
    plain = [n for n in study.configurations if "bn" in n.split("+") and "res" not in n.split("+")]
    if not plain or deepest < 20:
        return ""
    run = study.run(plain[0], deepest)
    english = text is STUDY_TEXT["en"]
    percent = f"{run.test_score:.0%}" if english else f"{100 * run.test_score:.0f} %"
    epochs_word = _words(text, study.epochs, ("epoch", "epochs"), ("эпоху", "эпохи", "эпох"))
    return text["note"].format(name=plain[0], Q=deepest, ratio=_power(run.ratio("start")),
                               percent=percent, epochs=study.epochs,
                               epochs_word=epochs_word)  # fmt: skip


def _words(text: dict[str, str], n: int, english: tuple[str, str], russian: tuple[str, ...]) -> str:
    """The noun after the number n: English one/many; Russian 1 слой, 2-4 слоя, 5-20 слоёв."""
    if text is STUDY_TEXT["en"]:
        return english[0] if n == 1 else english[1]
    if n % 10 == 1 and n % 100 != 11:
        return russian[0]
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return russian[1]
    return russian[2]


def _power(value: float) -> str:
    """A positive number as mathtext, e.g. 1.5e+08 -> $1.5 \\cdot 10^{8}$."""
    if not np.isfinite(value) or value <= 0:
        return f"{value:.2g}"
    exponent = int(np.floor(np.log10(value)))
    if -2 <= exponent <= 3:
        return f"{value:.3g}"
    return rf"${value / 10.0**exponent:.1f} \cdot 10^{{{exponent}}}$"


def _positive(values: Sequence[float]) -> np.ndarray:
    """Values for a log axis: zeros (a layer with no error at all) become NaN (a gap)."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(array > 0, array, np.nan)


def _wrap_math(text: str, width: int) -> str:
    """``text`` broken into lines of at most about ``width`` characters, at spaces outside
    $...$ (a line break inside mathtext would break the formula)."""
    import textwrap

    pieces = text.split("$")
    for k in range(1, len(pieces), 2):  # the odd pieces are inside $...$
        pieces[k] = pieces[k].replace(" ", "\x00")
    joined = "$".join(pieces)
    lines = textwrap.wrap(joined, max(width, 60), break_on_hyphens=False)
    return "\n".join(lines).replace("\x00", " ")
