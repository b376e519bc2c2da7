"""Step 6: every optimizer and schedule follows torch.optim on the same weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import betaprop as bp
from betaprop import optimizers as opt

from .test_engine_gradients import torch_loss, torch_model

# (betaprop optimizer, torch optimizer class, torch keyword arguments)
CASES = [
    (opt.SGD(0.1), torch.optim.SGD, {"lr": 0.1}),
    (opt.SGD(0.05, momentum=0.9), torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (
        opt.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ),
    (opt.Adam(0.01), torch.optim.Adam, {"lr": 0.01}),
    (
        opt.Adam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.1),
        torch.optim.Adam,
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
    ),
    (opt.AdamW(0.01), torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.01}),
    (opt.AdamW(0.01, weight_decay=0.3), torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.3}),
    (opt.RMSprop(0.01), torch.optim.RMSprop, {"lr": 0.01}),
    (
        opt.RMSprop(0.005, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
        torch.optim.RMSprop,
        {"lr": 0.005, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    ),
    # large learning rates: far from the gentle regime, the rules must still agree
    (opt.SGD(1.5, momentum=0.9), torch.optim.SGD, {"lr": 1.5, "momentum": 0.9}),
    (opt.Adam(0.5), torch.optim.Adam, {"lr": 0.5}),
    (opt.RMSprop(0.3), torch.optim.RMSprop, {"lr": 0.3}),
]


def test_cases_cover_every_registered_optimizer() -> None:
    assert {type(o) for o, _, _ in CASES} == set(opt.OPTIMIZERS.values())


def _problem(seed: int = 0) -> tuple[bp.Network, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    net = bp.Network(
        [4, 6, 5, 3], activation="tanh", loss="cross_entropy", dtype="float64", seed=seed
    )
    X = rng.normal(size=(32, 4))
    D = np.eye(3)[rng.integers(0, 3, 32)]
    return net, X, D


def _torch_optimizer(model: torch.nn.Sequential, cls: type, kwargs: dict) -> torch.optim.Optimizer:
    """Two parameter groups: weight decay on the weights only, as betaprop does."""
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)]
    decay = kwargs.get("weight_decay", 0.0)
    return cls(
        [{"params": weights}, {"params": biases, "weight_decay": 0.0}],
        **{**kwargs, "weight_decay": decay},
    )


def _flat(model: torch.nn.Sequential) -> np.ndarray:
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    return np.concatenate(
        [m.weight.detach().numpy().ravel() for m in linears]
        + [m.bias.detach().numpy().ravel() for m in linears]
    )


def _assign_grads(model: torch.nn.Sequential, net: bp.Network) -> None:
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for q, linear in enumerate(linears, start=1):
        linear.weight.grad = torch.from_numpy(net.dW[q].copy())
        linear.bias.grad = torch.from_numpy(net.db[q][:, 0].copy())


def _run_both(
    ours: opt.Optimizer, cls: type, kwargs: dict, shared_gradients: bool
) -> tuple[bp.Network, dict, torch.nn.Sequential]:
    """60 steps of betaprop and torch.optim from the same weights, 8 examples a step.

    With ``shared_gradients`` torch receives the gradient betaprop computed at its own
    parameters; otherwise each side computes its own (backprop vs autograd).
    """
    net, X, D = _problem()
    model = torch_model(net)
    torch_opt = _torch_optimizer(model, cls, kwargs)
    state = ours.init(net.params)
    for step in range(60):
        batch = slice((step * 8) % 32, (step * 8) % 32 + 8)
        net.loss_and_gradients(X[batch], D[batch])
        ours.update(net.params, net.grads, state, net.n_weights)
        torch_opt.zero_grad()
        if shared_gradients:
            _assign_grads(model, net)
        else:
            torch_loss(net, model, X[batch], D[batch])[0].backward()
        torch_opt.step()
    return net, state, model


@pytest.mark.parametrize(("ours", "cls", "kwargs"), CASES, ids=lambda c: repr(c)[:60])
def test_update_rule_equals_torch_optim(ours: opt.Optimizer, cls: type, kwargs: dict) -> None:
    """60 steps with the same gradient sequence fed to both: the update rules agree.

    Both optimizers receive the gradient that betaprop computed at its own parameters, so
    the comparison isolates the update rule (with a large learning rate the loss surface
    is chaotic, and it would otherwise amplify rounding differences of the gradients).
    """
    net, state, model = _run_both(ours, cls, kwargs, shared_gradients=True)
    assert state["t"] == 60
    expected = _flat(model)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(net.params, expected, rtol=1e-9, atol=1e-12)
    assert np.abs(net.params - _problem()[0].params).max() > 0.1  # it did move


ADAMS = [case for case in CASES if isinstance(case[0], opt.Adam)]


@pytest.mark.parametrize(("ours", "cls", "kwargs"), ADAMS, ids=lambda c: repr(c)[:60])
def test_adam_in_blocks_equals_torch_and_itself_in_one_block(
    ours: opt.Optimizer, cls: type, kwargs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adam updates its arrays in blocks: blocks of 7 elements (a block boundary inside the
    weights, between weights and biases, and a short last block) give torch's numbers, and
    bit for bit those of one block."""
    monkeypatch.setattr(opt, "BLOCK", 7)
    net, state, model = _run_both(ours, cls, kwargs, shared_gradients=True)
    assert net.params.size % 7 and net.n_weights % 7  # boundaries inside both parts
    np.testing.assert_allclose(net.params, _flat(model), rtol=1e-9, atol=1e-12)
    monkeypatch.setattr(opt, "BLOCK", net.params.size)
    whole, whole_state, _ = _run_both(ours, cls, kwargs, shared_gradients=True)
    np.testing.assert_array_equal(net.params, whole.params)
    np.testing.assert_array_equal(state["m"], whole_state["m"])
    np.testing.assert_array_equal(state["v"], whole_state["v"])


@pytest.mark.parametrize(("ours", "cls", "kwargs"), CASES[:9], ids=lambda c: repr(c)[:60])
def test_training_trajectory_equals_torch(ours: opt.Optimizer, cls: type, kwargs: dict) -> None:
    """The whole system, each side with its own gradients: backprop + update, 60 steps."""
    net, _, model = _run_both(ours, cls, kwargs, shared_gradients=False)
    np.testing.assert_allclose(net.params, _flat(model), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------ schedules
SCHEDULE_CASES = [
    (bp.schedules.Constant(), lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0)),
    (
        bp.schedules.InverseScaling(0.5),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: (e + 1) ** -0.5),
    ),
    (bp.schedules.StepDecay(7, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.5)),
    (
        bp.schedules.Cosine(20, 0.001),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 20, 0.001),
    ),
]


def test_schedule_cases_cover_the_registry() -> None:
    covered = {type(s) for s, _ in SCHEDULE_CASES} | {bp.schedules.ReduceOnPlateau}
    assert covered == set(bp.schedules.SCHEDULES.values())


@pytest.mark.parametrize(("ours", "make"), SCHEDULE_CASES, ids=lambda c: type(c).__name__)
def test_schedule_equals_torch_lr_scheduler(ours: bp.schedules.Schedule, make) -> None:
    torch_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make(torch_opt)
    for epoch in range(1, 60):
        torch_opt.step()
        scheduler.step()
        assert ours.step(0.1, epoch) == pytest.approx(torch_opt.param_groups[0]["lr"], rel=1e-9)


@pytest.mark.parametrize("mode", ["rel", "abs"])
def test_reduce_on_plateau_equals_torch(mode: str) -> None:
    rng = np.random.default_rng(5)
    # a metric that improves, stalls, improves a little, stalls again
    metrics = list(np.linspace(1.0, 0.5, 10)) + [0.5] * 8 + list(0.5 - rng.random(20) * 1e-3)
    ours = bp.schedules.ReduceOnPlateau(
        factor=0.5, patience=2, threshold=1e-3, threshold_mode=mode, cooldown=1, min_lr=0.004
    )
    torch_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        torch_opt,
        factor=0.5,
        patience=2,
        threshold=1e-3,
        threshold_mode=mode,
        cooldown=1,
        min_lr=0.004,
    )
    lrs = []
    for epoch, metric in enumerate(metrics, start=1):
        scheduler.step(metric)
        lrs.append(ours.step(0.1, epoch, float(metric)))
        assert lrs[-1] == pytest.approx(torch_opt.param_groups[0]["lr"], rel=1e-12)
    assert min(lrs) < 0.1  # it did reduce


def test_fit_with_schedule_equals_torch_loop() -> None:
    """fit() steps the schedule once per epoch, as torch's loop does with scheduler.step()."""
    net, X, D = _problem(1)
    model = torch_model(net)
    torch_opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, 2, 0.5)
    for _ in range(5):
        for start in range(0, 32, 10):
            torch_opt.zero_grad()
            torch_loss(net, model, X[start : start + 10], D[start : start + 10])[0].backward()
            torch_opt.step()
        scheduler.step()
    history = bp.fit(
        net,
        X,
        D,
        optimizer=opt.SGD(0.2, momentum=0.5),
        epochs=5,
        batch_size=10,
        shuffle=False,
        schedule=bp.schedules.StepDecay(2, 0.5),
    )
    np.testing.assert_allclose(net.params, _flat(model), rtol=1e-9, atol=1e-12)
    assert history.learning_rate == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05])


# ------------------------------------------------------------------------ contracts
@pytest.mark.parametrize("cls", sorted(opt.OPTIMIZERS.values(), key=lambda c: c.__name__))
def test_optimizer_contract(cls: type) -> None:
    """Every optimizer: frozen, a state per init, zero gradient moves nothing but decay."""
    optimizer = cls()
    with pytest.raises(AttributeError):
        optimizer.learning_rate = 1.0
    params = np.linspace(-1, 1, 10)
    state = optimizer.init(params)
    before = params.copy()
    optimizer.update(params, np.zeros(10), state, n_weights=0)  # no weights: no decay
    np.testing.assert_array_equal(params, before)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0, got"):
            cls(learning_rate=bad)


def test_get_optimizer_lists_the_names() -> None:
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'adamw', "):
        opt.get_optimizer("adagrad")
    assert opt.get_optimizer("SGD", learning_rate=0.3) == opt.SGD(0.3)
