"""The vanishing-gradient study (``betaprop study depth``): the seed's remark on step 4,
asserted from the measured numbers, and the command's files and errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from betaprop.cli import main
from betaprop.explain.study import (
    beta_table,
    check_configuration,
    depth_study,
    figure,
    split_rows,
    study_data,
    table,
)

PNG_HEADER = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, str]:
    X, D, loss = study_data("digits")
    return X[:400], D[:400], loss  # a slice (300 training rows): the test takes seconds


@pytest.fixture(scope="module")
def deep(digits: tuple[np.ndarray, np.ndarray, str]):  # type: ignore[no-untyped-def]
    X, D, loss = digits
    return depth_study(
        X, D, depths=[20], configurations=["sigmoid", "relu", "relu+bn"], epochs=1, width=16,
        loss=loss, data="digits",
    )  # fmt: skip


def test_sigmoid_beta_fades_by_orders_of_magnitude_at_q_20(deep) -> None:  # type: ignore[no-untyped-def]
    """The seed: in deep layers beta fades. sigmoid' <= 1/4 multiplies through 18 layers."""
    run = deep.run("sigmoid", 20)
    assert len(run.beta_start) == 20 and all(np.isfinite(run.beta_start))
    assert run.beta_start[0] > 0
    assert run.beta_start[0] / run.beta_start[18] <= 1e-2  # >= 100x below the last hidden
    assert run.ratio("start") <= 1e-2
    # it fades layer after layer: every step down from q = 19 to q = 1 shrinks beta
    assert all(np.diff(run.beta_start[:19]) > 0)


def test_relu_and_batch_norm_keep_beta_at_q_20(deep) -> None:  # type: ignore[no-untyped-def]
    """The seed's remedy: with ReLU, and with ReLU + batch norm, beta^1 is not orders of
    magnitude below beta^{Q-1}. (Batch norm even lets it grow towards layer 1: measured
    above 1, see docs/study.md; the remark is about fading, which it does not.)"""
    sigmoid = deep.run("sigmoid", 20).ratio("start")
    relu = deep.run("relu", 20).ratio("start")
    batch_norm = deep.run("relu+bn", 20).ratio("start")
    assert 0.1 <= relu <= 10.0
    assert batch_norm >= 0.1
    assert batch_norm / sigmoid >= 1e6 and relu / sigmoid >= 1e6


def test_tables_hold_every_measured_number(deep) -> None:  # type: ignore[no-untyped-def]
    rows = table(deep)
    assert [(r["configuration"], r["Q"]) for r in rows] == [
        ("sigmoid", 20), ("relu", 20), ("relu+bn", 20)
    ]  # fmt: skip
    for row, run in zip(rows, deep.runs, strict=True):
        assert row["ratio_start"] == run.beta_start[0] / run.beta_start[18]
        assert row["beta_Q_start"] == run.beta_start[-1]
        assert len(run.loss) == 1 and np.isfinite(row["loss_last_epoch"])
    assert len(beta_table(deep)) == 3 * 2 * 20


def test_configuration_names() -> None:
    assert check_configuration("relu+bn") == ("relu", "batch")
    assert check_configuration("tanh") == ("tanh", None)
    with pytest.raises(ValueError, match="configuration must be a hidden activation"):
        check_configuration("softmax+bn")
    with pytest.raises(ValueError, match="depths must be integers >= 2"):
        depth_study(np.zeros((4, 2)), np.eye(2)[[0, 1, 0, 1]], depths=[1])


def _texts(fig) -> str:  # type: ignore[no-untyped-def]
    """Every text of the study figure: title, caption, note, axis labels."""
    texts = [fig._suptitle.get_text()]
    texts += [t.get_text() for sub in fig.subfigs for t in sub.texts]
    texts += [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
    texts += [ax.get_title() for ax in fig.axes]
    return " ".join(texts)


def test_figure_labels_in_russian(deep) -> None:  # type: ignore[no-untyped-def]
    fig = figure(deep, "ru")
    joined = _texts(fig)
    for term in ("локальной ошибки", "слой $q$", "затухание градиента", "пропускающей связью",
                 "$Q$ = 20 слоёв", "за 1 эпоху"):  # fmt: skip
        assert term in joined
    for familiar in ("ты ", "твой", "твоя", "посмотри", "сравни "):  # one register: вы
        assert familiar not in joined.lower()
    with pytest.raises(ValueError, match="lang must be one of"):
        figure(deep, "de")


def test_command_writes_the_png_and_the_csv(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "study"
    code = main(["study", "depth", "--depths", "3,6", "--activations", "sigmoid,relu+bn",
                 "--epochs", "1", "--width", "8", "--out", str(out), "--lang", "ru"])  # fmt: skip
    assert code == 0
    picture = (out / "study-depth.png").read_bytes()
    assert picture.startswith(PNG_HEADER) and len(picture) > 10_000
    with open(out / "study-depth.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["configuration"], r["Q"]) for r in rows] == [
        ("sigmoid", "3"), ("relu+bn", "3"), ("sigmoid", "6"), ("relu+bn", "6")
    ]  # fmt: skip
    assert float(rows[2]["ratio_start"]) < float(rows[3]["ratio_start"])
    with open(out / "beta.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 2 * 2 * (3 + 6)
    assert all(0.0 <= float(row["test_score"]) <= 1.0 for row in rows)
    captured = capsys.readouterr()
    assert "sigmoid" in captured.out and "wrote" in captured.out
    assert "held-out rows" in captured.out


@pytest.mark.parametrize(
    "options, message",
    [
        (["--depths", "1,5"], "--depths must be integers >= 2"),
        (["--depths", "five"], "--depths must be integers >= 2"),
        (["--activations", "sigmoid,foo"], "--activations must be a hidden activation"),
        (["--epochs", "0"], "--epochs must be an integer >= 1"),
        (["--width", "-3"], "--width must be an integer >= 1"),
        (["--lang", "de"], "invalid choice"),
        (["--test-fraction", "0"], "--test-fraction must be a number in (0, 1)"),
        (["--data", "no_such_set"], "data must be a CSV file or one of"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path,
    capsys,
    options: list[str],
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "study"
    assert main(["study", "depth", "--out", str(out), "--quiet", *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_out_must_be_a_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "taken"
    file.write_text("x")
    assert main(["study", "depth", "--out", str(file), "--quiet"]) == 2
    assert "--out must be a folder" in capsys.readouterr().err


def test_study_needs_a_kind(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["study"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_residual_configuration_names() -> None:
    from betaprop.cli.study import CONFIGURATIONS
    from betaprop.explain.study import DEFAULT_CONFIGURATIONS, configuration_settings

    assert configuration_settings("relu+res+ln") == {
        "activation": "relu", "normalization": "layer", "residual": True,
    }  # fmt: skip
    assert configuration_settings("tanh+bn") == {
        "activation": "tanh", "normalization": "batch", "residual": False,
    }  # fmt: skip
    for bad in ("relu+bn+ln", "relu+res+res", "relu+skip"):
        with pytest.raises(ValueError, match="configuration must be a hidden activation"):
            configuration_settings(bad)
    assert CONFIGURATIONS == DEFAULT_CONFIGURATIONS  # the command's default is the library's


def test_the_skip_with_layer_norm_trains_where_plain_relu_does_not_at_q_50(digits) -> None:  # type: ignore[no-untyped-def]
    """Past the seed's remedy: at Q = 50 (width 16, 300 training rows, 8 epochs) plain ReLU's
    loss stays near chance (ln 10 = 2.30) while the residual network with layer norm, which
    starts far above it (the identity path adds up 49 layers' outputs), falls by more than
    10x and classifies more held-out rows right (measured 0.74 against 0.20)."""
    X, D, loss = digits
    study = depth_study(
        X, D, depths=[50], configurations=["relu", "relu+res+ln"], epochs=8, width=16,
        loss=loss, data="digits",
    )  # fmt: skip
    plain, skip = study.run("relu", 50), study.run("relu+res+ln", 50)
    assert plain.loss[-1] > 1.9  # near chance
    assert skip.loss[-1] < 0.1 * skip.loss[0]
    assert skip.test_score > 1.5 * plain.test_score


def test_the_split_is_seeded_stratified_and_disjoint(digits) -> None:  # type: ignore[no-untyped-def]
    """The study trains on the training rows and scores on held-out test rows: a quarter of
    every class, the same rows for the same seed."""
    X, D, loss = digits
    train, test = split_rows(D, 0.25, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(D)
    classes = np.argmax(D, axis=1)
    for label in np.unique(classes):
        rows = np.flatnonzero(classes == label)
        assert np.isin(rows, test).sum() == round(0.25 * len(rows))
    again = split_rows(D, 0.25, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, split_rows(D, 0.25, seed=4)[1])
    one_row = np.eye(2)[[0, 1, 1, 1]]  # a class with one row keeps it for training
    assert 0 in split_rows(one_row, 0.5, seed=0)[0]


def test_the_test_score_is_on_held_out_rows(deep, digits) -> None:  # type: ignore[no-untyped-def]
    X, D, loss = digits
    train, test = split_rows(D, 0.25, seed=0)
    assert (deep.n_train, deep.n_test) == (len(train), len(test))
    rows = table(deep)
    assert all(0.0 <= row["test_score"] <= 1.0 and 0.0 <= row["train_score"] <= 1.0
               for row in rows)  # fmt: skip
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 1.0"):
        depth_study(X, D, depths=[3], configurations=["relu"], test_fraction=1.0)


def test_each_configuration_keeps_its_colour(deep, digits) -> None:  # type: ignore[no-untyped-def]
    """The same configuration is drawn in the same colour whatever else is in the study."""
    from betaprop.explain.plots import color

    X, D, loss = digits
    other = depth_study(X, D, depths=[3], configurations=["relu+bn", "tanh"], epochs=1,
                        width=4, loss=loss)  # fmt: skip
    for study in (deep, other):
        fig = figure(study)
        for ax in fig.axes[:3]:  # the beta panels and the loss panel of the first column
            drawn = [line.get_color() for line in ax.get_lines()]
            assert drawn == [color(name) for name in study.configurations]
    assert color("relu+bn") == "#d62728" and color("tanh") == "#ff7f0e"
    assert color("tanh+res+ln") == color("tanh+res+ln")  # not listed: from its CRC-32


def test_the_figure_writes_math_and_explains_batch_norm_at_depth(deep) -> None:  # type: ignore[no-untyped-def]
    """Mathtext, not raw β^q; the note on relu+bn carries its measured ratio and score; the
    whole figure renders (a mathtext error would raise while drawing)."""
    import io

    fig = figure(deep)
    joined = _texts(fig)
    assert r"$\beta^q$" in joined and r"$(W^{q+1})^T$" in joined
    assert "β" not in joined and "^(" not in joined
    run = deep.run("relu+bn", 20)
    assert "Why relu+bn stays low at $Q$ = 20" in joined
    assert f"{run.test_score:.0%} test accuracy in 1 epoch." in joined
    assert "held-out test rows" in joined
    picture = io.BytesIO()
    fig.savefig(picture, format="png", dpi=100)
    width, height = (fig.get_size_inches() * 100).astype(int)
    assert width >= 900 and height >= 1000  # readable, not a strip
    texts = [t for sub in fig.subfigs for t in sub.texts]
    assert min(t.get_fontsize() for t in texts) >= 10
    no_batch_norm = figure(_without(deep, "relu+bn"))
    assert "Why" not in _texts(no_batch_norm)


def _without(study, name):  # type: ignore[no-untyped-def]
    import copy

    study = copy.copy(study)
    study.configurations = [n for n in study.configurations if n != name]
    study.runs = [r for r in study.runs if r.configuration != name]
    return study


def test_russian_numbers_agree_with_their_nouns() -> None:
    from betaprop.explain.plots import STUDY_TEXT, _words

    ru = STUDY_TEXT["ru"]
    forms = ("слой", "слоя", "слоёв")
    assert [_words(ru, n, ("", ""), forms) for n in (1, 2, 5, 11, 21, 22, 100)] == [
        "слой", "слоя", "слоёв", "слоёв", "слой", "слоя", "слоёв"
    ]  # fmt: skip


def test_residual_configurations_start_from_small_branches_by_default() -> None:
    """+res configurations take PyTorch's nn.Linear rule (a third of He's variance), the
    others their activation's own; an explicit init applies to every configuration."""
    from betaprop.engine.init import RULES
    from betaprop.explain.study import RESIDUAL_INIT, residual_init

    assert RESIDUAL_INIT == "torch" and RESIDUAL_INIT in RULES
    assert residual_init("relu+res+ln") == residual_init("relu+res+bn") == "torch"
    assert residual_init("relu") is None and residual_init("relu+bn") is None
