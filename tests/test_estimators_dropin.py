"""Truly drop-in (issue 14): what a scikit-learn user meets after swapping the import.

One test per item of the issue, each against scikit-learn's own behaviour where it can be
run; scikit-learn's own test file runs against betaprop's classes at the end.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import sklearn.neural_network as sk
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import betaprop as bp
from betaprop import MLPClassifier, MLPRegressor

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
ROOT = Path(__file__).resolve().parents[1]


def _quiet(model, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, **kwargs)


def test_set_output_pandas_in_a_pipeline() -> None:
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(X_IRIS, columns=["a", "b", "c", "d"])
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(5,), max_iter=5))
    pipe.set_output(transform="pandas")
    _quiet(pipe, X, Y_IRIS)
    hidden = pipe.transform(X)
    assert isinstance(hidden, pd.DataFrame) and hidden.shape == (150, 5)
    assert list(hidden.columns) == [f"mlpclassifier{i}" for i in range(5)]
    assert pipe.score(X, Y_IRIS) > 0  # prediction still works through the pipeline
    with sklearn.config_context(transform_output="pandas"):  # set_config's global switch
        assert isinstance(pipe[-1].transform(pipe[0].transform(X)), pd.DataFrame)


def test_assigning_into_coefs_and_intercepts_sticks() -> None:
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0), X_IRIS, Y_IRIS)
    new = np.full_like(clf.coefs_[0], 0.5)
    clf.coefs_[0] = new
    clf.intercepts_[1] = np.zeros(3)
    np.testing.assert_array_equal(clf.coefs_[0], new)
    np.testing.assert_array_equal(clf.intercepts_[1], 0.0)
    clf.coefs_ = [np.zeros((4, 4)), np.ones((4, 3))]  # the whole list, as in scikit-learn
    np.testing.assert_array_equal(clf.predict_proba(X_IRIS), 1 / 3)
    assert type(clf.coefs_) is list and type(clf.intercepts_) is list  # as scikit-learn's
    clf.coefs_[0] = np.zeros((2, 2))  # a plain list: the shape is checked at the next use
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have the shape \(4, 4\), got \(2, 2\)"):
        clf.predict(X_IRIS)
    # before any fit (scikit-learn's test_fit does this): the lists start partial_fit
    fresh = MLPClassifier(hidden_layer_sizes=2, solver="sgd", momentum=0, max_iter=1)
    fresh.coefs_ = [0] * 2
    fresh.intercepts_ = [0] * 2
    fresh.coefs_[0], fresh.coefs_[1] = np.ones((4, 2)), np.ones((2, 1))
    fresh.intercepts_[0], fresh.intercepts_[1] = np.zeros(2), np.zeros(1)
    fresh.learning_rate_init = 0.0 + 1e-300  # (practically) no step: the weights stay
    fresh.partial_fit(X_IRIS[:10], Y_IRIS[:10] > 0, classes=[False, True])
    np.testing.assert_allclose(fresh.coefs_[0], 1.0)


def test_divergence_returns_a_fitted_model_with_a_convergence_warning() -> None:
    X, y = load_wine(return_X_y=True)  # unscaled: sgd at 0.1 diverges for every seed
    for seed in range(3):
        clf = MLPClassifier(solver="sgd", learning_rate_init=0.1, random_state=seed)
        with pytest.warns(ConvergenceWarning, match=r"diverged in epoch \d+.*last good epoch"):
            clf.fit(X, y)
        assert all(np.isfinite(c).all() for c in clf.coefs_ + clf.intercepts_)
        assert clf.n_iter_ == len(clf.loss_curve_) and clf.predict(X).shape == (178,)
    # scikit-learn's test_mlp_diverging_loss: nan validation scores, best weights kept
    reg = MLPRegressor(
        hidden_layer_sizes=100,
        activation="identity",
        solver="sgd",
        learning_rate_init=1,
        max_iter=20,
        early_stopping=True,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="diverged"):
        reg.fit(X_IRIS, Y_IRIS)
    assert isinstance(reg.validation_scores_[-1], float) and math.isnan(reg.validation_scores_[-1])
    assert np.isfinite(reg.predict(X_IRIS)).all()


def test_verbose_prints_scikit_learns_lines_on_stdout() -> None:
    def printed(cls):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            settings = dict(max_iter=4, verbose=True, early_stopping=True, random_state=0)
            cls(solver="sgd", learning_rate="adaptive", tol=10.0, n_iter_no_change=1, **settings)
            cls(
                solver="sgd", learning_rate="adaptive", tol=10.0, n_iter_no_change=1, **settings
            ).fit(X_IRIS, Y_IRIS)
        return out.getvalue().splitlines()

    ours, theirs = printed(MLPClassifier), printed(sk.MLPClassifier)
    assert [line.split("=")[0].split(":")[0] for line in ours] == [
        line.split("=")[0].split(":")[0] for line in theirs
    ]
    assert ours[0].startswith("Iteration 1, loss = ") and len(ours[0].split("= ")[1]) == 10
    assert ours[1].startswith("Validation score: ")
    assert any("Setting learning rate to" in line for line in ours)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_probabilities_take_the_dtype_scikit_learn_gives(solver) -> None:
    for cls in (MLPClassifier, sk.MLPClassifier):
        clf = _quiet(
            cls(solver=solver, max_iter=5, random_state=0), X_IRIS.astype(np.float32), Y_IRIS
        )
        assert clf.predict_proba(X_IRIS).dtype == np.float64
        if solver == "adam":  # scikit-learn's lbfgs ends with float64 weights (SciPy's)
            assert clf.predict_proba(X_IRIS.astype(np.float32)).dtype == np.float32
    ours = _quiet(MLPClassifier(max_iter=5, random_state=0), X_IRIS.astype(np.float32), Y_IRIS)
    np.testing.assert_allclose(
        ours.predict_proba(X_IRIS), ours.predict_proba(X_IRIS.astype(np.float32)), rtol=1e-5
    )


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_all_negative_sample_weight_trains_as_scikit_learn(solver) -> None:
    """scikit-learn divides by the weights' sum: all-negative weights act as their negatives."""
    w = -np.linspace(0.5, 2.0, 150)
    settings = dict(solver=solver, max_iter=5, random_state=0, shuffle=False, batch_size=150)
    negative = _quiet(MLPClassifier(**settings), X_IRIS, Y_IRIS, sample_weight=w)
    positive = _quiet(MLPClassifier(**settings), X_IRIS, Y_IRIS, sample_weight=-w)
    np.testing.assert_allclose(negative.coefs_[0], positive.coefs_[0])
    theirs = _quiet(sk.MLPClassifier(**settings), X_IRIS, Y_IRIS, sample_weight=w)
    assert negative.loss_ == pytest.approx(theirs.loss_, rel=1e-4)  # same start, same steps


def test_convergence_warnings_filtered_by_module_sklearn_as_scikit_learns() -> None:
    for cls in (MLPClassifier, sk.MLPClassifier):
        for solver in ("lbfgs", "adam"):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
                cls(solver=solver, max_iter=2).fit(X_IRIS, Y_IRIS)
            assert not [w for w in seen if issubclass(w.category, ConvergenceWarning)]
            with pytest.warns(ConvergenceWarning) as caught:
                cls(solver=solver, max_iter=2).fit(X_IRIS, Y_IRIS)
            if cls is MLPClassifier:  # shown where the user called fit
                assert caught[0].filename == __file__


def _sparse_problem(n=300, features=3000, density=0.01):
    X = sp.random(n, features, density=density, format="csr", random_state=0)
    y = np.random.default_rng(0).integers(0, 3, n)
    return X, y


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sparse_and_dense_give_the_same_model_and_sparse_stays_sparse(solver, monkeypatch) -> None:
    X, y = _sparse_problem()
    settings = dict(solver=solver, hidden_layer_sizes=(20,), max_iter=5, random_state=0)
    dense = _quiet(MLPClassifier(**settings), X.toarray(), y)
    calls = []
    original = sp.csr_matrix.toarray

    def counting(self, *args, **kwargs):
        calls.append(self.shape)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", counting)
    monkeypatch.setattr(sp.csr_array, "toarray", counting, raising=False)
    sparse = _quiet(MLPClassifier(**settings), X, y)
    probabilities = sparse.predict_proba(X)
    assert [shape for shape in calls if shape[1] == X.shape[1]] == []  # X never densified
    for a, b in zip(
        sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(probabilities, dense.predict_proba(X.toarray()), atol=1e-6)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_batch_norm_dropout_init_parameters(cls) -> None:
    y = Y_IRIS if cls is MLPClassifier else X_IRIS[:, 3]
    plain = _quiet(cls(max_iter=3, random_state=0), X_IRIS, y)
    theirs = _quiet(getattr(sk, cls.__name__)(max_iter=3, random_state=0), X_IRIS, y)
    # defaults: scikit-learn's model, from scikit-learn's initial weights
    assert not any(plain._net.normalized) and plain._net.p == [0.0] * 3
    np.testing.assert_allclose(plain.loss_curve_[0], theirs.loss_curve_[0], rtol=1e-2)
    model = _quiet(
        cls(batch_norm=True, dropout=0.2, init="he", max_iter=5, random_state=0), X_IRIS, y
    )
    net = model.to_network()
    assert net.normalized == [False, True, False] and net.p[1] == 0.2 and net.init == "he"
    assert model.predict(X_IRIS).shape == (150,)
    again = pickle.loads(pickle.dumps(model))  # running statistics travel with the model
    np.testing.assert_array_equal(again.predict(X_IRIS), model.predict(X_IRIS))
    with pytest.raises(ValueError, match="dropout"):
        cls(dropout=1.0).fit(X_IRIS, y)


def test_warm_started_invscaling_continues_the_step_count() -> None:
    """scikit-learn's test_learning_rate_warmstart: t_ counts on across warm starts."""
    X, y = [[3, 2], [1, 6], [5, 6], [-2, -4]], [1, 1, 1, 0]
    clf = MLPClassifier(
        solver="sgd",
        hidden_layer_sizes=4,
        learning_rate="invscaling",
        max_iter=1,
        power_t=0.25,
        warm_start=True,
    )
    _quiet(clf, X, y)
    _quiet(clf, X, y)
    assert clf.t_ == 8 and clf._optimizer.learning_rate == 0.001 / 9**0.25


def test_scikit_learns_own_mlp_tests_pass_on_betaprop(tmp_path: Path) -> None:
    """sklearn/neural_network/tests/test_mlp.py (shipped in scikit-learn's wheel), run
    unchanged with its MLPClassifier / MLPRegressor pointed at betaprop's (the plugin
    tests/sklearn_mlp_plugin.py). test_gradient is the one test it cannot run: it calls
    the private scikit-learn method ``_loss_grad_lbfgs`` (docs/estimators.md).

    An empty ``pytest.ini`` of its own keeps our pyproject's settings out (pytest refuses
    ``-c /dev/null`` from the version that checks a config file's name)."""
    path = Path(sk.__file__).parent / "tests" / "test_mlp.py"
    if not path.exists():
        pytest.skip("scikit-learn installed without its tests")
    settings = tmp_path / "pytest.ini"
    settings.write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.sklearn_mlp_plugin", "-p", "no:cacheprovider"]
        + ["-c", str(settings), "-q", "-k", "not test_gradient", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    assert "58 passed, 1 deselected" in summary, summary


def test_the_retargeted_module_really_uses_betaprop() -> None:
    script = (
        "import tests.sklearn_mlp_plugin, importlib, sklearn.neural_network.tests.test_mlp as m;"
        "import betaprop; assert m.MLPClassifier is betaprop.MLPClassifier;"
        "assert m.MLPRegressor is betaprop.MLPRegressor"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=300)


def test_feature_names_tags_and_polars_input() -> None:
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2), X_IRIS, Y_IRIS)
    assert list(clf.get_feature_names_out()) == [
        "mlpclassifier0",
        "mlpclassifier1",
        "mlpclassifier2",
    ]
    tags = clf.__sklearn_tags__()
    assert tags.input_tags.sparse and tags.classifier_tags.multi_label
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({f"f{i}": X_IRIS[:, i] for i in range(4)})
    model = _quiet(MLPClassifier(max_iter=2), frame, Y_IRIS)
    assert list(model.feature_names_in_) == ["f0", "f1", "f2", "f3"]
    assert model.predict(frame).shape == (150,)
    assert isinstance(bp.MLPClassifier(), sklearn.base.ClassifierMixin)
