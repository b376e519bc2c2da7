"""Model files and checkpoints of networks with batch normalisation and dropout.

The model file's tensors are the state dict of ``torch.nn.Sequential(Linear, BatchNorm1d,
act, Dropout, ..., Linear)``: torch loads them with ``strict=True`` and its eval outputs
equal betaprop's. A checkpoint keeps the running statistics and the dropout generator, so an
interrupted and resumed run equals the uninterrupted one bit for bit.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

import betaprop as bp
from betaprop import optimizers as opt
from betaprop.files.checkpoint import Checkpoint, load_checkpoint, resume
from betaprop.files.model import ModelFileError, load, save, tensor_names

RNG = np.random.default_rng(0)
X = RNG.normal(size=(103, 5))  # 11 mini-batches of 10 (the last one of 3)
D = np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
VALIDATION = (RNG.normal(size=(30, 5)), np.eye(3)[RNG.integers(0, 3, 30)])


def _net(dtype: str = "float64", **kwargs: object) -> bp.Network:
    kwargs.setdefault("normalization", ["batch", None, "batch"])
    kwargs.setdefault("dropout", [0.2, 0.5, 0.0])
    return bp.Network([5, 7, 6, 4, 3], "relu", loss="cross_entropy", dtype=dtype, seed=2, **kwargs)  # type: ignore[arg-type]


def _trained(net: bp.Network, steps: int = 4) -> bp.Network:
    """A few training steps: gamma, shift and the running statistics move from 1, 0, 0, 1."""
    optimizer = opt.SGD(0.1)
    state = optimizer.init(net.params)
    for step in range(steps):
        idx = np.arange(step * 10, step * 10 + 10)
        bp.train_step(net, optimizer, state, X[idx].T.astype(net.dtype), D[idx].T.astype(net.dtype))
    return net


def test_names_follow_the_modules_of_torch_sequential(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    net = _trained(_net())
    save(net, tmp_path / "m.safetensors")
    tensors = load_file(str(tmp_path / "m.safetensors"))
    # Linear 0, BatchNorm1d 1, ReLU 2, Dropout 3 | Linear 4, ReLU 5, Dropout 6 |
    # Linear 7, BatchNorm1d 8, ReLU 9 | Linear 10
    bn = ["weight", "bias", "running_mean", "running_var"]
    expected = [f"{i}.{k}" for i in (0, 4, 7, 10) for k in ("weight", "bias")]
    expected += [f"{i}.{k}" for i in (1, 8) for k in bn]
    assert sorted(tensors) == sorted(expected)
    for q, index in zip(range(1, 5), (0, 4, 7, 10), strict=True):
        assert tensor_names(q, net.normalized, net.p) == (f"{index}.weight", f"{index}.bias")
        np.testing.assert_array_equal(tensors[f"{index}.weight"], net.W[q])
    for q, index in ((1, 1), (3, 8)):
        np.testing.assert_array_equal(tensors[f"{index}.weight"], net.gamma[q][:, 0])
        np.testing.assert_array_equal(tensors[f"{index}.bias"], net.shift[q][:, 0])
        np.testing.assert_array_equal(tensors[f"{index}.running_mean"], net.running_mean[q][:, 0])
        np.testing.assert_array_equal(tensors[f"{index}.running_var"], net.running_var[q][:, 0])


def test_a_network_without_normalisation_keeps_the_old_names(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    net = _net(normalization=None, dropout=0.0)
    save(net, tmp_path / "m.safetensors")
    names = sorted(load_file(str(tmp_path / "m.safetensors")))
    assert names == sorted(f"{2 * (q - 1)}.{k}" for q in range(1, 5) for k in ("weight", "bias"))
    assert [tensor_names(q) for q in range(1, 5)] == [
        tensor_names(q, net.normalized, net.p) for q in range(1, 5)
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_keeps_parameters_statistics_and_predictions(tmp_path: Path, dtype: str) -> None:
    net = _trained(_net(dtype))
    save(net, tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors")
    assert again.spec() == net.spec()
    np.testing.assert_array_equal(again.params, net.params)
    np.testing.assert_array_equal(again.stats, net.stats)
    assert not np.array_equal(net.stats[: len(net.stats) // 2], 0.0)  # the statistics moved
    np.testing.assert_array_equal(again.predict(X), net.predict(X))


def test_a_file_without_a_running_statistic_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    net = _trained(_net())
    save(net, tmp_path / "m.safetensors")
    with open(tmp_path / "m.safetensors", "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        import json

        metadata = json.loads(handle.read(header_size))["__metadata__"]
    tensors = load_file(str(tmp_path / "m.safetensors"))
    del tensors["8.running_var"]
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(ModelFileError):
        load(tmp_path / "bad.safetensors")


def test_torch_loads_the_file_strictly_and_gives_the_same_eval_outputs(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    net = _trained(_net())
    path = tmp_path / "m.safetensors"
    save(net, path)
    layers: list = []
    for q in range(1, net.Q + 1):
        layers.append(torch.nn.Linear(net.sizes[q - 1], net.sizes[q], dtype=torch.float64))
        if q == net.Q:
            break
        if net.normalized[q]:
            layers.append(torch.nn.BatchNorm1d(net.sizes[q], dtype=torch.float64))
        layers.append(torch.nn.ReLU())
        if net.p[q]:
            layers.append(torch.nn.Dropout(net.p[q]))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    with torch.no_grad():
        out = torch.softmax(model(torch.from_numpy(X)), dim=1).numpy()
    np.testing.assert_allclose(out, net.predict(X), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ resume
class SigintAt(bp.Callback):
    """Sends this process a real SIGINT after the given (epoch, batch)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_end(self, net, epoch, batch, loss):  # type: ignore[no-untyped-def]
        if (epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def _settings(early: bool) -> dict:
    return {
        "optimizer": opt.Adam(0.01),
        "batch_size": 10,
        "validation_data": VALIDATION,
        "early_stopping": bp.EarlyStopping(patience=2, monitor="val_loss") if early else None,
    }


@pytest.mark.parametrize("early", [False, True], ids=["plain", "early-stopping"])
@pytest.mark.parametrize("at", [(1, 3), (3, 11)], ids=["mid-epoch-1", "end-of-epoch-3"])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
    tmp_path: Path, at: tuple[int, int], early: bool
) -> None:
    full_net = _net("float32")
    full = bp.fit(full_net, X, D, epochs=6, seed=5, **_settings(early))
    net = _net("float32")
    with pytest.warns(bp.InterruptedWarning):
        first = bp.fit(
            net, X, D, epochs=6, seed=5, callbacks=[SigintAt(*at), Checkpoint(tmp_path)],
            **_settings(early),
        )  # fmt: skip
    assert first.interrupted
    saved = load_checkpoint(tmp_path)
    if first.best_epoch is None:  # else the network holds the best epoch's statistics
        # (restored on Ctrl-C while validating); the checkpoint keeps those to go on from,
        # and the resumed run below proves them
        np.testing.assert_array_equal(saved.network.stats, net.stats)
    assert saved.network.dropout_rng.bit_generator.state == net.dropout_rng.bit_generator.state
    resumed, history = resume(tmp_path, X, D, validation_data=VALIDATION)
    np.testing.assert_array_equal(resumed.params, full_net.params)
    np.testing.assert_array_equal(resumed.stats, full_net.stats)
    assert history.loss == full.loss and history.val_loss == full.val_loss
    assert resumed.dropout_rng.bit_generator.state == full_net.dropout_rng.bit_generator.state
