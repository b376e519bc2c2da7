"""The conformance matrix: every layer operation, and the combinations that matter, against
every entry point (STYLE.md §8: the crossing is the unit of testing).

Rows: the cases of ``conformance_cases.CASES`` (each layer operation of
``engine.layers.OPERATIONS``, batch norm + dropout, layer norm + residual, residual + batch
norm, per-layer mixes, the sparse first layer, memory="recompute"). Columns, each against an
oracle that is not betaprop: PyTorch autograd and ``torch.nn`` modules in float64 over several
SGD steps (running statistics included), the literal ``reference.batch_pass``, central
differences, a saved model file loaded by torch's ``load_state_dict(strict=True)``, ONNX
under onnxruntime, ``mpiexec -n 2`` against one process, and the estimators.

Every registered operation must have a case, a torch form (``TORCH``) and every hook of
``Operation``: a new operation that lacks one fails here by name.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse

sys.path.insert(0, str(Path(__file__).parent))
from conformance_cases import CASES, data, network, train  # noqa: E402

from betaprop.engine import reference  # noqa: E402
from betaprop.engine.gradcheck import gradcheck  # noqa: E402
from betaprop.engine.layers import OPERATIONS, Operation  # noqa: E402
from betaprop.engine.network import Network  # noqa: E402

torch = pytest.importorskip("torch")

ACTIVATIONS = {"tanh": torch.nn.Tanh, "softmax": lambda: torch.nn.Softmax(dim=1)}


# operation name -> the torch module it is (None: no module; Twin.forward applies it)
TORCH: dict[str, Any] = {
    "affine": lambda net, q: torch.nn.Linear(net.sizes[q - 1], net.sizes[q]),
    "batch": lambda net, q: torch.nn.BatchNorm1d(net.sizes[q]),
    "layer": lambda net, q: torch.nn.LayerNorm(net.sizes[q]),
    "activation": lambda net, q: ACTIVATIONS[net.activations[q - 1]](),
    "dropout": lambda net, q: None,  # the engine's masks m^q / (1 - p), in Twin.forward
    "residual": lambda net, q: None,
}
HOOKS = ("forward", "backward", "onnx", "reference_forward", "reference_backward", "explain")


class Twin(torch.nn.Module):
    """The network written with torch modules, named as a model file names its tensors
    (one index per module that ``Operation.torch_slot`` says is one)."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.layers: list[list[tuple[str, Any]]] = []
        index = 0
        for q in range(1, net.Q + 1):
            layer = []
            for op in net.ops[q]:
                module = TORCH[op.name](net, q)
                if op.torch_slot:
                    self.add_module(str(index), module or torch.nn.Identity())
                    index += 1
                layer.append((op.name, module))
            self.layers.append(layer)
        self.double()

    def forward(self, x: Any, masks: list | None = None) -> Any:
        y = x
        for q, layer in enumerate(self.layers, start=1):
            h = y
            for name, module in layer:
                if name == "dropout":  # the engine's masks (training) or nothing
                    h = h if masks is None else h * torch.from_numpy(masks[q].T.copy())
                elif name == "residual":  # y^q = y^{q-1} + f(u^q)
                    h = y + h
                else:
                    h = module(h)
            y = h
        return y


def dense(X: Any) -> np.ndarray:
    return X.toarray() if scipy.sparse.issparse(X) else np.asarray(X)


def state_of(net: Network) -> dict[str, Any]:
    from betaprop.files.model import layer_tensors

    return {name: torch.from_numpy(np.array(a)) for name, a in layer_tensors(net).items()}


# ------------------------------------------------------------------------------ the registry
@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_every_operation_has_every_entry(name: str) -> None:
    cls = OPERATIONS[name]
    missing = [hook for hook in HOOKS if getattr(cls, hook) is getattr(Operation, hook)]
    assert not missing, f"operation {name!r} lacks {missing}"
    assert name in TORCH, f"operation {name!r} has no torch form in test_conformance.TORCH"
    covered = {op.name for case in CASES for ops in network(case).ops for op in ops}
    assert name in covered, f"operation {name!r} appears in no case of conformance_cases"
    assert len(cls.torch_names) == len(cls.params + cls.state) or name == "affine"


# ------------------------------------------------------------------------------ PyTorch
@pytest.mark.parametrize("case", CASES)
def test_pytorch_after_sgd_steps(case: str) -> None:
    """Gradients at every step, then parameters and running statistics, equal torch's."""
    net = network(case)
    twin = Twin(net)
    twin.load_state_dict(state_of(net), strict=True)
    twin.train()
    X, D = data(case)
    X, D = dense(X), np.asarray(D)
    learning_rate = 0.1
    for step, rows in enumerate((slice(0, 8), slice(8, 20), slice(20, 29), slice(29, 37))):
        x, d = X[rows], D[rows]
        loss = net.loss_and_gradients(x, d)
        masks = [net.workspace(len(x)).mask[q] for q in range(net.Q + 1)]
        masks = [None if m is None else m.copy() for m in masks]
        twin.zero_grad()
        out = twin(torch.from_numpy(x), masks)
        torch_loss = -(torch.from_numpy(d) * torch.log(out)).sum(dim=1).mean()
        torch_loss.backward()
        assert abs(float(torch_loss.detach()) - loss) <= 1e-12, (case, step)
        grads = _grads(net)
        for name, parameter in twin.named_parameters():
            np.testing.assert_allclose(
                grads[name], parameter.grad.numpy(), rtol=0, atol=1e-10, err_msg=f"{name}, {step}"
            )
        net.params -= learning_rate * net.grads
        with torch.no_grad():
            for parameter in twin.parameters():
                parameter -= learning_rate * parameter.grad
    ours = state_of(net)
    for name, value in twin.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        np.testing.assert_allclose(ours[name].numpy(), value.numpy(), rtol=0, atol=1e-10)
    twin.eval()
    with torch.no_grad():
        expected = twin(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.predict(X), expected, rtol=0, atol=1e-10)


def _grads(net: Network) -> dict[str, np.ndarray]:
    """The gradients under the parameters' state-dict names (grads has params' layout)."""
    from betaprop.files.model import named_tensors

    twin = net.copy()
    twin.params[...] = net.grads
    return {name: np.array(a) for name, a, _ in named_tensors(twin) if "running" not in name}


# ------------------------------------------------------------------------------ reference
@pytest.mark.parametrize("case", CASES)
def test_reference_batch_pass(case: str) -> None:
    net = network(case)
    X, D = data(case, n=9)
    loss = net.loss_and_gradients(X, D)
    ws = net.workspace(9)
    masks = [None if m is None else m.copy() for m in ws.mask]
    ref = reference.batch_pass(net, dense(X), D, masks)
    assert abs(ref.loss - loss) <= 1e-12
    for q in range(1, net.Q + 1):
        np.testing.assert_allclose(ref.dW[q], net.dW[q], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ref.db[q], net.db[q], rtol=0, atol=1e-12)
        if net.gamma[q] is not None:
            np.testing.assert_allclose(ref.dgamma[q], net.dgamma[q], rtol=0, atol=1e-12)
            np.testing.assert_allclose(ref.dshift[q], net.dshift[q], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ central differences
@pytest.mark.parametrize("case", CASES)
def test_central_differences(case: str) -> None:
    net = network(case)
    X, D = data(case, n=9)
    report = gradcheck(net, X, D)
    assert report.passed, report


# ------------------------------------------------------------------------------ model files
@pytest.mark.parametrize("case", CASES)
def test_model_file_loads_in_torch(case: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from betaprop.files.model import load, save

    net = train(case)  # trained: running statistics away from 0 and 1
    path = tmp_path / "model.safetensors"
    save(net, path)
    X, _ = data(case)
    loaded = load(path)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    twin = Twin(net)
    twin.load_state_dict(load_file(str(path)), strict=True)
    twin.eval()
    with torch.no_grad():
        expected = twin(torch.from_numpy(dense(X))).numpy()
    np.testing.assert_allclose(net.predict(X), expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ ONNX
@pytest.mark.parametrize("case", CASES)
def test_onnx_equals_onnxruntime(case: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from betaprop.files.onnx import to_onnx

    net = train(case)
    X, _ = data(case)
    session = ort.InferenceSession(
        to_onnx(net).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    got = session.run(None, {"X": dense(X)})[0]
    np.testing.assert_allclose(got, net.predict(X), rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------ MPI
def test_mpi_two_processes_equal_one(tmp_path: Path) -> None:
    """One ``mpiexec -n 2`` trains every case; each equals one process's training."""
    from .test_distributed import ranks  # skips this test alone without mpi4py

    out = tmp_path / "params.npz"
    worker = str(Path(__file__).parent / "conformance_worker.py")
    done = ranks(2, worker, str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    parallel = np.load(out)
    for case in CASES:
        one = train(case)
        np.testing.assert_allclose(parallel[f"{case}/params"], one.params, rtol=0, atol=1e-10)
        np.testing.assert_allclose(parallel[f"{case}/stats"], one.stats, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------ estimators
ESTIMATOR_CASES = {
    "batch_norm+dropout": {"batch_norm": True, "dropout": 0.3},
    "layer_norm+residual": {"layer_norm": True, "residual": True},
    "residual+batch_norm": {"batch_norm": True, "residual": True},
}


@pytest.mark.parametrize("case", ESTIMATOR_CASES)
def test_estimators(case: str) -> None:
    """The estimators build the case's operations; their probabilities are torch's."""
    from betaprop.estimators import MLPClassifier

    X, D = data("plain", n=60)
    y = D.argmax(axis=1)
    model = MLPClassifier(
        hidden_layer_sizes=(5, 5, 5), activation="tanh", max_iter=5, random_state=0,
        dtype="float64", **ESTIMATOR_CASES[case],
    )  # fmt: skip
    with pytest.warns(Warning):  # ConvergenceWarning after 5 iterations
        model.fit(X, y)
    net = model.to_network()
    expected = network(case)  # the same operations, layer by layer
    assert [[op.name for op in ops] for ops in net.ops] == [
        [op.name for op in ops] for ops in expected.ops
    ]
    twin = Twin(net)
    twin.load_state_dict(state_of(net), strict=True)
    twin.eval()
    with torch.no_grad():
        probabilities = twin(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.predict_proba(X), probabilities, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ explain
def _claims_affine(e: dict, net: Network, ws: Any, q: int, i: int) -> None:
    below = dense(ws.y[q - 1])[:, i] if q > 1 or not ws.sparse else dense(ws.y[0].T).T[:, i]
    np.testing.assert_allclose(e["s"], net.W[q] @ below + e["b"], rtol=0, atol=1e-12)


def _claims_activation(e: dict, net: Network, ws: Any, q: int, i: int) -> None:
    f = ACTIVATIONS[net.activations[q - 1]]()
    np.testing.assert_allclose(e["y"], f(torch.from_numpy(e["a"][None, :]))[0], atol=1e-12)


def _claims_norm(e: dict, net: Network, ws: Any, q: int, i: int) -> None:
    s = ws.s[q][:, i]
    np.testing.assert_allclose(e["xhat"], (s - e["mu"]) / e["sigma"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(e["u"], e["gamma"] * e["xhat"] + e["shift"], atol=1e-12)


def _claims_dropout(e: dict, net: Network, ws: Any, q: int, i: int) -> None:
    assert set(np.unique(e["mask"])) <= {0.0, 1.0 / (1.0 - e["p"])}


def _claims_residual(e: dict, net: Network, ws: Any, q: int, i: int) -> None:
    branch = ws.fy[q][:, i] * (ws.mask[q][:, i] if net.p[q] else 1.0)
    np.testing.assert_allclose(e["y"], e["below"] + branch, rtol=0, atol=1e-12)


# operation name -> the relations its ``explain`` numbers must satisfy (recomputed here)
CLAIMS = {
    "affine": _claims_affine,
    "activation": _claims_activation,
    "batch": _claims_norm,
    "layer": _claims_norm,
    "dropout": _claims_dropout,
    "residual": _claims_residual,
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_every_operation_has_explain_claims(name: str) -> None:
    assert name in CLAIMS, f"operation {name!r} has no check of its explain() in CLAIMS"


@pytest.mark.parametrize("case", [c for c in CASES if c != "sparse_first_layer"])
def test_explain_numbers_hold(case: str) -> None:
    """What an operation says it computed (for example 1 of a training pass) holds when
    recomputed from the numbers it shows (and, for f, by torch). memory="recompute" shares
    s^q, y^q between layers, so explain reads a copy's pass (as the trace does)."""
    net = network(case).copy()  # memory="all"
    X, D = data(case, n=9)
    net.loss_and_gradients(X, D)
    ws = net.workspace(9)
    for q in range(1, net.Q + 1):
        for op in net.ops[q]:
            shown = op.explain(net, ws, q, i=1)
            assert shown["formula"]
            CLAIMS[op.name](shown, net, ws, q, 1)
