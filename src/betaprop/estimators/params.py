"""scikit-learn's parameters: their constraints, and what they become on betaprop's side.

The constraints use scikit-learn's private ``sklearn.utils._param_validation`` (Interval,
StrOptions, Options): scikit-learn's own checks (``parametrize_with_checks``) require its
``InvalidParameterError`` with its message, which only that module produces.
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import get_scorer_names
from sklearn.utils._param_validation import Interval, Options, StrOptions

from ..engine.activations import names as activation_names
from ..engine.init import RULES
from ..training.optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSprop

if TYPE_CHECKING:
    from .base import BaseMLP

__all__ = [
    "PARAMETER_CONSTRAINTS",
    "DOC_EXTRA",
    "make_optimizer",
    "hidden_activations",
    "estimator_docstring",
]

SKLEARN_SOLVERS = ("lbfgs", "sgd", "adam")

PARAMETER_CONSTRAINTS: dict = {
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions(set(activation_names(hidden_only=True))), "array-like"],
    "solver": [StrOptions(set(SKLEARN_SOLVERS) | set(OPTIMIZERS)), Optimizer],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "tol": [Interval(Real, 0, None, closed="left")],
    "verbose": ["verbose", StrOptions({"progress"})],
    "warm_start": ["boolean"],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "nesterovs_momentum": ["boolean"],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
    "max_fun": [Interval(Integral, 1, None, closed="left")],
    "scoring": [None, StrOptions(set(get_scorer_names())), callable],
    "callbacks": [None, list, tuple],
    "dtype": [None, StrOptions({"float32", "float64"}), type, np.dtype],
    "batch_norm": ["boolean"],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "init": [None, StrOptions(set(RULES))],
    "layer_norm": ["boolean"],
    "residual": ["boolean"],
}


def make_optimizer(model: BaseMLP) -> Optimizer:
    """The optimizer of ``solver``: scikit-learn's sgd and adam as betaprop optimizers."""
    solver, lr = model.solver, model.learning_rate_init
    if isinstance(solver, Optimizer):
        return solver
    if solver == "sgd":
        nesterov = model.nesterovs_momentum and model.momentum > 0
        return SGD(learning_rate=lr, momentum=model.momentum, nesterov=nesterov)
    if solver == "adam":  # epsilon added before the bias correction, as scikit-learn's
        return Adam(
            learning_rate=lr,
            beta_1=model.beta_1,
            beta_2=model.beta_2,
            epsilon=model.epsilon,
            epsilon_hat=True,
        )
    if solver == "adamw":
        return AdamW(
            learning_rate=lr, beta_1=model.beta_1, beta_2=model.beta_2, epsilon=model.epsilon
        )
    if solver == "rmsprop":
        return RMSprop(learning_rate=lr, epsilon=model.epsilon)
    return OPTIMIZERS[solver](learning_rate=lr)


def hidden_activations(activation: object, n_hidden: int) -> list[str]:
    """One activation name per hidden layer, from one name or a list of them."""
    if isinstance(activation, str):
        return [activation] * n_hidden
    names = list(activation)  # type: ignore[call-overload]
    if len(names) != n_hidden:
        raise ValueError(
            f"activation must be one name or a list of one name per hidden layer "
            f"({n_hidden}), got {activation!r}"
        )
    hidden = activation_names(hidden_only=True)
    for name in names:
        if not isinstance(name, str) or name not in hidden:
            raise ValueError(f"activation must be one of {hidden}, got {name!r}")
    return names


DOC_EXTRA = """
    Beyond scikit-learn (all off by default):

    - ``activation`` may be a list (one name per hidden layer) and any name of betaprop's
      registry (leaky_relu, elu, softplus, gelu, ...).
    - ``solver`` also accepts betaprop's optimizers by name ("adamw", "rmsprop") or as an
      instance (``betaprop.optimizers.RMSprop(0.01, centered=True)``); ``learning_rate``
      schedules apply to every stochastic solver but "adam" (as in scikit-learn).
    - ``scoring``: a scikit-learn scorer (name or callable) for ``early_stopping``;
      ``validation_scores_`` then holds its values.
    - ``callbacks``: betaprop ``Callback`` objects (epoch = iteration for lbfgs; returning True
      stops); ``verbose=True`` prints scikit-learn's "Iteration N, loss = ..." lines on
      stdout, ``verbose="progress"`` shows a progress bar on stderr instead.
    - ``batch_norm`` (batch normalisation on every hidden layer), ``dropout`` (inverted
      dropout rate p on every hidden layer), ``init`` (a rule of ``betaprop.engine.init.
      RULES``; None: scikit-learn's Glorot uniform from ``random_state``), ``layer_norm``
      (layer normalisation on every hidden layer), ``residual`` (y^q = y^{q-1} + f(u^q) on
      every hidden layer with as many units as the layer below).
    - ``dtype``: "float32" or "float64" to train in that dtype whatever the input's (by
      default as scikit-learn: float32 input trains in float32 with the stochastic solvers,
      lbfgs and any other input in float64).
    - ``validation_loss_curve_``: the validation loss per epoch (same scale as
      ``loss_curve_``, without the L2 term) when ``early_stopping=True``.
    - ``beta_history_``: per epoch, an array of Q sizes, the root-mean-square per-example
      local error beta^q of layer q = 1..Q on the epoch's first mini-batch (for lbfgs, per
      iteration on the whole set): the seed's "beta is large at the output, fades in deep
      layers".
    - ``transform(X, layer=q)``: the hidden representation y^q; ``to_network()``: the
      trained ``betaprop.Network``.
    - Ctrl-C during ``fit`` warns "Training interrupted by user." and keeps a usable model
      (the best weights so far when ``early_stopping=True``; for lbfgs the best point seen).
"""


EXTRA_PARAMETERS = {
    "class_weight": """class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, as in scikit-learn's linear models (``{label: weight}``, or
        "balanced": n_samples / (n_classes * count)); multiplies ``sample_weight``.""",
    "scoring": """scoring : str, callable or None, default=None
        A scikit-learn scorer (name or callable) for ``early_stopping``;
        ``validation_scores_`` then holds its values. None: the ``score`` method.""",
    "callbacks": """callbacks : list of betaprop.Callback or None, default=None
        Called after each epoch (each iteration for lbfgs); one returning True stops.""",
    "dtype": """dtype : {'float32', 'float64'} or None, default=None
        Train in that dtype whatever the input's. None: as scikit-learn (float32 input
        trains in float32 with the stochastic solvers, anything else in float64).""",
    "batch_norm": """batch_norm : bool, default=False
        Batch normalisation on every hidden layer.""",
    "dropout": """dropout : float, default=0.0
        Inverted dropout rate p on every hidden layer.""",
    "init": """init : str or None, default=None
        A rule of ``betaprop.engine.init.RULES``; None: scikit-learn's Glorot uniform from
        ``random_state``.""",
    "layer_norm": """layer_norm : bool, default=False
        Layer normalisation on every hidden layer (``torch.nn.LayerNorm``); not with
        ``batch_norm``.""",
    "residual": """residual : bool, default=False
        Residual hidden layers: y^q = y^{q-1} + f(u^q) wherever N_q = N_{q-1}.""",
}

EXTRA_ATTRIBUTES = """    validation_loss_curve_ : list of float or None
        The validation loss per epoch (same scale as ``loss_curve_``, without the L2 term)
        when ``early_stopping=True``, else None.

    beta_history_ : list of ndarray of shape (Q,)
        Per epoch (per iteration for lbfgs), the root-mean-square per-example local error
        beta^q of layer q = 1..Q on the epoch's first mini-batch.

"""


def estimator_docstring(cls: type, sklearn_class: type) -> str:
    """The docstring of ``cls``: its own summary, scikit-learn's Parameters and Attributes
    sections (the same parameters and attributes) with betaprop's extra parameters (those of
    ``cls.__init__`` that scikit-learn's lacks) added, then DOC_EXTRA.

    numpydoc sections, so that scikit-learn's HTML display shows each parameter's tooltip.
    """
    summary = cls.__doc__ or ""
    theirs = inspect.signature(sklearn_class).parameters
    extras = [name for name in inspect.signature(cls).parameters if name not in theirs]
    sklearn_doc = sklearn_class.__doc__ or ""
    start = sklearn_doc.find("    Parameters\n    ----------")
    attributes = sklearn_doc.find("    Attributes\n    ----------")
    end = sklearn_doc.find("    See Also\n")
    if min(start, attributes, end) < 0:  # another layout: the summary and notes only
        return summary + "\n    Notes\n    -----" + DOC_EXTRA
    parameters = "".join(f"    {EXTRA_PARAMETERS[name]}\n\n" for name in extras)
    return (
        summary
        + "\n"
        + sklearn_doc[start:attributes]
        + parameters
        + sklearn_doc[attributes:end]
        + EXTRA_ATTRIBUTES
        + "    Notes\n    -----"
        + DOC_EXTRA
    )
