"""scikit-learn's own estimator test suite on betaprop's MLPClassifier and MLPRegressor.

Every check passes with no expected failures, for the default solver (adam), for sgd and
lbfgs, and for a configuration using what scikit-learn lacks (per-layer activations from
betaprop's registry, the rmsprop optimizer, the adaptive schedule). ``max_iter=100`` keeps
the suite fast (scikit-learn's own test configuration for its MLPs does the same).

With batch normalisation and dropout every check passes but the two sample-weight
equivalence checks, which cannot hold: dropout draws a mask per example, so an example of
weight 3 and its three repeats see different masks, and batch statistics count examples, not
weights. They are listed as expected failures, with that reason, and run (strict xfail).
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from betaprop import MLPClassifier, MLPRegressor

ESTIMATORS = [
    MLPClassifier(max_iter=100),
    MLPRegressor(max_iter=100),
    MLPClassifier(solver="sgd", max_iter=100),
    MLPRegressor(solver="sgd", max_iter=100),
    MLPClassifier(solver="lbfgs", max_iter=100),
    MLPRegressor(solver="lbfgs", max_iter=100),
    MLPRegressor(
        hidden_layer_sizes=(20, 10),
        activation=["elu", "tanh"],
        solver="rmsprop",
        learning_rate="adaptive",
        max_iter=100,
    ),
    # issue 12: batch normalisation and dropout on every hidden layer
    MLPClassifier(batch_norm=True, dropout=0.2, max_iter=100),
    MLPRegressor(batch_norm=True, dropout=0.2, max_iter=100),
]


_STOCHASTIC = (
    "dropout draws a mask per example (a weighted example and its repeats see different "
    "masks) and batch statistics count examples, not weights"
)


def _expected_failures(estimator) -> dict[str, str]:
    if not (estimator.batch_norm or estimator.dropout):
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": _STOCHASTIC,
        "check_sample_weight_equivalence_on_sparse_data": _STOCHASTIC,
    }


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)
