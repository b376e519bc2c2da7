"""Drop-in scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` on betaprop's engine.

Change the import, nothing else: the constructor parameters, their defaults and meaning,
the fitted attributes and the methods are those of scikit-learn 1.9's
``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``. Underneath, a
``betaprop.Network`` does steps 2-5 and ``betaprop.fit`` runs the epochs for sgd, adam and
betaprop's other optimizers (sample weights and the L2 term through its ``sample_weight``
and ``penalty`` arguments). scikit-learn's rules are ordinary objects handed to ``fit``
(``rules.py``): its learning-rate schedules as ``Schedule`` objects, ``tol`` /
``n_iter_no_change`` with the validation split as a ``Callback``, L2 as a penalty;
``partial_fit`` is one epoch.

Modules: ``base`` (shared parameters, attributes, fit, prediction), ``classifier``,
``regressor``, ``params`` (constraints, optimizers), ``rules``, ``records`` (fitted
attributes per epoch, progress bar), ``stochastic`` and ``lbfgs`` (the two ways to train),
``threads`` (BLAS threads for small problems).

How scikit-learn's parameters map onto the engine (proven in tests/test_estimators_parity.py,
one epoch equal to scikit-learn's within 1e-10 in float64):

- ``coefs_[i]`` is ``W[i + 1].T`` (scikit-learn's layout is (n_in, n_out)) and
  ``intercepts_[i]`` is ``b[i + 1]`` as a vector; both are views into ``net.params``.
- L2: on a mini-batch of n examples with total sample weight S (S = n without weights), the
  loss gains alpha/(2 S) ||W||^2 and the weight gradient alpha W / S; biases are not decayed.
- ``sgd``: betaprop's SGD (torch's form: v <- mu v + g, p <- p - eta v, Nesterov
  p <- p - eta (g + mu v)) equals scikit-learn's (v <- mu v - eta g, p <- p + v) when eta is
  constant; when a schedule changes eta, the velocity is rescaled by eta_old / eta_new so the
  step carried over is scikit-learn's.
- ``adam``: betaprop's Adam with ``epsilon_hat=True`` (eps added before bias correction).
- The squared error reported in ``loss_`` / ``loss_curve_`` is also averaged over outputs, as
  scikit-learn reports it; gradients are those of the sum over outputs, as scikit-learn's.

Sparse X is never densified: the engine's first layer multiplies it as it is (SciPy).
Deviation: for multi-output squared error ``lbfgs`` minimises the sum over outputs
(scikit-learn's objective value is the mean while its gradient is the sum's).
"""

from __future__ import annotations

from pathlib import Path

# Below this many multiply-adds in a layer's product W^q y^{q-1} for one batch, training uses
# one BLAS thread: waking threads costs more than they save on such small products, and on a
# busy machine multithreaded BLAS can be tens of times slower (benchmarks/parity.py).
# Read at every fit (threads.blas_threads_for), so setting it here takes effect.
SINGLE_THREAD_BELOW = 2**25

# The page that the "?" of scikit-learn's HTML display (notebooks) and its parameter links
# open, a template that may use {estimator_name}; "" shows no link. By default the
# estimators page of a source checkout (set it to the published page where there is one).
_DOCS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "estimators.md"
DOCS_URL = _DOCS_PAGE.as_uri() if _DOCS_PAGE.is_file() else ""

from .classifier import MLPClassifier  # noqa: E402
from .regressor import MLPRegressor  # noqa: E402
from .skl2onnx_hook import register_with_skl2onnx_when_imported  # noqa: E402

# skl2onnx converts betaprop's estimators as scikit-learn's own MLP, whichever of the two is
# imported first; skl2onnx (and onnx) are never imported by betaprop itself.
register_with_skl2onnx_when_imported()

__all__ = ["MLPClassifier", "MLPRegressor", "SINGLE_THREAD_BELOW", "DOCS_URL"]
