"""Figures of a training run (matplotlib, Agg backend; no window, no global pyplot state).

``report`` draws one PNG with: the training and validation loss per epoch, the validation
score, the per-layer RMS of the local errors beta^q over the epochs on a log scale (the
seed's "beta is large at the output and fades in deep layers", recorded by
``Diagnostics``), and, for classification, the confusion matrix of the test (or
validation) split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..training.loop import History

__all__ = ["report"]


def report(
    history: History,
    path: str | os.PathLike[str],
    *,
    confusion: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    confusion_title: str = "confusion matrix (test)",
    score_name: str = "score",
    title: str | None = None,
) -> None:
    """Write the report figure of a run to ``path`` (PNG).

    Parameters
    ----------
    history : the run's History; ``history.extra["beta_rms_q"]`` series are drawn if present.
    confusion : (K, K) counts, rows the true class and columns the predicted one.
    class_names : the K class labels, in the confusion matrix's order.
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
        ax = axes[3]
        counts = np.asarray(confusion)
        image = ax.imshow(counts, cmap="Blues")
        fig.colorbar(image, ax=ax, shrink=0.8)
        ticks = np.arange(len(counts))
        names = list(class_names) if class_names is not None else [str(t) for t in ticks]
        ax.set_xticks(ticks, names, rotation=90 if len(ticks) > 6 else 0, fontsize="small")
        ax.set_yticks(ticks, names, fontsize="small")
        ax.set(xlabel="predicted", ylabel="true", title=confusion_title)
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
