"""Callbacks that record a stochastic fit in scikit-learn's fitted attributes, or show it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.network import Network
from ..training import Callback, History
from .rules import beta_sizes

if TYPE_CHECKING:
    from .base import BaseMLP

__all__ = ["FittedAttributes", "ProgressBar"]


class FittedAttributes(Callback):
    """After each epoch ``n_iter_``, ``t_`` (+ n samples), ``loss_`` and ``loss_curve_``;
    after the first mini-batch of each epoch ``beta_history_``."""

    def __init__(self, model: BaseMLP, n: int, rule: Any = None) -> None:
        self.model, self.n, self.rule = model, n, rule

    def on_batch_end(self, net: Network, epoch: int, batch: int, loss: float) -> None:
        if batch == 1:
            try:
                sizes = beta_sizes(net)
            except RuntimeError:  # the batch had no weight: no pass ran
                sizes = np.full(net.Q, np.nan)
            self.model.beta_history_.append(sizes)

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> None:
        model = self.model
        model.n_iter_ += 1
        model.t_ += self.n
        model.loss_ = np.float64(history.loss[-1])  # a NumPy float, as scikit-learn's
        model.loss_curve_.append(model.loss_)
        if model.verbose and not isinstance(model.verbose, str):  # scikit-learn's lines
            print(f"Iteration {model.n_iter_:d}, loss = {model.loss_:.8f}")
            if model.early_stopping and self.rule is not None:
                self.rule.observe()
                scores = model.validation_scores_
                assert scores is not None
                print(f"Validation score: {scores[-1]:f}")


class ProgressBar(Callback):
    """``verbose="progress"``: a rich progress bar over the epochs (iterations for lbfgs)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label = total, label
        self.progress: Any = None

    def on_train_begin(self, net: Network, history: History) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("", total=self.total)

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> None:
        text = f"loss {history.loss[-1]:.6g}"
        scores = history.extra.get("val_score")
        if scores:
            text += f"  val score {scores[-1]:.4f}"
        self.progress.update(self.task, advance=1, description=text)

    def on_train_end(self, net: Network, history: History) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
