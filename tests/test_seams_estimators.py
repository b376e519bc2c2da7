"""Where the estimators meet the rest of a scikit-learn user's world (issue 22): threads,
notebook display, fitted attribute types, skl2onnx, float32 data, mpiexec."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import warnings

import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import betaprop as bp
from betaprop import MLPClassifier
from betaprop.estimators.params import EXTRA_PARAMETERS

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = StandardScaler().fit_transform(X_IRIS)


# ---------------------------------------------------------------- BLAS threads × concurrent fits
def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def _another_thread_can_limit() -> bool:
    """Can a new thread still set the BLAS limits (threadpoolctl >= 3.8 lets one thread at a
    time control them: a fit must not keep that control)?"""
    from threadpoolctl import threadpool_limits

    seen: list[list[int]] = []

    def limit() -> None:
        with threadpool_limits(limits=1, user_api="blas"):
            seen.append(_blas_threads())

    thread = threading.Thread(target=limit)
    thread.start()
    thread.join(timeout=60)
    return seen == [[1] * len(_blas_threads())]


class _Meet(bp.Callback):
    """Holds each fit at its first epoch until all of them are inside (a Barrier), so the
    fits overlap for sure. Shared, not copied, by ``clone`` (GridSearchCV clones)."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def __deepcopy__(self, memo: dict) -> _Meet:
        return self

    def on_epoch_end(self, net, epoch, history):
        if epoch == 1:
            self.barrier.wait(timeout=60)


def test_overlapping_fits_in_threads_leave_the_blas_threads_as_they_were() -> None:
    """The first fit in leaves first, the second last: each restoring what it found would
    leave the process at the second's "original", one thread."""
    before = _blas_threads()
    if max(before, default=1) < 2:
        pytest.skip("BLAS already runs one thread: nothing to restore")
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    class Order(bp.Callback):
        def __init__(self, role: str) -> None:
            self.role = role

        def on_train_begin(self, net, history):
            if self.role == "first":
                first_in.set()
            else:
                second_in.set()
                assert first_out.wait(timeout=60)  # holds the limit while the first ends

        def on_train_end(self, net, history):
            if self.role == "first":
                assert second_in.wait(timeout=60)  # both inside before the first leaves

    def first() -> None:
        MLPClassifier((5,), max_iter=1, callbacks=[Order("first")]).fit(X_IRIS, Y_IRIS)
        first_out.set()

    errors: list[BaseException] = []

    def second() -> None:
        try:
            assert first_in.wait(timeout=60)
            MLPClassifier((5,), max_iter=1, callbacks=[Order("second")]).fit(X_IRIS, Y_IRIS)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    with pytest.warns(Warning):  # ConvergenceWarning after one epoch, from both threads
        threads = [threading.Thread(target=second), threading.Thread(target=first)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not errors
    assert _blas_threads() == before
    assert _another_thread_can_limit()


@pytest.mark.parametrize("n_jobs", [4])
def test_grid_search_with_the_threading_backend_leaves_the_blas_threads_as_they_were(
    n_jobs: int,
) -> None:
    from joblib import parallel_backend
    from sklearn.model_selection import GridSearchCV

    before = _blas_threads()
    if max(before, default=1) < 2:
        pytest.skip("BLAS already runs one thread: nothing to restore")
    meet = _Meet(threading.Barrier(n_jobs))
    grid = {"alpha": [1e-4, 1e-2]}  # 2 candidates x 2 folds: 4 fits, all at once
    model = MLPClassifier((5,), max_iter=3, callbacks=[meet])
    search = GridSearchCV(model, grid, cv=2, n_jobs=n_jobs, refit=False)
    with parallel_backend("threading", n_jobs=n_jobs), pytest.warns(Warning):
        search.fit(X_IRIS, Y_IRIS)
    assert _blas_threads() == before
    assert _another_thread_can_limit()


# ---------------------------------------------------------------- notebook display (HTML repr)
_ROW = re.compile(
    r'<td class="param">\s*(?:<a class="param-doc-link"[^>]*href="(?P<link>[^"]*)">\s*)?'
    r"(?P<name>\w+)"
)


def _display(estimator) -> dict:
    """What scikit-learn's HTML repr shows: the "?" links, each table row's name and whether
    it links to its documentation, and the output-features boxes."""
    html = re.sub(r"<style>.*?</style>", "", estimator._repr_html_(), flags=re.S)
    doc_links = re.findall(r'<a class="sk-estimator-doc-link[^"]*"[^>]*href="([^"]*)">\?', html)
    rows = {m["name"]: bool(m["link"]) for m in _ROW.finditer(html)}
    return {"doc_links": doc_links, "rows": rows, "features": re.findall(r"\d+ features?", html)}


@pytest.mark.parametrize("fitted", [False, True], ids=["unfitted", "fitted"])
@pytest.mark.parametrize("in_pipeline", [False, True], ids=["alone", "in_pipeline"])
@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_the_notebook_display_shows_what_scikit_learns_shows(name, fitted, in_pipeline):
    from sklearn import neural_network

    shown = {}
    for module in (neural_network, bp):
        estimator = getattr(module, name)(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
        if in_pipeline:
            estimator = make_pipeline(StandardScaler(), estimator)
        if fitted:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                estimator.fit(X_IRIS, Y_IRIS)
        shown[module] = _display(estimator)
    theirs, ours = shown[neural_network], shown[bp]
    # the "?" of every box, the last one ours, leading to betaprop's page
    assert len(ours["doc_links"]) == len(theirs["doc_links"])
    assert ours["doc_links"][-1] == bp.estimators.DOCS_URL.format(estimator_name=name)
    assert ours["doc_links"][-1].endswith("estimators.md")
    # every parameter (and fitted attribute) row scikit-learn shows, with its tooltip link
    assert {row: ours["rows"].get(row) for row in theirs["rows"]} == theirs["rows"]
    extras = set(ours["rows"]) - set(theirs["rows"])
    assert extras <= {*EXTRA_PARAMETERS, "validation_loss_curve_", "beta_history_"}
    assert all(ours["rows"][row] for row in extras)  # documented too
    # no box of output features unless scikit-learn's MLP has one (the scaler's only)
    assert ours["features"] == theirs["features"]
    if fitted:  # transform's feature names are still there for pipelines and set_output
        model = estimator[-1] if in_pipeline else estimator
        assert len(model.get_feature_names_out()) == 8


# ---------------------------------------------------------------- fitted attributes' types
def _public_fitted(model) -> dict:
    names = [n for n in vars(model) if n.endswith("_") and not n.startswith("_")]
    return {n: getattr(model, n) for n in [*names, "coefs_", "intercepts_"]}


def _kind(value) -> tuple:
    """A value's type, and its items' types for a list."""
    if isinstance(value, list):
        return (type(value), tuple(sorted({type(item).__name__ for item in value})))
    return (type(value),)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("early_stopping", [False, True], ids=["", "early_stopping"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_every_fitted_attribute_has_scikit_learns_type(name, solver, early_stopping, dtype):
    from sklearn import neural_network

    if solver == "lbfgs" and early_stopping:
        pytest.skip("early stopping is for the stochastic solvers")
    params = dict(hidden_layer_sizes=(5,), max_iter=20, solver=solver, random_state=0)
    attributes = {}
    for module in (neural_network, bp):
        model = getattr(module, name)(early_stopping=early_stopping, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_IRIS.astype(dtype), Y_IRIS)
        attributes[module] = _public_fitted(model)
    theirs, ours = attributes[neural_network], attributes[bp]
    assert set(theirs) <= set(ours)
    assert {n: _kind(ours[n]) for n in theirs} == {n: _kind(v) for n, v in theirs.items()}
    assert ours["loss_"].round(3) == round(float(ours["loss_"]), 3)  # NumPy's methods


# ---------------------------------------------------------------- skl2onnx, in either import order
_CONVERT = """
import sys
import numpy as np
{imports}
import onnxruntime as ort
from sklearn.datasets import load_iris
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
model = {estimator}(hidden_layer_sizes=(5,), max_iter=300, random_state=0)
pipe = make_pipeline(StandardScaler(), model).fit(X, y)
onx = skl2onnx.to_onnx(pipe, X[:1], options={options})
session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
out = session.run(None, {{session.get_inputs()[0].name: X}})
if {classifier}:
    assert (out[0] == pipe.predict(X)).all()
    np.testing.assert_allclose(out[1], pipe.predict_proba(X), atol=1e-6)
else:
    np.testing.assert_allclose(out[0].ravel(), pipe.predict(X), rtol=1e-5, atol=1e-5)
print("ok")
"""
_ORDERS = {
    "skl2onnx_first": "import skl2onnx\nimport betaprop",
    "betaprop_first": (
        "import betaprop\nfrom betaprop import MLPClassifier, MLPRegressor\n"
        "assert 'skl2onnx' not in sys.modules\nimport skl2onnx"
    ),
    "unpickled_first": (  # a model loaded from a file imports betaprop.estimators itself
        "import pickle\npickle.loads(pickle.dumps(__import__('betaprop').MLPClassifier()))\n"
        "import skl2onnx\nimport betaprop"
    ),
}


@pytest.mark.parametrize("estimator", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("order", list(_ORDERS))
def test_skl2onnx_converts_a_pipeline_without_a_registration_call(order, estimator):
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    classifier = estimator == "MLPClassifier"
    code = _CONVERT.format(
        imports=_ORDERS[order],
        estimator=f"betaprop.{estimator}",
        options={"zipmap": False} if classifier else None,
        classifier=classifier,
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_importing_betaprop_and_its_estimators_imports_neither_skl2onnx_nor_onnx():
    code = (
        "import sys, betaprop\nfrom betaprop import MLPClassifier\nMLPClassifier().get_params()\n"
        "print(sorted(m for m in ('skl2onnx', 'onnx', 'onnxruntime') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- dtypes × solvers
@pytest.mark.parametrize("predict_dtype", ["float32", "float64"])
@pytest.mark.parametrize("fit_dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["lbfgs", "adam", "sgd"])
@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_weights_and_predictions_have_scikit_learns_dtype(name, solver, fit_dtype, predict_dtype):
    from sklearn import neural_network

    X_fit, X_predict = X_IRIS.astype(fit_dtype), X_IRIS.astype(predict_dtype)
    dtypes = {}
    for module in (neural_network, bp):
        model = getattr(module, name)(
            hidden_layer_sizes=(5,), max_iter=20, solver=solver, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_fit, Y_IRIS)
        shown = {
            "coefs_": {c.dtype for c in model.coefs_},
            "intercepts_": {b.dtype for b in model.intercepts_},
            "predict": model.predict(X_predict).dtype,
        }
        if name == "MLPClassifier":
            shown["predict_proba"] = model.predict_proba(X_predict).dtype
        dtypes[module] = shown
    assert dtypes[bp] == dtypes[neural_network]


# ---------------------------------------------------------------- estimators under mpiexec
_FIT_TWICE = """
import os, sys, warnings
from sklearn.datasets import load_iris
import betaprop as bp
X, y = load_iris(return_X_y=True)
# each rank writes its own file: two ranks printing to one pipe may interleave their lines
out = open(sys.argv[1] + "." + os.environ["PMI_RANK"], "w") if len(sys.argv) > 1 else sys.stdout
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for _ in range(2):
        bp.MLPClassifier((4,), max_iter=3).fit(X, y)
mpi = [w for w in caught if "MPI processes" in str(w.message)]
print(len(mpi), "mpi4py" in sys.modules, mpi[0].filename if mpi else "-", file=out)
if mpi:
    print(mpi[0].message, file=out)
"""
_MPI_ENV = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


@pytest.mark.parametrize("with_mpi4py", [False, True], ids=["plain", "mpi4py_imported"])
def test_an_estimator_fitted_under_mpiexec_warns_once_naming_bp_fit_comm(tmp_path, with_mpi4py):
    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which(
        "mpiexec"
    )
    assert mpiexec is not None, "mpiexec not found: pip install -e '.[mpi]'"
    script = tmp_path / "fit_twice.py"
    script.write_text(_FIT_TWICE)
    python = [sys.executable, "-m", "mpi4py"] if with_mpi4py else [sys.executable]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        [mpiexec, "-n", "2", *python, str(script), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [
        line for rank in (0, 1) for line in (tmp_path / f"out.{rank}").read_text().splitlines()
    ]
    firsts = [line for line in lines if line[:1].isdigit()]
    # once per process (two fits each), mpi4py imported only where the user imported it
    assert firsts == [f"1 {with_mpi4py} {script}"] * 2
    messages = [line for line in lines if "MPI processes" in line]
    assert len(messages) == 2
    assert all("each of the 2 MPI processes" in m and "comm=" in m for m in messages)
    assert all("betaprop.fit(" in m for m in messages)


def test_an_estimator_fitted_in_one_process_does_not_warn_nor_import_mpi4py():
    env = {k: v for k, v in os.environ.items() if k not in _MPI_ENV}
    done = subprocess.run(
        [sys.executable, "-c", _FIT_TWICE], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0", "False", "-"]
