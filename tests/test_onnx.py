"""ONNX export, with onnxruntime as the oracle: its outputs must equal ``net.predict``."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import betaprop as bp  # noqa: E402
from betaprop import cli  # noqa: E402
from betaprop.engine import activations, losses  # noqa: E402
from betaprop.files.onnx import ONNX_ACTIVATIONS, OnnxExportError, to_onnx  # noqa: E402

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}  # max |onnx - betaprop| / max |betaprop|
HIDDEN = sorted({activations.get_activation(a).name for a in activations.names(hidden_only=True)})
PAIRS = [
    (loss.name, output)
    for loss in losses.LOSSES.values()
    for output in (
        sorted(activations.ACTIVATIONS) if loss.allowed_outputs is None else loss.allowed_outputs
    )
]


def session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def random_network(sizes, hidden, output, loss, dtype, seed=0) -> bp.Network:
    """A network whose weights are large enough to drive every activation into its tails."""
    net = bp.Network(sizes, hidden, output, loss, dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for q in range(1, net.Q + 1):
        net.W[q][...] = rng.normal(0.0, 1.5 / np.sqrt(net.sizes[q - 1]), net.W[q].shape)
        net.b[q][...] = rng.normal(0.0, 0.5, net.b[q].shape)
    return net


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(want))), np.finfo(np.float64).tiny)  # all-zero rows: 0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def test_every_hidden_and_output_activation_has_an_onnx_form():
    assert set(activations.ACTIVATIONS) <= set(ONNX_ACTIVATIONS)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize(("loss", "output"), PAIRS, ids=[f"{lo}-{o}" for lo, o in PAIRS])
def test_onnxruntime_equals_predict(loss, output, depth, dtype):
    """Every activation/output/loss pair, several depths, both dtypes, batches of 1 and 37."""
    X = np.random.default_rng(1).normal(0.0, 2.0, (37, 5)).astype(dtype)
    for k in range(len(HIDDEN) if depth else 1):
        hidden = [HIDDEN[(k + j) % len(HIDDEN)] for j in range(depth)]  # all, in every slot
        net = random_network([5, *[6, 7, 4][:depth], 3], hidden or "relu", output, loss, dtype, k)
        run = session(to_onnx(net))
        for rows in (X[:1], X):
            (Y,) = run.run(None, {"X": rows})
            want = net.predict(rows)
            assert Y.dtype == np.dtype(dtype) and Y.shape == want.shape
            error = relative_error(Y, want)
            assert error <= TOLERANCE[dtype], (hidden, output, error)


def test_the_file_is_valid_onnx_with_one_gemm_per_layer(tmp_path):
    net = random_network([4, 8, 6, 3], ["gelu", "elu"], "softmax", "cross_entropy", "float64")
    path = tmp_path / "net.onnx"
    returned = to_onnx(net, path, feature_names=["a", "b", "c", "d"])
    model = onnx.load(str(path))
    assert model.SerializeToString() == returned.SerializeToString()
    onnx.checker.check_model(model, full_check=True)
    gemms = [node for node in model.graph.node if node.op_type == "Gemm"]
    assert len(gemms) == net.Q
    assert all(a.name == "transB" and a.i == 1 for node in gemms for a in node.attribute)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for q, node in enumerate(gemms, start=1):
        assert weights[node.input[1]].shape == net.W[q].shape  # (N_q, N_{q-1}), not transposed
        assert weights[node.input[1]].tobytes() == net.W[q].tobytes()
    (x,) = model.graph.input
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["n", 4]
    assert "a, b, c, d" in x.doc_string
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["feature_names"]) == ["a", "b", "c", "d"]
    assert json.loads(props["betaprop_network"]) == net.spec()


# ----------------------------------------------------------------------------- skl2onnx
@pytest.fixture(scope="module")
def skl2onnx():
    module = pytest.importorskip("skl2onnx")
    from betaprop.estimators.onnx import register

    register()
    return module


def _pipeline(estimator, X, y):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs are enough here
        return Pipeline([("scale", StandardScaler()), ("mlp", estimator)]).fit(X, y)


@pytest.mark.parametrize("kind", ["multiclass-strings", "binary-integers"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_skl2onnx_converts_a_pipeline_with_the_classifier(skl2onnx, kind, dtype):
    X, t = sklearn.datasets.load_iris(return_X_y=True)
    y = np.array(["setosa", "versicolor", "virginica"])[t] if kind.startswith("multi") else t % 2
    estimator = bp.MLPClassifier((16, 8), activation="tanh", max_iter=60, random_state=0)
    pipe = _pipeline(estimator.set_params(dtype=dtype), X, y)
    X = X.astype(dtype)
    model = skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False})
    onnx.checker.check_model(model, full_check=True)
    label, probabilities = session(model).run(None, {"X": X})
    assert list(label) == list(pipe.predict(X))
    assert relative_error(probabilities, pipe.predict_proba(X)) <= TOLERANCE[dtype]
    if dtype == "float32":  # skl2onnx's default zipmap output (float only): {class: p} per row
        zipped = session(skl2onnx.to_onnx(pipe, X[:1])).run(None, {"X": X[:2]})[1]
        assert list(zipped[0]) == list(pipe.classes_)


def test_skl2onnx_converts_the_regressor(skl2onnx):
    X, y = sklearn.datasets.load_diabetes(return_X_y=True)
    estimator = bp.MLPRegressor(hidden_layer_sizes=(12,), activation="gelu", max_iter=20)
    pipe = _pipeline(estimator.set_params(random_state=0, dtype="float64"), X, y)
    (Y,) = session(skl2onnx.to_onnx(pipe, X[:1])).run(None, {"X": X})
    assert Y.shape == (len(X), 1)
    assert relative_error(Y[:, 0], pipe.predict(X)) <= TOLERANCE["float64"]


def test_skl2onnx_refuses_a_multilabel_classifier(skl2onnx):
    X, t = sklearn.datasets.load_iris(return_X_y=True)
    Y = np.stack([t == 0, t == 2], axis=1).astype(int)
    pipe = _pipeline(bp.MLPClassifier((4,), max_iter=5, random_state=0), X, Y)
    with pytest.raises(OnnxExportError, match="multilabel MLPClassifier is not supported"):
        skl2onnx.to_onnx(pipe, X[:1].astype(np.float32))


# ----------------------------------------------------------------------------- the command
def _iris_csv(path: Path) -> Path:
    bunch = sklearn.datasets.load_iris()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["species", *bunch.feature_names])  # target first: not the default
        for x, t in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([bunch.target_names[t], *x])
    return path


def _rows(path: Path, names: list[str]) -> np.ndarray:
    """The raw CSV cells of the named columns, as float64 (what a deployment would read)."""
    with open(path) as handle:
        table = list(csv.DictReader(handle))
    return np.array([[float(row[name]) for name in names] for row in table])


def test_export_reproduces_predict_on_raw_csv_rows(tmp_path, capsys):
    data = _iris_csv(tmp_path / "iris.csv")
    run = tmp_path / "run"
    args = ["--data", str(data), "--target", "species", "--epochs", "10", "--hidden", "8,6"]
    assert cli.main(["train", *args, "--activation", "elu", "--out", str(run), "--quiet"]) == 0
    model = str(run / "model.safetensors")
    predictions = tmp_path / "predictions.csv"
    assert cli.main(["predict", model, str(data), "--proba", "--out", str(predictions)]) == 0
    assert cli.main(["export", model, "--onnx", str(tmp_path / "iris.onnx")]) == 0
    assert "label (string, n)" in capsys.readouterr().out

    exported = onnx.load(str(tmp_path / "iris.onnx"))
    onnx.checker.check_model(exported, full_check=True)
    props = {p.key: p.value for p in exported.metadata_props}
    assert json.loads(props["classes"]) == ["setosa", "versicolor", "virginica"]
    names = json.loads(props["feature_names"])
    label, probabilities = session(exported).run(None, {"X": _rows(data, names)})
    with open(predictions) as handle:
        expected = list(csv.reader(handle))[1:]
    assert list(label) == [row[0] for row in expected]
    want = np.array([[float(v) for v in row[1:]] for row in expected])
    assert relative_error(probabilities, want) <= TOLERANCE["float32"]


def test_export_of_a_regression_model_gives_predict_values(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--data", "diabetes", "--epochs", "3", "--dtype", "float64", "--hidden", "8"]
    assert cli.main(["train", *args, "--activation", "gelu", "--out", str(run), "--quiet"]) == 0
    model = str(run / "model.safetensors")
    assert cli.main(["predict", model, "diabetes"]) == 0
    want = np.array([float(v) for v in capsys.readouterr().out.splitlines()[1:]])
    assert cli.main(["export", model, "--onnx", str(tmp_path / "d.onnx"), "--quiet"]) == 0
    exported = onnx.load(str(tmp_path / "d.onnx"))
    bunch = sklearn.datasets.load_diabetes()
    (prediction,) = session(exported).run(None, {"X": bunch.data})
    assert relative_error(prediction[:, 0], want) <= TOLERANCE["float64"]


# ----------------------------------------------------------------------------- bad input
def test_an_activation_without_an_onnx_form_is_named(monkeypatch, tmp_path):
    cube = activations.Activation(
        "cube", lambda s, out: np.power(s, 3, out=out), lambda s, y, out: None
    )
    monkeypatch.setitem(activations.ACTIVATIONS, "cube", cube)
    net = bp.Network([2, 3, 1], activation="cube")
    target = tmp_path / "kept.onnx"
    target.write_bytes(b"old")
    with pytest.raises(OnnxExportError, match=r"activation of layer 1 must be one of .*'cube'"):
        to_onnx(net, target)
    assert target.read_bytes() == b"old"  # nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["kept.onnx"]  # no temporary file left


def test_an_unknown_part_of_the_network_is_named(monkeypatch):
    net = bp.Network([2, 3, 1])
    spec = {**net.spec(), "attention": ["self", None]}
    monkeypatch.setattr(net, "spec", lambda: spec)
    with pytest.raises(OnnxExportError, match="does not support 'attention' layers yet"):
        to_onnx(net)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
def test_batch_norm_and_dropout_at_inference_equal_predict(hidden, dtype):
    """BatchNormalization with the running statistics (after training steps), no dropout."""
    net = bp.Network([5, 8, 6, 7, 3], hidden, loss="cross_entropy", dtype=dtype, seed=2,
                     normalization=["batch", None, "batch"], dropout=[0.2, 0.5, 0.0])  # fmt: skip
    rng = np.random.default_rng(3)
    X = rng.normal(0.0, 2.0, (64, 5)).astype(dtype)
    D = np.eye(3)[rng.integers(0, 3, 64)]
    bp.fit(net, X, D, optimizer="adam", epochs=3, batch_size=16, seed=0)
    assert np.any(net.running_mean[1] != 0) and np.any(net.running_var[3] != 1)
    run = session(to_onnx(net))
    (Y,) = run.run(None, {"X": X})
    assert relative_error(Y, net.predict(X)) <= TOLERANCE[dtype]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda tmp: to_onnx("net", None), "net must be a betaprop.Network, got str"),
        (lambda tmp: to_onnx(bp.Network([2, 1]), tmp), "path must be a file"),
        (lambda tmp: to_onnx(bp.Network([2, 1]), None, input_name="Y"), "input_name must be"),
        (lambda tmp: to_onnx(bp.Network([2, 1]), None, feature_names=["a"]), "N_0 = 2 names"),
    ],
)
def test_bad_arguments_give_one_clear_error(tmp_path, call, message):
    with pytest.raises(OnnxExportError, match=message):
        call(tmp_path)


def test_the_command_reports_a_bad_model_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    code = cli.main(["export", str(tmp_path / "bad.safetensors"), "--onnx", "out.onnx"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("betaprop: error:")
    assert not (tmp_path / "out.onnx").exists()


def test_the_examples_of_docs_onnx_md_run(tmp_path, monkeypatch, skl2onnx):
    text = (Path(__file__).parent.parent / "docs" / "onnx.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(block, "docs/onnx.md", "exec"), {})
    assert (tmp_path / "net.onnx").exists() and (tmp_path / "table.onnx").exists()


def test_help_lists_the_export_command():
    assert "export" in cli.build_parser().format_help()
