"""Batch normalisation and dropout against PyTorch (float64) and central differences.

The oracle is ``torch.nn.Sequential(Linear, BatchNorm1d, act, Dropout, ..., Linear)`` holding
the same weights: forward values, every gradient, the running statistics over several SGD
steps, and inference (eval mode) must agree to 1e-10. Dropout is compared given the masks
recovered from torch's own ``Dropout`` outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import betaprop as bp
from betaprop.engine.normalization import EPS, MOMENTUM

ACT = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}


def _torch_twin(net: bp.Network) -> tuple[torch.nn.Sequential, list[torch.nn.Module]]:
    """The same network in torch (float64), and its Dropout modules (None per layer without)."""
    layers: list[torch.nn.Module] = []
    drops: list[torch.nn.Module] = []
    for q in range(1, net.Q + 1):
        linear = torch.nn.Linear(net.sizes[q - 1], net.sizes[q]).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(net.W[q].copy()))
            linear.bias.copy_(torch.from_numpy(net.b[q][:, 0].copy()))
        layers.append(linear)
        if q == net.Q:
            break
        if net.normalized[q]:
            norm = torch.nn.BatchNorm1d(net.sizes[q], eps=EPS, momentum=MOMENTUM).double()
            with torch.no_grad():
                norm.weight.copy_(torch.from_numpy(net.gamma[q][:, 0].copy()))
                norm.bias.copy_(torch.from_numpy(net.shift[q][:, 0].copy()))
            layers.append(norm)
        layers.append(ACT[net.activations[q - 1]]())
        if net.p[q]:
            drop = torch.nn.Dropout(net.p[q])
            layers.append(drop)
            drops.append(drop)
    return torch.nn.Sequential(*layers), drops


def _grads_by_torch_name(net: bp.Network) -> dict[str, np.ndarray]:
    """betaprop's gradients keyed like torch's named_parameters (Sequential indices)."""
    out: dict[str, np.ndarray] = {}
    index = 0
    for q in range(1, net.Q + 1):
        out[f"{index}.weight"], out[f"{index}.bias"] = net.dW[q], net.db[q][:, 0]
        index += 1
        if q == net.Q:
            break
        if net.normalized[q]:
            out[f"{index}.weight"], out[f"{index}.bias"] = net.dgamma[q][:, 0], net.dshift[q][:, 0]
            index += 1
        index += 2 if net.p[q] else 1
    return out


def _data(net: bp.Network, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.sizes[0]))
    D = np.eye(net.sizes[-1])[rng.integers(0, net.sizes[-1], n)]
    return X, D


@pytest.mark.parametrize("hidden", [[6], [7, 5], [6, 6, 6, 6]], ids=["Q2", "Q3", "Q5"])
@pytest.mark.parametrize("activation", sorted(ACT))
def test_batch_norm_steps_equal_torch(hidden: list[int], activation: str) -> None:
    """Five SGD steps: loss, every gradient, parameters and running statistics; then eval."""
    sizes = [4, *hidden, 3]
    net = bp.Network(sizes, activation, loss="cross_entropy", dtype="float64", seed=0,
                     normalization="batch")  # fmt: skip
    rng = np.random.default_rng(1)
    net.params[net.n_weights :] = rng.normal(scale=0.5, size=net.n_params - net.n_weights)
    model, _ = _torch_twin(net)
    model.train()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer = bp.optimizers.SGD(0.1)
    state = optimizer.init(net.params)
    for step in range(5):
        X, D = _data(net, 9, step)
        loss = bp.train_step(net, optimizer, state, X.T.copy(), D.T.copy())
        sgd.zero_grad()
        logits = model(torch.from_numpy(X))
        expected = -(torch.from_numpy(D) * torch.log_softmax(logits, 1)).sum(1).mean()
        expected.backward()
        assert loss == pytest.approx(expected.item(), rel=1e-10)
        sgd.step()
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        index, kind = name.split(".")
        layer = model[int(index)]
        q = 1 + sum(isinstance(m, torch.nn.Linear) for m in model[: int(index)])
        if isinstance(layer, torch.nn.Linear):
            ours = net.W[q] if kind == "weight" else net.b[q][:, 0]
        else:
            q -= 1
            ours = {"weight": net.gamma[q], "bias": net.shift[q], "running_mean":
                    net.running_mean[q], "running_var": net.running_var[q]}[kind][:, 0]  # fmt: skip
        np.testing.assert_allclose(ours, value.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    model.eval()
    X, _ = _data(net, 5, 99)
    np.testing.assert_allclose(
        net.predict(X), torch.softmax(model(torch.from_numpy(X)), 1).detach().numpy(), atol=1e-12
    )


def test_gradients_with_batch_norm_and_dropout_equal_torch_given_its_masks() -> None:
    """Torch's Dropout draws the masks; betaprop reuses them (recovered from torch's outputs)."""
    net = bp.Network([5, 8, 7, 3], "relu", loss="cross_entropy", dtype="float64", seed=3,
                     normalization=["batch", None], dropout=[0.3, 0.5])  # fmt: skip
    model, drops = _torch_twin(net)
    model.train()
    X, D = _data(net, 12, 7)
    masks: list[np.ndarray] = []

    def keep_mask(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        seen = inputs[0].detach().numpy()
        ratio = np.divide(output.detach().numpy(), seen, out=np.zeros_like(seen), where=seen != 0)
        masks.append(ratio.T)  # m / (1 - p), examples as columns

    for drop in drops:
        drop.register_forward_hook(keep_mask)
    torch.manual_seed(0)
    logits = model(torch.from_numpy(X))
    (-(torch.from_numpy(D) * torch.log_softmax(logits, 1)).sum(1).mean()).backward()
    ws = net.workspace(12)
    for q, mask in zip((1, 2), masks, strict=True):
        # where torch's input was 0 the mask is unobservable and irrelevant: keep it (1 / (1 - p))
        ws.mask[q][...] = np.where(mask == 0, 0.0, 1.0 / (1.0 - net.p[q]))
    net.forward_columns(X.T.copy(), training=True, new_masks=False)
    net.loss_value(D.T.copy())
    net.backward(D.T.copy())
    ours = _grads_by_torch_name(net)
    for name, parameter in model.named_parameters():
        np.testing.assert_allclose(ours[name], parameter.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)  # fmt: skip


@pytest.mark.parametrize("memory", ["all", "recompute"])
def test_central_differences_in_training_mode(memory: str) -> None:
    net = bp.Network([3, 5, 5, 5, 5, 2], "tanh", loss="cross_entropy", dtype="float64", seed=4,
                     normalization="batch", dropout=0.25, memory=memory)  # fmt: skip
    rng = np.random.default_rng(5)
    net.params[net.n_weights :] = rng.normal(scale=0.4, size=net.n_params - net.n_weights)
    X, D = _data(net, 7, 6)
    report = bp.gradcheck(net, X, D)
    assert report.passed, str(report)
    assert {r.name for r in report.rows} == {"W", "b", "gamma", "shift"}


def test_recompute_equals_all_with_normalization_and_dropout() -> None:
    kwargs = dict(activation="relu", loss="cross_entropy", seed=8, normalization="batch",
                  dropout=0.2, dtype="float64")  # fmt: skip
    sizes = [6] + [9] * 10 + [4]
    full, lean = bp.Network(sizes, **kwargs), bp.Network(sizes, memory="recompute", **kwargs)
    X, D = _data(full, 16, 9)
    for net in (full, lean):
        bp.fit(net, X, D, optimizer=bp.optimizers.Adam(0.01), epochs=3, batch_size=8, seed=1)
    np.testing.assert_array_equal(full.params, lean.params)
    np.testing.assert_array_equal(full.stats, lean.stats)


def test_batch_of_one_in_training_is_an_error_and_inference_needs_no_batch() -> None:
    net = bp.Network([3, 4, 2], normalization="batch", seed=0)
    with pytest.raises(ValueError, match="more than 1 example per batch in training, got 1"):
        net.loss_and_gradients(np.ones((1, 3)), np.ones((1, 2)))
    assert net.predict(np.ones((1, 3))).shape == (1, 2)


def test_dropout_is_off_at_inference_and_masks_come_from_the_seed() -> None:
    a = bp.Network([4, 50, 2], dropout=0.5, seed=11, dtype="float64")
    b = bp.Network([4, 50, 2], dropout=0.5, seed=11, dtype="float64")
    X = np.random.default_rng(0).normal(size=(30, 4))
    np.testing.assert_array_equal(a.predict(X), a.predict(X))  # no masks at inference
    a.loss_and_gradients(X, np.zeros((30, 2)))
    b.loss_and_gradients(X, np.zeros((30, 2)))
    np.testing.assert_array_equal(a.workspace(30).mask[1], b.workspace(30).mask[1])
    kept = float(np.mean(a.workspace(30).mask[1] > 0))
    assert 0.35 < kept < 0.65


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"normalization": "group"},
            r"normalization must be one of \[None, 'batch', 'layer'\], got 'group'",
        ),
        ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\), got 1.0"),
        ({"dropout": [0.1]}, r"dropout must be one value or a list of Q-1 = 2"),
        ({"init": "xavier"}, r"init must be one of \['glorot', .*'torch'\], got 'xavier'"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bp.Network([3, 4, 4, 2], **kwargs)


@pytest.mark.parametrize("rule", ["glorot", "glorot_normal", "he", "he_normal", "lecun",
                                  "lecun_normal", "torch"])  # fmt: skip
def test_init_rules_have_the_literature_variance(rule: str) -> None:
    """Var W: 2/(fan_in+fan_out) Glorot, 2/fan_in He, 1/fan_in LeCun, 1/(3 fan_in) torch."""
    net = bp.Network([400, 300, 2], init=rule, seed=0, dtype="float64")
    fan_in, fan_out = 400, 300
    expected = {"glorot": 2 / (fan_in + fan_out), "he": 2 / fan_in, "lecun": 1 / fan_in,
                "torch": 1 / (3 * fan_in)}[rule.removesuffix("_normal")]  # fmt: skip
    assert np.var(net.W[1]) == pytest.approx(expected, rel=0.02)
    assert np.any(net.b[1] != 0) == (rule == "torch")
    bound = np.abs(net.W[1]).max()
    assert (bound <= np.sqrt(3 * expected)) == (not rule.endswith("_normal"))


def test_restoring_the_best_epoch_restores_its_running_statistics() -> None:
    """Early stopping's restore_best gives the best epoch's weights AND statistics; the state
    keeps the last ones to go on from."""
    net = bp.Network([4, 8, 3], "tanh", loss="cross_entropy", dtype="float64", seed=0,
                     normalization="batch")  # fmt: skip
    X, D = _data(net, 48, 1)
    Xv, Dv = _data(net, 24, 2)
    seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    class Record(bp.Callback):
        def on_epoch_end(self, net, epoch, history):  # type: ignore[no-untyped-def]
            seen[epoch] = (net.params.copy(), net.stats.copy())

    state = bp.TrainingState()
    stopper = bp.EarlyStopping(patience=3, restore_best=True)
    history = bp.fit(net, X, D, optimizer=bp.optimizers.SGD(2.0), epochs=12, batch_size=8,
                     seed=0, validation_data=(Xv, Dv), early_stopping=stopper,
                     callbacks=[Record()], state=state)  # fmt: skip
    best, last = history.best_epoch, history.epoch[-1]
    assert best is not None and best != last
    np.testing.assert_array_equal(net.params, seen[best][0])
    np.testing.assert_array_equal(net.stats, seen[best][1])
    np.testing.assert_array_equal(state.stats, seen[last][1])


def test_a_last_batch_of_one_joins_the_batch_before() -> None:
    """Batch normalisation needs two examples: 17 rows in batches of 8 train as 8 + 9."""
    net = bp.Network([3, 4, 2], normalization="batch", dtype="float64", seed=0)
    X, D = _data(net, 17, 3)
    seen: list[int] = []

    class Sizes(bp.Callback):
        def on_batch_end(self, net, epoch, batch, loss):  # type: ignore[no-untyped-def]
            seen.append(net.workspace(8).n if batch == 1 else 9)

    history = bp.fit(net, X, D, optimizer="sgd", epochs=2, batch_size=8, seed=0,
                     callbacks=[Sizes()])  # fmt: skip
    assert len(seen) == 4 and np.isfinite(history.loss).all()
    plain = bp.Network([3, 4, 2], dtype="float64", seed=0)
    seen.clear()
    bp.fit(plain, X, D, optimizer="sgd", epochs=1, batch_size=8, seed=0, callbacks=[Sizes()])
    assert len(seen) == 3  # without normalisation the single example is a batch of its own
