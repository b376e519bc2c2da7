"""The vanishing-gradient study: the seed's closing remark on step 4, measured.

The seed ends step 4 with a debugging remark: in the output layer beta is large, in deep
layers it fades (the vanishing gradient), "solved by ReLU or batch norm". ``depth_study``
trains the same data at several depths Q with several hidden configurations (an activation,
optionally with batch normalisation: ``"relu+bn"``) on a seeded, stratified training split and
measures, per layer q, the RMS of the per-example local error beta^q (as ``Diagnostics`` does:
``n * net.beta[q]``) at initialisation and after training, with the training loss per epoch and
the accuracy (or R²) on the held-out test rows.

Why the lines differ: step 4 is beta^q = f'(s^q) ⊙ (W^{q+1})^T beta^{q+1}, so from the output
down to layer 1 beta is multiplied Q-1 times by a weight matrix and by f'. The sigmoid's
f' = y(1 - y) is at most 1/4 and tanh's 1 - y^2 at most 1, below it wherever units are
not at zero; ReLU's f' is exactly 1 on active units; batch normalisation divides each
layer's s^q by its spread over the batch, so the scale of beta is reset at every layer.

Library code: the functions return numbers and a matplotlib ``Figure``; they never print.
The command is ``betaprop study depth`` (``betaprop.cli.study``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.activations import names as activation_names
from ..engine.network import Network
from ..files.datasets import infer_task, load_data
from ..files.preprocessing import Preprocessing
from ..training.loop import Callback, History, evaluate, fit
from ..training.optimizers import Adam
from ..training.state import DivergenceError
from .diagnostics import Diagnostics

__all__ = [
    "DEFAULT_CONFIGURATIONS",
    "DEFAULT_DEPTHS",
    "Run",
    "Study",
    "check_configuration",
    "configuration_settings",
    "study_data",
    "split_rows",
    "depth_study",
    "table",
    "beta_table",
    "text_table",
    "figure",
    "study_depth",
    "StudyView",
]

Array = np.ndarray

DEFAULT_DEPTHS = (5, 20, 50)
DEFAULT_CONFIGURATIONS = ("sigmoid", "tanh", "relu", "relu+bn", "relu+res+ln", "relu+res+bn")
# what may follow the activation in a configuration's name, and the Network setting it means
SUFFIXES = {
    "bn": ("normalization", "batch"),  # batch normalisation
    "ln": ("normalization", "layer"),  # layer normalisation
    "res": ("residual", True),  # y^q = y^{q-1} + f(u^q) (hidden layers with N_q = N_{q-1})
}
PROBE_EXAMPLES = 512  # rows of the training split on which beta is measured
TEST_FRACTION = 0.25  # rows held out for the test score

Progress = Callable[[str, int, int], None]  # (configuration, Q, epoch done)


@dataclass
class Run:
    """One configuration at one depth Q: RMS beta^q for q = 1..Q (index q - 1) at
    initialisation and after training, the training loss per epoch, the final score
    (accuracy or R²) on the held-out test rows and on the training rows."""

    configuration: str
    Q: int
    beta_start: list[float]
    beta_end: list[float]
    loss: list[float]
    test_score: float
    train_score: float
    diverged: bool = False

    def ratio(self, when: str = "start") -> float:
        """RMS beta^1 / RMS beta^{Q-1}: the first hidden layer's against the last hidden
        layer's (``when`` "start" or "end"); 1 means no fading, 1e-3 three orders."""
        beta = self.beta_start if when == "start" else self.beta_end
        top = beta[self.Q - 2]
        return beta[0] / top if top > 0 else float("nan")

    def output_ratio(self, when: str = "start") -> float:
        """RMS beta^1 / RMS beta^Q (the first hidden layer's against the output's delta^Q)."""
        beta = self.beta_start if when == "start" else self.beta_end
        return beta[0] / beta[-1] if beta[-1] > 0 else float("nan")


@dataclass
class Study:
    """Every run of a depth study and what it was run on."""

    data: str
    width: int
    epochs: int
    seed: int
    loss: str
    depths: list[int]
    configurations: list[str]
    n_train: int = 0
    n_test: int = 0
    n_outputs: int = 0  # N_Q
    runs: list[Run] = field(default_factory=list)
    init: str | None = None  # the weights' rule (engine.init); None: see residual_init

    def run(self, configuration: str, Q: int) -> Run:
        """The run of ``configuration`` at depth ``Q``."""
        for run in self.runs:
            if run.configuration == configuration and run.Q == Q:
                return run
        raise KeyError(f"no run of {configuration!r} at Q = {Q}")


def check_configuration(name: str) -> tuple[str, str | None]:
    """(hidden activation, normalization) of a configuration name such as "tanh",
    "relu+bn" or "relu+res+ln"; a ValueError listing the accepted names otherwise."""
    settings = configuration_settings(name)
    return settings["activation"], settings["normalization"]


def configuration_settings(name: str) -> dict[str, Any]:
    """The ``Network`` settings (activation, normalization, residual) of a configuration:
    a hidden activation, then optionally "+bn" or "+ln" and "+res", e.g. "relu+res+ln"."""
    activation, *parts = name.split("+")
    accepted = activation_names(hidden_only=True)
    known = all(part in SUFFIXES for part in parts) and len(set(parts)) == len(parts)
    if activation not in accepted or not known or {"bn", "ln"} <= set(parts):
        raise ValueError(
            f"configuration must be a hidden activation {accepted}, optionally with "
            "'+bn' (batch normalisation) or '+ln' (layer normalisation) and '+res' "
            f"(residual layers), got {name!r}"
        )
    settings: dict[str, Any] = {"activation": activation, "normalization": None}
    settings["residual"] = False
    for part in parts:
        key, value = SUFFIXES[part]
        settings[key] = value
    return settings


def study_data(spec: str, seed: int = 0) -> tuple[Array, Array, str]:
    """A bundled dataset or CSV file as standardised inputs X (n, N_0), targets D (n, N_Q)
    in float64 and the loss that fits the task (cross-entropy for classes, else squared
    error). ``depth_study`` splits the rows into training and test rows (``split_rows``)."""
    data = load_data(spec, seed=seed)
    task = infer_task(data)
    prep = Preprocessing.fit(data, task)
    X = prep.transform(data.X)
    if task == "classification":
        return X, prep.encode(data.target, prep.n_classes), "cross_entropy"
    return X, prep.encode(data.target, 1), "squared_error"


def split_rows(D: Array, fraction: float, seed: int) -> tuple[Array, Array]:
    """Seeded (training rows, test rows), sorted: ``fraction`` of each class's rows held out
    (classes: the argmax of one-hot D with N_Q > 1), or of all rows for regression. A class
    keeps at least one training row."""
    rng = np.random.default_rng(seed)
    strata = np.argmax(D, axis=1) if D.shape[1] > 1 else np.zeros(len(D), dtype=np.intp)
    test = []
    for label in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == label))
        test.append(rows[: min(int(round(fraction * len(rows))), len(rows) - 1)])
    held = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(D)), held), held


# Residual layers start from small branches, as PyTorch's nn.Linear default draws them
# (U(-a, a), a = 1/sqrt(fan_in): a third of He's variance), so that y^q = y^{q-1} + f(u^q)
# stays near the identity path at the start; with He's rule the 99 branches of Q = 100 add up
# (relu+res+ln: 0.924-0.938 test accuracy over three seeds, against 0.947-0.971 with this).
RESIDUAL_INIT = "torch"


def residual_init(configuration: str) -> str | None:
    """The weights' rule of a configuration by default: RESIDUAL_INIT for one with residual
    layers (``+res``), else None (its activation's own rule)."""
    return RESIDUAL_INIT if configuration_settings(configuration).get("residual") else None


class _Report(Callback):
    """Calls the progress function after each epoch."""

    def __init__(self, progress: Progress, configuration: str, Q: int) -> None:
        self.progress, self.configuration, self.Q = progress, configuration, Q

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> None:
        self.progress(self.configuration, self.Q, epoch)


def _one_run(
    data: tuple[Array, Array, Array, Array], configuration: str, Q: int, study: Study,
    settings: dict[str, Any], progress: Progress | None,
) -> Run:  # fmt: skip
    """Build the network of ``configuration`` at depth Q, measure beta, train on the training
    rows, measure beta, score on the test rows."""
    X, D, X_test, D_test = data
    sizes = [X.shape[1]] + [study.width] * (Q - 1) + [D.shape[1]]
    net = Network(
        sizes, loss=study.loss, dtype="float64", seed=study.seed,
        init=study.init if study.init is not None else residual_init(configuration),
        **configuration_settings(configuration),
    )  # fmt: skip
    probe = Diagnostics(X, D, max_examples=PROBE_EXAMPLES)
    start = _beta_rms(probe, net)
    callbacks = [] if progress is None else [_Report(progress, configuration, Q)]
    history = History()
    diverged = False
    try:
        fit(
            net, X, D, optimizer=Adam(settings["learning_rate"]), epochs=study.epochs,
            batch_size=settings["batch_size"], seed=study.seed, callbacks=callbacks,
            history=history,
        )  # fmt: skip
    except DivergenceError:  # the weights of the last good epoch are back in net
        diverged = True
    end = _beta_rms(probe, net)
    test_score = evaluate(net, X_test, D_test)[1]
    return Run(configuration, Q, start, end, list(history.loss), test_score,
               evaluate(net, X, D)[1], diverged)  # fmt: skip


def _beta_rms(probe: Diagnostics, net: Network) -> list[float]:
    """RMS of the per-example beta^q, q = 1..Q, on the probe batch (steps 2-5 on a copy)."""
    figures = probe.measure(net)
    return [figures[f"beta_rms_{q}"] for q in range(1, net.Q + 1)]


def depth_study(
    X: Array,
    D: Array,
    *,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    configurations: Sequence[str] = DEFAULT_CONFIGURATIONS,
    epochs: int = 10,
    width: int = 32,
    seed: int = 0,
    loss: str = "cross_entropy",
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    data: str = "data",
    test_fraction: float = TEST_FRACTION,
    init: str | None = None,
    progress: Progress | None = None,
) -> Study:
    """Train X (n, N_0) -> D (n, N_Q) at each depth Q (Q - 1 hidden layers of ``width``)
    with each configuration (Adam, float64, the same seed and shuffles) on the training rows
    of ``split_rows(D, test_fraction, seed)``, measure RMS beta^q per layer (on training
    rows) at initialisation and after ``epochs`` epochs, and score on the test rows.

    ``init`` is the weights' rule for every configuration; None (the default): each
    activation's own (He for ReLU: the seed's remedy), and for residual configurations
    ``RESIDUAL_INIT``, PyTorch's ``nn.Linear`` default (see ``residual_init``).
    ``progress(configuration, Q, epoch)`` is called after every epoch of every run.
    """
    if not depths or min(depths) < 2:
        raise ValueError(f"depths must be integers >= 2 (Q, one hidden layer at least), "
                         f"got {list(depths)!r}")  # fmt: skip
    for name in configurations:
        check_configuration(name)
    if epochs < 1 or width < 1:
        raise ValueError(f"epochs and width must be >= 1, got {epochs!r} and {width!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    train, test = split_rows(D, test_fraction, seed)
    if len(test) == 0:
        raise ValueError(f"test_fraction {test_fraction!r} of {len(D)} rows holds out no row")
    study = Study(data, width, epochs, seed, loss, list(depths), list(configurations),
                  len(train), len(test), D.shape[1], init=init)  # fmt: skip
    settings = {"learning_rate": learning_rate, "batch_size": batch_size}
    rows = (X[train], D[train], X[test], D[test])
    for Q in depths:
        for configuration in configurations:
            study.runs.append(_one_run(rows, configuration, Q, study, settings, progress))
    return study


# ----------------------------------------------------------------------------- tables
def table(study: Study) -> list[dict[str, Any]]:
    """One row per run: RMS beta of the first hidden, last hidden and output layers at the
    start and end, the ratios beta^1 / beta^{Q-1}, the final training loss, the score on the
    held-out test rows and on the training rows."""
    rows = []
    for run in study.runs:
        rows.append(
            {
                "configuration": run.configuration,
                "Q": run.Q,
                "beta_1_start": run.beta_start[0],
                "beta_last_hidden_start": run.beta_start[run.Q - 2],
                "beta_Q_start": run.beta_start[-1],
                "ratio_start": run.ratio("start"),
                "beta_1_end": run.beta_end[0],
                "beta_last_hidden_end": run.beta_end[run.Q - 2],
                "ratio_end": run.ratio("end"),
                "loss_first_epoch": run.loss[0] if run.loss else float("nan"),
                "loss_last_epoch": run.loss[-1] if run.loss else float("nan"),
                "test_score": run.test_score,
                "train_score": run.train_score,
                "diverged": run.diverged,
            }
        )
    return rows


def beta_table(study: Study) -> list[dict[str, Any]]:
    """Every measured RMS beta^q: one row per run, layer q and moment (start, end)."""
    rows = []
    for run in study.runs:
        for when, beta in (("start", run.beta_start), ("end", run.beta_end)):
            for q, value in enumerate(beta, start=1):
                rows.append({"configuration": run.configuration, "Q": run.Q, "q": q,
                             "when": when, "rms_beta": value})  # fmt: skip
    return rows


def text_table(study: Study) -> str:
    """The study as a text table: per run the ratio beta^1 / beta^{Q-1} at the start and the
    end, the last training loss and the score on the held-out test rows."""
    score = "test accuracy" if study.loss == "cross_entropy" else "test R2"
    lines = [
        f"betaprop study depth: {study.data}, width {study.width}, {study.epochs} epochs, "
        f"{study.n_train} training rows, score on {study.n_test} held-out rows",
        f"{'configuration':<16} {'Q':>4} {'β1/β(Q-1) start':>16} {'β1/β(Q-1) end':>14} "
        f"{'train loss':>11} {score:>14}",
    ]
    for row in table(study):
        name = row["configuration"] + (" (diverged)" if row["diverged"] else "")
        lines.append(
            f"{name:<16} {row['Q']:>4} {row['ratio_start']:>16.2e} {row['ratio_end']:>14.2e} "
            f"{row['loss_last_epoch']:>11.4f} {row['test_score']:>14.4f}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figure
def figure(study: Study, lang: str = "en") -> Any:
    """A matplotlib ``Figure`` of the study (``plots.depth_figure``): one column per depth Q;
    rows: RMS beta^q against q at initialisation, after training, the training loss."""
    from .plots import depth_figure

    return depth_figure(study, lang)


# ----------------------------------------------------------------------------- notebooks
class StudyView:
    """A depth study in a notebook: its rich display is the figure (a PNG, self-contained),
    its ``str`` the table; ``study`` holds the numbers, ``figure()`` the matplotlib Figure."""

    def __init__(self, study: Study, lang: str = "en") -> None:
        self.study, self.lang = study, lang

    def figure(self) -> Any:
        """The study's matplotlib ``Figure`` (``explain.plots.depth_figure``)."""
        return figure(self.study, self.lang)

    def png(self, dpi: int = 100) -> bytes:
        """The figure as PNG bytes, as ``betaprop study depth`` writes it."""
        import io

        picture = io.BytesIO()
        self.figure().savefig(picture, format="png", dpi=dpi)
        return picture.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def __str__(self) -> str:
        return text_table(self.study)

    def __repr__(self) -> str:
        study = self.study
        return (
            f"<betaprop study depth: {study.data}, depths {study.depths}, "
            f"{len(study.configurations)} configurations; print() it for the table>"
        )


def study_depth(
    data: str | Array = "digits",
    D: Array | None = None,
    *,
    lang: str = "en",
    **options: Any,
) -> StudyView:
    """``betaprop study depth`` from Python: a bundled dataset or CSV file (standardised, as the
    command does) or arrays X (n, N_0) and D (n, N_Q); ``options`` are those of
    ``depth_study`` (depths, configurations, epochs, width, seed, learning_rate, batch_size,
    test_fraction, ...). In a notebook the result shows the figure; ``print`` it for the table.
    """
    from .plots import STUDY_TEXT

    if lang not in STUDY_TEXT:
        raise ValueError(f"lang must be one of {list(STUDY_TEXT)}, got {lang!r}")
    if isinstance(data, str):
        if D is not None:
            raise ValueError("D must be None when data is a dataset name or file, got an array")
        X, D, loss = study_data(data, options.get("seed", 0))
        options = {"loss": loss, "data": os.path.basename(data), **options}
    elif D is None:
        raise ValueError("D must be given with an array X: the targets (n, N_Q)")
    else:
        X = np.asarray(data, dtype=np.float64)
        D = np.asarray(D, dtype=np.float64)
    return StudyView(depth_study(X, D, **options), lang)
