"""Faults in one process: Ctrl-C, checkpoints and exact resume, divergence.

The oracle for every resume test is the same run left alone: interrupted-and-resumed must
end with the same weights and history bit for bit (``seconds`` is wall-clock time and is
left out of the comparison).
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import betaprop as bp
from betaprop import optimizers as opt
from betaprop.files.checkpoint import (
    FILENAME,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    resume,
    save_checkpoint,
)


def regression_targets(X: np.ndarray) -> np.ndarray:
    return np.column_stack([np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]])


def class_targets(X: np.ndarray) -> np.ndarray:
    return np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]


RNG = np.random.default_rng(0)
X = RNG.normal(size=(103, 5))  # 11 mini-batches of 10 (the last one of 3)
D_REG, D_CLS = regression_targets(X), class_targets(X)
VALIDATION = RNG.normal(size=(30, 5))

OPTIMIZERS: dict[str, Callable[[], opt.Optimizer]] = {
    "sgd-nesterov": lambda: opt.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: opt.Adam(0.01, weight_decay=1e-4),
    "adamw": lambda: opt.AdamW(0.01),
    "rmsprop-centered": lambda: opt.RMSprop(0.005, momentum=0.5, centered=True),
}
SCHEDULES: dict[str, Callable[[], bp.schedules.Schedule]] = {
    "plateau": lambda: bp.schedules.ReduceOnPlateau(factor=0.5, patience=1),
    "cosine": lambda: bp.schedules.Cosine(T_max=8),
    "step": lambda: bp.schedules.StepDecay(step_size=3, gamma=0.5),
}


def history_record(history: bp.History) -> dict:
    """Everything in a history but the wall-clock seconds."""
    return {
        "epoch": history.epoch,
        "loss": history.loss,
        "val_loss": history.val_loss,
        "val_score": history.val_score,
        "learning_rate": history.learning_rate,
        "extra": history.extra,
        "best_epoch": history.best_epoch,
        "stopped_early": history.stopped_early,
    }


def make_network(task: str) -> bp.Network:
    if task == "classification":
        return bp.Network([5, 8, 6, 3], activation="tanh", loss="cross_entropy", seed=1)
    return bp.Network([5, 8, 2], activation="relu", seed=1)


def settings(task: str, optimizer: str, schedule: str, early: bool) -> dict:
    targets = class_targets if task == "classification" else regression_targets
    validation = (VALIDATION, targets(VALIDATION))
    return {
        "optimizer": OPTIMIZERS[optimizer](),
        "schedule": SCHEDULES[schedule](),
        "batch_size": 10,
        "validation_data": validation,
        "early_stopping": bp.EarlyStopping(patience=2, monitor="val_loss") if early else None,
    }


class SigintAt(bp.Callback):
    """Sends this process a real SIGINT after the given (epoch, batch)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_end(self, net, epoch, batch, loss):
        if (epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def interrupted_then_resumed(
    tmp_path: Path, task: str, kwargs: dict, rebuild: Callable[[], dict], at: tuple[int, int]
) -> tuple[bp.Network, bp.History, bp.History]:
    D = D_CLS if task == "classification" else D_REG
    net = make_network(task)
    with pytest.warns(bp.InterruptedWarning, match=r"^Training interrupted by user\.$"):
        first = bp.fit(
            net, X, D, epochs=8, seed=5, callbacks=[SigintAt(*at), Checkpoint(tmp_path)], **kwargs
        )
    assert first.interrupted
    again = rebuild()
    resumed_net, history = resume(tmp_path, X, D, validation_data=again["validation_data"])
    return resumed_net, history, first


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize(
    "at", [(1, 3), (3, 11), (4, 1)], ids=["mid-epoch-1", "end-of-epoch-3", "start-of-epoch-4"]
)
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
    tmp_path: Path, optimizer: str, at: tuple[int, int]
) -> None:
    task, schedule = "regression", "plateau"
    full_net = make_network(task)
    full = bp.fit(
        full_net, X, D_REG, epochs=8, seed=5, **settings(task, optimizer, schedule, False)
    )
    assert not full.interrupted and len(full.epoch) == 8
    kwargs = settings(task, optimizer, schedule, False)
    net, history, first = interrupted_then_resumed(
        tmp_path, task, kwargs, lambda: settings(task, optimizer, schedule, False), at
    )
    assert first.epoch == list(range(1, at[0] + (at[1] == 11)))  # 103 rows: 11 batches of 10
    np.testing.assert_array_equal(net.params, full_net.params)
    assert history_record(history) == history_record(full)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_resume_with_early_stopping_and_classification(tmp_path: Path, schedule: str) -> None:
    task = "classification"
    full_net = make_network(task)
    full = bp.fit(full_net, X, D_CLS, epochs=8, seed=5, **settings(task, "adam", schedule, True))
    kwargs = settings(task, "adam", schedule, True)
    net, history, _ = interrupted_then_resumed(
        tmp_path, task, kwargs, lambda: settings(task, "adam", schedule, True), (2, 5)
    )
    np.testing.assert_array_equal(net.params, full_net.params)
    assert history_record(history) == history_record(full)


def test_a_finished_run_resumes_to_itself(tmp_path: Path) -> None:
    """Resuming a run that ended (here by early stopping) trains no more and keeps the best."""
    kwargs = settings("regression", "adam", "plateau", True)
    kwargs["early_stopping"] = bp.EarlyStopping(patience=1, min_delta=10.0)  # stops at epoch 2
    net = make_network("regression")
    history = bp.fit(net, X, D_REG, epochs=8, seed=5, callbacks=[Checkpoint(tmp_path)], **kwargs)
    assert history.stopped_early and history.epoch == [1, 2] and history.best_epoch == 1
    saved = load_checkpoint(tmp_path)
    assert saved.finished
    assert not np.array_equal(saved.network.params, net.params)  # the weights reached, not best
    again, resumed = resume(tmp_path, X, D_REG, validation_data=kwargs["validation_data"])
    np.testing.assert_array_equal(again.params, net.params)
    assert history_record(resumed) == history_record(history)


def test_training_state_continues_a_run_in_memory() -> None:
    """fit 3 epochs + fit 5 epochs with one TrainingState == fit 8 epochs."""
    kwargs = settings("regression", "adam", "step", False)
    full_net = make_network("regression")
    full = bp.fit(full_net, X, D_REG, epochs=8, seed=5, **kwargs)
    kwargs = settings("regression", "adam", "step", False)
    net, state = make_network("regression"), bp.TrainingState()
    history = bp.fit(net, X, D_REG, epochs=3, seed=5, state=state, **kwargs)
    assert state.epoch == 3 and state.final_epoch == 3
    with pytest.raises(ValueError, match=r"seed must be None when state\.rng is set"):
        bp.fit(net, X, D_REG, epochs=5, seed=5, state=state, history=history, **kwargs)
    bp.fit(net, X, D_REG, epochs=5, state=state, history=history, **kwargs)
    np.testing.assert_array_equal(net.params, full_net.params)
    assert history_record(history) == history_record(full)


def test_a_state_for_other_data_or_history_is_refused() -> None:
    net, state = make_network("regression"), bp.TrainingState()
    history = bp.fit(net, X, D_REG, epochs=2, seed=0, state=state)
    with pytest.raises(ValueError, match=r"state\.order must be a permutation of the n = 50"):
        bp.fit(net, X[:50], D_REG[:50], state=state, history=history)
    with pytest.raises(ValueError, match=r"state\.epoch must be the last epoch of history \(1\)"):
        bp.fit(net, X, D_REG, state=state, history=bp.History(epoch=[1], loss=[1.0]))
    with pytest.raises(ValueError, match="optimizer_state must be None when state"):
        bp.fit(net, X, D_REG, state=state, history=history, optimizer_state={"lr": 0.1, "t": 0})


def test_ctrl_c_keeps_the_best_epoch_when_validating_and_restores_the_handler() -> None:
    previous = signal.getsignal(signal.SIGINT)
    snapshots: dict[int, np.ndarray] = {}

    class Snapshot(bp.Callback):
        def on_epoch_end(self, net, epoch, history):
            snapshots[epoch] = net.params.copy()

    net = make_network("regression")
    kwargs = settings("regression", "sgd-nesterov", "plateau", False)
    kwargs["optimizer"] = opt.SGD(0.2, momentum=0.9)  # noisy: the best epoch is not the last
    kwargs["schedule"] = None
    with pytest.warns(bp.InterruptedWarning, match="Training interrupted by user"):
        history = bp.fit(
            net, X, D_REG, epochs=50, seed=0, callbacks=[Snapshot(), SigintAt(6, 4)], **kwargs
        )
    assert signal.getsignal(signal.SIGINT) is previous
    assert history.interrupted and history.epoch == [1, 2, 3, 4, 5]
    best = int(np.argmin(history.val_loss)) + 1
    assert history.best_epoch == best and best != 5
    np.testing.assert_array_equal(net.params, snapshots[best])


def test_ctrl_c_without_validation_keeps_the_weights_after_the_last_batch() -> None:
    seen: list[np.ndarray] = []

    class Record(bp.Callback):
        def on_batch_end(self, net, epoch, batch, loss):
            seen.append(net.params.copy())

    net = make_network("regression")
    with pytest.warns(bp.InterruptedWarning):
        history = bp.fit(
            net, X, D_REG, epochs=50, seed=0, callbacks=[Record(), SigintAt(2, 7)], batch_size=10
        )
    assert history.epoch == [1] and len(seen) == 11 + 7  # the batch in progress was finished
    np.testing.assert_array_equal(net.params, seen[-1])
    assert np.isfinite(net.params).all()


def test_a_second_ctrl_c_stops_at_once_with_the_last_good_epoch() -> None:
    at_epoch_end: dict[int, np.ndarray] = {}

    class TwoSigints(bp.Callback):
        def on_epoch_end(self, net, epoch, history):
            at_epoch_end[epoch] = net.params.copy()

        def on_batch_end(self, net, epoch, batch, loss):
            if (epoch, batch) == (3, 2):
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    net = make_network("regression")
    with pytest.raises(KeyboardInterrupt):
        bp.fit(net, X, D_REG, epochs=50, seed=0, callbacks=[TwoSigints()], batch_size=10)
    assert signal.getsignal(signal.SIGINT) is previous
    np.testing.assert_array_equal(net.params, at_epoch_end[2])


def test_outside_the_main_thread_a_keyboard_interrupt_is_caught() -> None:
    """No handler can be installed there: KeyboardInterrupt (here raised by a callback) is
    caught, the last good epoch is kept, and the state is marked inexact (no checkpoint)."""
    at_epoch_end: dict[int, np.ndarray] = {}
    outcome: dict = {}

    class Abort(bp.Callback):
        def on_epoch_end(self, net, epoch, history):
            at_epoch_end[epoch] = net.params.copy()

        def on_batch_end(self, net, epoch, batch, loss):
            if (epoch, batch) == (3, 2):
                raise KeyboardInterrupt

    def work() -> None:
        net, state = make_network("regression"), bp.TrainingState()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome["history"] = bp.fit(
                net, X, D_REG, epochs=50, seed=0, callbacks=[Abort()], state=state
            )
        outcome.update(net=net, state=state, warnings=caught)

    previous = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGINT) is previous
    history = outcome["history"]
    assert history.interrupted and history.epoch == [1, 2] and len(history.loss) == 2
    assert [str(w.message) for w in outcome["warnings"]] == ["Training interrupted by user."]
    assert outcome["warnings"][0].category is bp.InterruptedWarning
    np.testing.assert_array_equal(outcome["net"].params, at_epoch_end[2])
    assert not outcome["state"].resumable


def test_sigint_ignored_by_the_caller_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        net = make_network("regression")
        history = bp.fit(net, X, D_REG, epochs=2, seed=0, callbacks=[SigintAt(1, 2)])
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert not history.interrupted and history.epoch == [1, 2]
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------ divergence
@pytest.mark.parametrize(
    "make",
    [
        lambda: opt.SGD(1e4, momentum=0.9),
        lambda: opt.SGD(1e6),
        lambda: opt.Adam(1e6),
        lambda: opt.AdamW(1e6),
        lambda: opt.RMSprop(1e6),
        lambda: opt.RMSprop(1e6, momentum=0.9, centered=True),
    ],
    ids=["sgd-momentum", "sgd", "adam", "adamw", "rmsprop", "rmsprop-centered"],
)
def test_divergence_leaves_a_finite_checkpoint_and_model(tmp_path: Path, make) -> None:
    net = make_network("regression")
    bp.fit(net, X, D_REG, optimizer=opt.SGD(1e-3), epochs=1, seed=0)
    before = net.params.copy()
    with pytest.raises(bp.DivergenceError, match=r"epoch \d+, batch \d+: .*smaller learning rate"):
        bp.fit(net, X, D_REG, optimizer=make(), epochs=20, seed=0, callbacks=[Checkpoint(tmp_path)])
    assert np.isfinite(net.params).all()
    if (tmp_path / FILENAME).exists():  # some epochs ended before the divergence
        saved = load_checkpoint(tmp_path)
        assert np.isfinite(saved.network.params).all()
        np.testing.assert_array_equal(saved.network.params, net.params)
    else:
        np.testing.assert_array_equal(net.params, before)


def test_weights_overflowing_in_the_last_update_of_an_epoch_are_a_divergence() -> None:
    """One batch per epoch: the loss is finite, the update makes the float32 weights inf."""
    net = make_network("regression")
    before = net.params.copy()
    with (
        np.errstate(over="ignore"),
        pytest.raises(bp.DivergenceError, match=r"epoch 1, batch 1: the weights became non-fin"),
    ):
        bp.fit(net, X, D_REG, optimizer=opt.SGD(1e39), epochs=3, batch_size=200, seed=0)
    np.testing.assert_array_equal(net.params, before)


def test_scikit_learn_adam_at_1e6_finishes_silently_betaprop_stops() -> None:
    """The issue's example: scikit-learn's MLPRegressor (adam, learning rate 1e6) returns
    a model with an astronomical loss and no error; betaprop raises DivergenceError."""
    from sklearn.datasets import load_diabetes
    from sklearn.neural_network import MLPRegressor

    Xd, yd = load_diabetes(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ConvergenceWarning: not about divergence
        model = MLPRegressor(learning_rate_init=1e6, max_iter=20, random_state=0).fit(Xd, yd)
    assert model.loss_ > 1e10 and max(model.loss_curve_) > 1e20  # silently diverged
    net = bp.Network([10, 100, 1], dtype="float64", seed=0)
    with pytest.raises(bp.DivergenceError, match=r"epoch 1, batch \d+"):
        bp.fit(net, Xd, yd[:, None], optimizer=opt.Adam(1e6), epochs=20, batch_size=200, seed=0)
    assert np.isfinite(net.params).all()


# ------------------------------------------------------------------------------ API edges
def test_checkpoint_callback_and_save_checkpoint_refuse_bad_use(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"every must be an integer >= 1 or None, got 0"):
        Checkpoint(tmp_path, every=0)
    net = make_network("regression")
    with pytest.raises(ValueError, match="state must be the TrainingState of a run of fit"):
        save_checkpoint(tmp_path / "c.safetensors", net, bp.TrainingState(), bp.History())
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")


def test_checkpoint_every_n_epochs(tmp_path: Path) -> None:
    saved_epochs: list[int] = []
    callback = Checkpoint(tmp_path, every=3)

    class Watch(bp.Callback):
        def on_epoch_end(self, net, epoch, history):
            if (tmp_path / FILENAME).exists():
                saved_epochs.append(load_checkpoint(tmp_path).state.epoch)

    net = make_network("regression")
    bp.fit(net, X, D_REG, epochs=7, seed=0, callbacks=[callback, Watch()])
    assert saved_epochs == [3, 3, 3, 6, 6]
    assert callback.saved == 3  # epochs 3, 6 and the end of training
    assert load_checkpoint(tmp_path).state.epoch == 7


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example of the "Checkpoints and resume" section (moved from the README to
    docs/robustness.md), run as a reader would."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    section = page.split("## Checkpoints and resume", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/robustness.md", "exec"), namespace)
    assert namespace["history"].epoch == list(range(1, 21))
    assert load_checkpoint(tmp_path / "run").state.epoch == 20


def test_a_checkpoint_written_only_after_ctrl_c(tmp_path: Path) -> None:
    """Checkpoint(every=None, final=False), as the command uses without --checkpoint-every."""
    net = make_network("regression")
    only_on_ctrl_c = Checkpoint(tmp_path, every=None, final=False)
    bp.fit(net, X, D_REG, epochs=3, seed=0, batch_size=10, callbacks=[only_on_ctrl_c])
    assert not (tmp_path / FILENAME).exists() and only_on_ctrl_c.saved == 0
    with pytest.warns(bp.InterruptedWarning):
        bp.fit(
            net,
            X,
            D_REG,
            epochs=3,
            seed=0,
            batch_size=10,
            callbacks=[SigintAt(2, 3), only_on_ctrl_c],
        )
    saved = load_checkpoint(tmp_path)
    assert only_on_ctrl_c.saved == 1
    assert (saved.state.epoch, saved.state.batch, saved.state.position) == (1, 3, 30)
