"""Diagnostics: beta and gradient sizes against the literal reference, dead and saturated
units, vanishing/exploding warnings, and no side effect on training."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import betaprop as bp
from betaprop import reference
from betaprop.explain.diagnostics import Diagnostics, GradientWarning


def _data(n: int = 12, N0: int = 3, NQ: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, N0)), rng.normal(size=(n, NQ))


def test_beta_rms_is_the_per_example_beta_of_the_literal_reference():
    net = bp.Network([3, 5, 4, 2], activation="tanh", dtype="float64", seed=1)
    X, D = _data()
    figures = Diagnostics(X, D).measure(net)
    for q in range(1, net.Q + 1):
        per_example = []
        for x, d in zip(X, D, strict=True):  # the seed's beta^q, one example at a time
            s, y = reference.forward_example(net, list(x))
            per_example.extend(reference.backward_example(net, s, y, list(d))[q])
        expected = np.sqrt(np.mean(np.square(per_example)))
        np.testing.assert_allclose(figures[f"beta_rms_{q}"], expected, rtol=1e-12)


def test_grad_rms_is_the_rms_of_the_reference_gradient():
    net = bp.Network([3, 5, 2], activation="sigmoid", dtype="float64", seed=2)
    X, D = _data()
    figures = Diagnostics(X, D).measure(net)
    dW, _, _ = reference.gradients(net, X, D)
    for q in range(1, net.Q + 1):
        expected = np.sqrt(np.mean(np.square(dW[q])))
        np.testing.assert_allclose(figures[f"grad_rms_{q}"], expected, rtol=1e-12)


def test_beta_rms_does_not_depend_on_the_probe_size():
    net = bp.Network([3, 5, 2], activation="tanh", dtype="float64", seed=2)
    X, D = _data(n=10)
    one = Diagnostics(X, D).measure(net)
    twice = Diagnostics(np.vstack([X, X]), np.vstack([D, D])).measure(net)
    for q in (1, 2):
        np.testing.assert_allclose(one[f"beta_rms_{q}"], twice[f"beta_rms_{q}"], rtol=1e-12)


def test_dead_relu_units_are_counted():
    net = bp.Network([3, 8, 2], activation="relu", dtype="float64", seed=0)
    net.b[1][:3] = -1e3  # these three units never fire on standard-normal inputs
    net.b[1][3:] = 1e3  # and these always do
    figures = Diagnostics(*_data()).measure(net)
    assert figures["dead_fraction_1"] == 3 / 8


def test_saturated_sigmoid_and_tanh_units_are_counted():
    net = bp.Network([3, 4, 4, 2], activation=["sigmoid", "tanh"], dtype="float64", seed=0)
    X, D = _data()
    net.W[1][...] = 0.0
    net.b[1][...] = 0.0  # y^1 = 0.5: nowhere near saturation
    net.b[2][:, 0] = [100.0, -100.0, 0.0, 0.0]  # two tanh units pinned at +-1
    net.W[2][...] = 0.0
    figures = Diagnostics(X, D).measure(net)
    assert figures["saturated_fraction_1"] == 0.0
    assert figures["saturated_fraction_2"] == 0.5


def test_vanishing_local_errors_warn_and_name_the_layer():
    sizes = [4] + [6] * 8 + [2]
    net = bp.Network(sizes, activation="sigmoid", dtype="float64", seed=0)
    X, D = _data(N0=4)
    diagnostics = Diagnostics(X, D)
    history = bp.History()
    diagnostics.on_train_begin(net, history)
    with pytest.warns(GradientWarning, match=r"local errors vanish in layer 1 \(sigmoid\)") as w:
        diagnostics.on_epoch_end(net, 1, history)
    assert "ReLU" in str(w[0].message) and "initialisation" in str(w[0].message)
    ratio = history.extra["beta_rms_1"][0] / history.extra[f"beta_rms_{net.Q}"][0]
    assert ratio < 1e-4  # the figure behind the warning, recomputed
    assert diagnostics.warnings[0][:2] == (1, 1)
    # once per layer and kind: the next epoch does not repeat it
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientWarning)
        repeated = [(1, q) for (_, q, _) in diagnostics.warnings]
        diagnostics.on_epoch_end(net, 2, history)
    assert [(1, q) for (_, q, _) in diagnostics.warnings] == repeated


def test_healthy_network_gives_no_warning_and_exploding_one_does():
    net = bp.Network([3, 5, 5, 2], activation="relu", dtype="float64", seed=0)
    X, D = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientWarning)
        bp.fit(net, X, D, epochs=2, batch_size=4, seed=0, callbacks=[Diagnostics(X, D)])
    wide = bp.Network([3, 50, 50, 50, 1], activation="relu", dtype="float64", seed=0)
    for q in (2, 3, 4):
        wide.W[q] *= 300.0
    diagnostics = Diagnostics(*_data(NQ=1))
    history = bp.History()
    diagnostics.on_train_begin(wide, history)
    with pytest.warns(GradientWarning, match="local errors explode in layer 1"):
        diagnostics.on_epoch_end(wide, 1, history)


def test_diagnostics_record_per_epoch_and_do_not_change_training():
    X, D = _data(n=40)
    plain = bp.Network([3, 6, 2], activation="relu", seed=4)
    watched = plain.copy()
    history_plain = bp.fit(plain, X, D, epochs=5, batch_size=8, seed=1)
    history = bp.fit(watched, X, D, epochs=5, batch_size=8, seed=1, callbacks=[Diagnostics(X, D)])
    assert watched.params.tobytes() == plain.params.tobytes()
    assert history.loss == history_plain.loss
    for key in ("beta_rms_1", "beta_rms_2", "grad_rms_1", "grad_rms_2", "dead_fraction_1"):
        assert len(history.extra[key]) == 5
        assert key in history.columns()  # so history.csv gets a column per series
    assert "warnings" not in history.columns()


def test_bad_arguments():
    X, D = _data()
    with pytest.raises(ValueError, match="same number of rows"):
        Diagnostics(X, D[:3])
    with pytest.raises(ValueError, match="max_examples must be an integer >= 1"):
        Diagnostics(X, D, max_examples=0)
    with pytest.raises(ValueError, match="vanish_ratio"):
        Diagnostics(X, D, vanish_ratio=2.0)
