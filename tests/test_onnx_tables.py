"""ONNX export of models trained on raw tables (issues 16 and 18), onnxruntime as the oracle.

The graph takes one input per raw column (float64 with NaN for numbers, the cell's text for
categories), imputes, adds the missing indicators, one-hot encodes, standardises and runs the
network: its outputs on raw rows must equal ``betaprop predict`` and the Python path
(``Preprocessing.transform`` on the raw frame, then ``net.predict``), float32 to 1e-5
relative and float64 to 1e-12.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import betaprop as bp  # noqa: E402
from betaprop import cli  # noqa: E402
from betaprop.cli.models import open_model  # noqa: E402
from betaprop.files.datasets import DataError  # noqa: E402
from betaprop.files.onnx import OnnxExportError, to_onnx  # noqa: E402

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}  # max |onnx - betaprop| / max |betaprop|
# every way a cell can be missing that the reader knows, in every column
GAPS = ["", "NA", "NaN", "null", "None", "n/a", "?", "-", "nan", "NULL"]
BOOLEANS = ["true", "false", "TRUE", "False", "FALSE", "True"]
# rows to predict: columns in another order, a city and a date never seen, gaps everywhere
NEW = """joined,income,city,member,age
2024-02-01,3100,Rome,TRUE,33
2024-01-01,,Paris,false,
2024-09-01,2500,NA,True,51
null,NaN,Lille,,28.5
2024-03-01,2800,Nice,FALSE,null
n/a,1999.5,None,-,?
"""


def _table(n: int = 200, seed: int = 0, target: str = "classes") -> str:
    rng = np.random.default_rng(seed)
    lines = ["age,city,member,joined,income,label"]
    for i in range(n):
        age, income = rng.normal(40, 10), rng.normal(3000, 500)
        city = ["Paris", "Lyon", "Nice", "Lille"][rng.integers(0, 4)]
        member = BOOLEANS[rng.integers(0, len(BOOLEANS))]
        joined = f"2024-0{rng.integers(1, 4)}-01"
        score = (age - 40) / 10 + (city == "Paris") - (member.lower() == "true") + rng.normal()
        if target == "classes":
            label = ["low", "mid", "high"][int(np.digitize(score, [-0.5, 0.5]))]
        else:
            label = f"{100 + 10 * score:.3f}"
        cells = [f"{age:.3f}", city, member, joined, f"{income:.1f}", label]
        for column, every in ((0, 13), (1, 17), (2, 19), (3, 23), (4, 29)):
            if i % every == column + 1:
                cells[column] = GAPS[(i // every) % len(GAPS)]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _feed(model, text: str) -> dict[str, np.ndarray]:
    """What a deployment gives the graph for raw CSV rows: for each input (one per raw column,
    by name), the cells' text, or numbers with NaN where a cell is not one."""
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    feed = {}
    for value in model.graph.input:
        cells = frame[value.name].to_numpy(dtype=object).reshape(-1, 1)
        if value.type.tensor_type.elem_type == onnx.TensorProto.STRING:
            feed[value.name] = cells
        else:
            feed[value.name] = pd.to_numeric(cells[:, 0], errors="coerce").reshape(-1, 1)
    return feed


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(want))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want))) / scale


def _python_path(model_path: str, text: str) -> np.ndarray:
    """Preprocessing.transform on the raw frame (columns in its order), then net.predict."""
    model, prep = open_model(model_path)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return model.network.predict(prep.transform(frame, model.network.dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("classes", ["--indicator"]),
        ("classes", ["--loss", "squared_error", "--output", "sigmoid"]),
        ("numbers", ["--indicator"]),
    ],
    ids=["softmax-indicator", "squared-error", "regression-indicator"],
)
def test_export_of_a_table_model_equals_predict(tmp_path, capsys, dtype, target, options):
    (tmp_path / "table.csv").write_text(_table(target=target))
    (tmp_path / "new.csv").write_text(NEW)
    run = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "table.csv"), "--impute", "median", "--epochs", "8",
            "--hidden", "8,5", "--activation", "gelu,tanh", "--dtype", dtype, *options]  # fmt: skip
    assert cli.main([*argv, "--out", str(run), "--quiet"]) == 0
    model_path = str(run / "model.safetensors")
    out = tmp_path / "predictions.csv"
    predict = ["predict", model_path, str(tmp_path / "new.csv"), "--out", str(out)]
    assert cli.main(predict + (["--proba"] if target == "classes" else [])) == 0
    assert cli.main(["export", model_path, "--onnx", str(tmp_path / "m.onnx")]) == 0
    said = capsys.readouterr()
    assert "categories training did not see (Rome)" in said.err
    assert "city (string, n x 1)" in said.out and "age (float64, n x 1)" in said.out

    exported = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(exported, full_check=True)
    props = {p.key: p.value for p in exported.metadata_props}
    assert json.loads(props["columns"]) == {"age": "float64", "city": "string",
                                            "member": "string", "joined": "string",
                                            "income": "float64"}  # fmt: skip
    outputs = _session(exported).run(None, _feed(exported, NEW))
    with open(out, newline="") as handle:
        printed = list(csv.reader(handle))[1:]
    python = _python_path(model_path, NEW)
    if target == "numbers":
        (prediction,) = outputs
        want = np.array([float(row[0]) for row in printed])
        assert relative_error(prediction[:, 0], want) <= TOLERANCE[dtype]
        prep = open_model(model_path)[1]
        assert relative_error(prediction[:, 0], prep.decode(python)) <= TOLERANCE[dtype]
        return
    label, probabilities = outputs
    assert probabilities.dtype == np.dtype(dtype)
    assert list(label) == [row[0] for row in printed]
    want = np.array([[float(v) for v in row[1:]] for row in printed])
    assert relative_error(probabilities, want) <= TOLERANCE[dtype]
    assert relative_error(probabilities, python) <= TOLERANCE[dtype]
    # the training rows too (every gap token and boolean spelling), in the file's order
    rows = _table(target=target)
    assert relative_error(
        _session(exported).run(None, _feed(exported, rows))[1], _python_path(model_path, rows)
    ) <= TOLERANCE[dtype]  # fmt: skip


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "size": rng.normal(0.0, 3.0, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "y": rng.choice(["a", "b"], n),
        }
    )


def test_a_model_that_refuses_unseen_categories_fails_in_onnxruntime_too():
    """Preprocessing(unknown="error"): OneHotEncoder(zeros=0) raises where predict refuses."""
    frame = _frame()
    prep = bp.Preprocessing.fit(frame, target="y", unknown="error")
    net = bp.Network([len(prep.feature_names), 4, 2], loss="cross_entropy", dtype="float64")
    session = _session(to_onnx(net, preprocessing=prep))
    seen = frame.drop(columns="y").iloc[:5]
    feed = {"size": seen[["size"]].to_numpy(), "colour": seen[["colour"]].to_numpy(object)}
    label, P = session.run(None, feed)
    assert relative_error(P, net.predict(prep.transform(seen, "float64"))) <= 1e-12
    unseen = seen.assign(colour=["red", "mauve", "blue", "red", "red"])
    with pytest.raises(DataError, match=r"categories \['mauve'\] that training did not see"):
        prep.transform(unseen)
    feed["colour"] = unseen[["colour"]].to_numpy(object)
    with pytest.raises(Exception, match="Unknown Category"):
        session.run(None, feed)
    prep.unknown = "ignore"  # what predict --unknown ignore does: all-zero one-hot
    _, P = _session(to_onnx(net, preprocessing=prep)).run(None, feed)
    assert relative_error(P, net.predict(prep.transform(unseen, "float64"))) <= 1e-12


def test_a_gap_that_the_model_does_not_fill_gives_nan():
    """No imputation: betaprop refuses a missing number; the graph (which cannot) gives NaN."""
    frame = _frame()
    prep = bp.Preprocessing.fit(frame, target="y")
    net = bp.Network([len(prep.feature_names), 3, 2], loss="cross_entropy", dtype="float64")
    model = to_onnx(net, preprocessing=prep)
    _, P = _session(model).run(
        None, {"size": np.array([[np.nan], [1.0]]), "colour": np.array([["red"], ["red"]], object)}
    )
    assert np.isnan(P[0]).all() and np.isfinite(P[1]).all()


def test_the_graph_uses_standard_and_ml_operators_only():
    prep = bp.Preprocessing.fit(_frame(), target="y", impute="most_frequent", indicator=True)
    net = bp.Network([len(prep.feature_names), 2], loss="cross_entropy", dtype="float32")
    model = to_onnx(net, preprocessing=prep)
    assert {o.domain: o.version for o in model.opset_import} == {"": 17, "ai.onnx.ml": 3}
    assert {n.op_type for n in model.graph.node if n.domain} == {"LabelEncoder", "OneHotEncoder"}
    inputs = {v.name: v.type.tensor_type for v in model.graph.input}
    assert list(inputs) == ["size", "colour"]
    assert inputs["colour"].elem_type == onnx.TensorProto.STRING
    assert inputs["size"].elem_type == onnx.TensorProto.DOUBLE
    shape = [d.dim_param or d.dim_value for d in inputs["size"].shape.dim]
    assert shape == ["n", 1]


def test_a_column_named_like_an_output_is_refused():
    frame = _frame().rename(columns={"size": "label"})
    prep = bp.Preprocessing.fit(frame, target="y")
    net = bp.Network([len(prep.feature_names), 2], loss="cross_entropy")
    with pytest.raises(OnnxExportError, match="feature column 'label' would have the name"):
        to_onnx(net, preprocessing=prep)
