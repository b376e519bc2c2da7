"""Figures of a training run (matplotlib, Agg backend; no window, no global pyplot state).

``report`` draws one PNG with: the training and validation loss per epoch, the validation
score, the per-layer RMS of the local errors beta^q over the epochs on a log scale (the
seed's "beta is large at the output and fades in deep layers", recorded by
``Diagnostics``), and, for classification, the confusion matrix of the test (or
validation) split: of the ``MOST_CLASSES`` most frequent classes when there are more, so
that drawing it takes time and memory bounded by that number, never by the number of
classes (10 000 classes: a 10 000 x 10 000 matrix is 763 MiB, 20 000 tick labels minutes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..training.loop import History

__all__ = ["report", "Confusion", "MOST_CLASSES"]

MOST_CLASSES = 25  # the confusion panel shows at most this many classes
LABEL_CHARACTERS = 24  # a longer class label is cut to this many characters on the axes


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
        frequency = np.bincount(t[t >= 0], minlength=len(classes))
        shown = np.sort(np.argsort(-frequency, kind="stable")[:most])  # in the model's order
        position = np.full(len(classes) + 1, -1, dtype=np.intp)  # slot -1: a label not known
        position[shown] = np.arange(len(shown))
        rows, columns = position[t], position[p]
        kept = (rows >= 0) & (columns >= 0)
        counts = np.zeros((len(shown), len(shown)), dtype=np.int64)
        np.add.at(counts, (rows[kept], columns[kept]), 1)
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

    panels = 3 if confusion is None else 4
    fig = Figure(figsize=(5.0 * panels, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    epochs = history.epoch

    ax = axes[0]
    ax.plot(epochs, history.loss, label="training")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, label="validation")
    ax.set(xlabel="epoch", ylabel="mean loss E", title="loss")
    if min(history.loss + history.val_loss, default=1.0) > 0:
        ax.set_yscale("log")
    ax.legend()

    ax = axes[1]
    if history.val_score:
        ax.plot(epochs, history.val_score, color="tab:green")
        ax.set(xlabel="epoch", ylabel=score_name, title=f"validation {score_name}")
    else:
        ax.text(0.5, 0.5, "no validation split", ha="center", va="center")
        ax.set(title=f"validation {score_name}")

    ax = axes[2]
    layers = sorted(
        int(key.rsplit("_", 1)[1]) for key in history.extra if key.startswith("beta_rms_")
    )
    for q in layers:
        values = np.asarray(history.extra[f"beta_rms_{q}"], dtype=float)
        ax.plot(epochs[: len(values)], np.maximum(values, 1e-300), label=f"$\\beta^{{{q}}}$")
    ax.set(xlabel="epoch", ylabel="RMS of $\\beta^q$ (one example)", title="local errors per layer")
    if layers:
        ax.set_yscale("log")
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no diagnostics recorded", ha="center", va="center")

    if confusion is not None:
        if not isinstance(confusion, Confusion):
            counts = np.asarray(confusion)
            labels = class_names if class_names is not None else range(len(counts))
            confusion = Confusion.of_counts(counts, [str(label) for label in labels])
        ax = axes[3]
        counts = confusion.counts
        image = ax.imshow(counts, cmap="Blues")
        fig.colorbar(image, ax=ax, shrink=0.8)
        ticks = np.arange(len(counts))
        names = [_short(label) for label in confusion.labels]
        ax.set_xticks(ticks, names, rotation=90 if len(ticks) > 6 else 0, fontsize="small")
        ax.set_yticks(ticks, names, fontsize="small")
        shown = f"{confusion_title}\n{confusion.title}" if confusion.title else confusion_title
        ax.set(xlabel="predicted", ylabel="true", title=shown)
        if len(ticks) <= 12:
            limit = counts.max() / 2 if counts.size else 0
            for i in ticks:
                for j in ticks:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize="small",
                            color="white" if counts[i, j] > limit else "black")  # fmt: skip
    for ax in axes[:3]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.savefig(os.fspath(path), dpi=90)
    return fig


def _short(label: str) -> str:
    """A class label as an axis shows it: at most ``LABEL_CHARACTERS`` characters, and its
    dollar signs as written (two of them would start matplotlib's mathtext)."""
    if len(label) > LABEL_CHARACTERS:
        label = label[: LABEL_CHARACTERS - 1] + "…"
    return label.replace("$", r"\$")
