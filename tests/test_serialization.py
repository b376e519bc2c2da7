"""Model files: round trips, the PyTorch state-dict layout, atomic saves, every bad file."""

from __future__ import annotations

import json
import os
import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import betaprop as bp
from betaprop.engine.activations import names as activation_names
from betaprop.engine.losses import LOSSES
from betaprop.files.container import digest as _digest
from betaprop.files.model import (
    FORMAT_VERSION,
    ModelFileError,
    load,
    read_model,
    save,
    tensor_names,
)

HIDDEN = activation_names(hidden_only=True)


def _net(dtype: str = "float64", seed: int = 0, **kwargs: object) -> bp.Network:
    kwargs.setdefault("activation", "tanh")
    return bp.Network([3, 5, 4, 2], dtype=dtype, seed=seed, **kwargs)  # type: ignore[arg-type]


def _inputs(n: int = 7, N: int = 3) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, N))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_round_trip_is_bit_identical_for_every_loss(tmp_path, dtype, loss):
    net = bp.Network([3, 6, 2], activation="relu", loss=loss, dtype=dtype, seed=3)
    path = tmp_path / "m.safetensors"
    save(net, path)
    twin = load(path)
    assert twin.sizes == net.sizes
    assert twin.activations == net.activations
    assert twin.loss.name == net.loss.name
    assert twin.dtype == net.dtype
    assert twin.params.tobytes() == net.params.tobytes()
    X = _inputs().astype(dtype)
    assert net.predict(X).tobytes() == twin.predict(X).tobytes()


@pytest.mark.parametrize("activation", HIDDEN)
def test_round_trip_keeps_every_hidden_activation(tmp_path, activation):
    net = bp.Network([2, 3, 3, 1], activation=[activation, "sigmoid"], seed=0, dtype="float64")
    save(net, tmp_path / "m.safetensors")
    assert load(tmp_path / "m.safetensors").activations == net.activations


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_save_then_load_predicts_bit_identically(tmp_path_factory, sizes, seed, dtype):
    net = bp.Network(sizes, activation="tanh", dtype=dtype, seed=seed)
    net.params[...] = np.random.default_rng(seed).normal(size=net.n_params)
    path = tmp_path_factory.mktemp("h") / "m.safetensors"
    save(net, path)
    X = np.random.default_rng(seed + 1).normal(size=(5, sizes[0])).astype(dtype)
    assert load(path).predict(X).tobytes() == net.predict(X).tobytes()


def test_metadata_round_trips_exactly(tmp_path):
    metadata = {"mean": [0.1, 1 / 3, -2.5e-300, 1e300], "classes": ["a", "é", "3"], "n": 7}
    save(_net(), tmp_path / "m.safetensors", metadata=metadata)
    model = read_model(tmp_path / "m.safetensors")
    assert model.metadata == metadata
    assert model.header["format_version"] == FORMAT_VERSION


def test_tensor_names_follow_torch_sequential(tmp_path):
    net = _net()
    save(net, tmp_path / "m.safetensors")
    from safetensors.numpy import load_file

    tensors = load_file(str(tmp_path / "m.safetensors"))
    assert sorted(tensors) == sorted(
        ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    )
    for q in range(1, net.Q + 1):
        weight, bias = tensor_names(q)
        np.testing.assert_array_equal(tensors[weight], net.W[q])
        np.testing.assert_array_equal(tensors[bias], net.b[q][:, 0])


@pytest.mark.parametrize(
    "activation, loss, module",
    [("tanh", "squared_error", None), ("relu", "cross_entropy", "softmax")],
)
def test_pytorch_load_state_dict_gives_the_same_outputs(tmp_path, activation, loss, module):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    net = _net(activation=activation, loss=loss)
    path = tmp_path / "m.safetensors"
    save(net, path)
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation]
    layers: list = []
    for q in range(1, net.Q + 1):
        layers.append(torch.nn.Linear(net.sizes[q - 1], net.sizes[q], dtype=torch.float64))
        layers.append(act() if q < net.Q else torch.nn.Identity())
    sequential = torch.nn.Sequential(*layers)
    sequential.load_state_dict(load_file(str(path)))  # strict: every name and shape matches
    X = _inputs()
    with torch.no_grad():
        out = sequential(torch.from_numpy(X))
        if module == "softmax":
            out = torch.softmax(out, dim=1)
    np.testing.assert_allclose(out.numpy(), net.predict(X), rtol=1e-12, atol=1e-14)


def test_save_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save(_net(seed=1), path)
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save(_net(seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left behind


def test_save_is_atomic_when_fsync_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save(_net(seed=1), path)
    before = path.read_bytes()

    def crash(fd: int) -> None:
        raise OSError("simulated disk failure")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk failure"):
        save(_net(seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_save_refuses_non_finite_weights_and_bad_metadata(tmp_path):
    net = _net()
    net.params[4] = np.nan
    with pytest.raises(ValueError, match="net.params must be finite"):
        save(net, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="metadata must be JSON-serialisable"):
        save(_net(), tmp_path / "b.safetensors", metadata={"x": float("nan")})
    with pytest.raises(ValueError, match="metadata must be JSON-serialisable"):
        save(_net(), tmp_path / "c.safetensors", metadata={"x": object()})
    with pytest.raises(TypeError, match="net must be a betaprop.Network"):
        save("not a net", tmp_path / "d.safetensors")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------ bad files
def _rewrite(path, edit) -> None:
    """Re-serialise a saved model after ``edit(document, tensors)``, with a valid digest."""
    from safetensors.numpy import load_file
    from safetensors.numpy import save as serialize

    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    document = json.loads(json.loads(data[8 : 8 + length])["__metadata__"]["betaprop"])
    tensors = load_file(str(path))
    edit(document, tensors)
    text = json.dumps(document)
    path.write_bytes(
        serialize(tensors, metadata={"betaprop": text, "sha256": _digest(text, tensors)})
    )


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.safetensors"
    save(_net(), path, metadata={"note": "hello"})
    return path


def test_truncated_files_are_rejected(saved):
    data = saved.read_bytes()
    for cut in (0, 5, 8, 20, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match=str(saved.name)):
            load(saved)


def test_random_bytes_are_rejected(tmp_path):
    path = tmp_path / "m.safetensors"
    rng = np.random.default_rng(0)
    for size in (3, 100, 5000):
        path.write_bytes(rng.bytes(size))
        with pytest.raises(ModelFileError, match="not a betaprop model file"):
            load(path)


class _Payload:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def test_a_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "m.safetensors"
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps({"weights": _Payload(str(marker))}, protocol=protocol))
        with pytest.raises(ModelFileError, match="not a betaprop model file"):
            load(path)
        assert not marker.exists()
    # the payload is real: unpickling it would have created the marker
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_a_torch_save_file_is_rejected(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "m.safetensors"
    torch.save({"0.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ModelFileError, match="pickle"):
        load(path)


def test_another_format_version_is_rejected(saved):
    _rewrite(saved, lambda document, tensors: document.update(format_version=2))
    with pytest.raises(ModelFileError, match="format version 2 is not supported"):
        load(saved)


def test_a_foreign_safetensors_file_is_rejected(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"weight": np.zeros((2, 2), dtype=np.float32)}, str(path))
    with pytest.raises(ModelFileError, match="not a betaprop model"):
        load(path)


def test_a_tampered_weight_is_detected(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0x01  # one bit of the last weight
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        load(saved)


def test_a_tampered_metadata_field_is_detected(saved):
    data = saved.read_bytes()
    assert data.count(b"tanh") >= 1
    saved.write_bytes(data.replace(b"tanh", b"relu", 1))  # same length: still valid JSON
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        load(saved)
    saved.write_bytes(data.replace(b"hello", b"HELLO", 1))
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        load(saved)


def test_a_missing_digest_is_detected(saved):
    from safetensors.numpy import load_file
    from safetensors.numpy import save as serialize

    data = saved.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    text = json.loads(data[8 : 8 + length])["__metadata__"]["betaprop"]
    saved.write_bytes(serialize(load_file(str(saved)), metadata={"betaprop": text}))
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        load(saved)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda doc, t: t.__setitem__("0.weight", np.full_like(t["0.weight"], np.nan)),
            "non-finite",
        ),
        (lambda doc, t: t.pop("2.bias"), "'2.bias' .* is missing"),
        (lambda doc, t: t.__setitem__("6.weight", np.zeros((1, 1))), "unexpected tensors"),
        (lambda doc, t: t.__setitem__("0.weight", t["0.weight"][:, :2].copy()), "shape"),
        (lambda doc, t: doc["network"].update(activations=["tanh", "nope", "x"]), "activation"),
        (lambda doc, t: doc["network"].update(loss="hinge"), "loss must be one of"),
        (lambda doc, t: doc["network"].update(sizes=[3, 0, 2]), "sizes"),
        (lambda doc, t: doc["network"].update(dtype="float16"), "dtype"),
        (lambda doc, t: doc.pop("network"), "network description"),
        (lambda doc, t: doc.update(format="something"), "format"),
    ],
)
def test_inconsistent_but_correctly_signed_files_are_rejected(saved, edit, message):
    _rewrite(saved, edit)
    with pytest.raises(ModelFileError, match=message):
        load(saved)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load(tmp_path / "absent.safetensors")
    with pytest.raises(ModelFileError, match="is a folder"):
        load(tmp_path)
