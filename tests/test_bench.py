"""The benchmark: the GEMM bound does exactly the products of an epoch; the command runs,
reports ratios of its own medians, skips what is missing and rejects bad options.

Times are never asserted (the machine is shared): only structure and arithmetic.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

import betaprop
from benchmarks import bench, command, compare, report
from betaprop.cli import bench as cli_bench


def _operand_shapes(epoch: bench.GemmBound, monkeypatch) -> list[tuple[tuple[int, ...], ...]]:
    """The shapes of the two operands of every np.dot call of one epoch, in order."""
    calls: list[tuple[tuple[int, ...], ...]] = []
    dot = np.dot

    def counting(a, b, out=None):
        calls.append((a.shape, b.shape))
        return dot(a, b, out=out)

    with monkeypatch.context() as patch:
        patch.setattr(np, "dot", counting)
        epoch()
    return calls


def test_gemm_bound_does_the_products_of_steps_2_4_5_and_nothing_else(monkeypatch) -> None:
    """Per mini-batch: W^q y^{q-1} for q = 1..Q, (W^{q+1})^T beta^{q+1} for q = Q-1..1 (no
    beta^0), beta^q (y^{q-1})^T for q = 1..Q; the last batch is the remainder."""
    sizes, n, batch_size = (7, 5, 4, 3), 23, 10  # batches of 10, 10, 3
    calls = _operand_shapes(bench.gemm_bound(sizes, n, batch_size), monkeypatch)
    Q = len(sizes) - 1
    expected = []
    for m in (10, 10, 3):
        expected += [((sizes[q], sizes[q - 1]), (sizes[q - 1], m)) for q in range(1, Q + 1)]
        expected += [((sizes[q], sizes[q + 1]), (sizes[q + 1], m)) for q in range(Q - 1, 0, -1)]
        expected += [((sizes[q], m), (m, sizes[q - 1])) for q in range(1, Q + 1)]
    assert calls == expected


def test_gemm_bound_writes_the_products_it_claims() -> None:
    """The bound's outputs hold the true products (the work is really done)."""
    epoch = bench.gemm_bound((6, 4, 3), 5, 5)
    epoch()
    y, s, beta = epoch.operands[5]
    W, dW = epoch.W, epoch.dW
    np.testing.assert_allclose(s[1], W[2].T @ beta[2], rtol=1e-5)  # step 4, written last
    np.testing.assert_allclose(s[2], W[2] @ y[1], rtol=1e-5)  # step 2
    for q in (1, 2):
        np.testing.assert_allclose(dW[q], beta[q] @ y[q - 1].T, rtol=1e-5)  # step 5


def test_row_layout_bound_does_the_same_products_transposed(monkeypatch) -> None:
    """Examples as rows: (y^{q-1})^T (W^q)^T, (beta^{q+1})^T W^{q+1} and dW^q from the
    (m, N_q) operands, beta^q (y^{q-1})^T computed as ((beta^q)^T)^T (y^{q-1})^T."""
    sizes, n, batch_size = (7, 5, 4, 3), 23, 10
    epoch = bench.gemm_bound(sizes, n, batch_size, layout="rows")
    calls = _operand_shapes(epoch, monkeypatch)
    Q = len(sizes) - 1
    expected = []
    for m in (10, 10, 3):
        expected += [((m, sizes[q - 1]), (sizes[q - 1], sizes[q])) for q in range(1, Q + 1)]
        expected += [((m, sizes[q + 1]), (sizes[q + 1], sizes[q])) for q in range(Q - 1, 0, -1)]
        expected += [((sizes[q], m), (m, sizes[q - 1])) for q in range(1, Q + 1)]
    assert calls == expected
    y, s, beta = epoch.operands[10]
    np.testing.assert_allclose(s[1], beta[2] @ epoch.W[2], rtol=1e-5)  # step 4, written last
    np.testing.assert_allclose(s[3], y[2] @ epoch.W[3].T, rtol=1e-5)  # step 2 (s^Q)
    y, _, beta = epoch.operands[3]  # dW holds the last batch's gradients
    np.testing.assert_allclose(epoch.dW[1], beta[1].T @ y[0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"layout must be one of \['columns', 'rows'\]"):
        bench.gemm_bound(sizes, n, batch_size, layout="diagonal")


def test_quick_run_reports_ratios_of_its_own_medians(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = bench.main(
        [
            "--quick",
            "--workloads",
            "small",
            "--contenders",
            "betaprop,bound",
            "--repeats",
            "2",
            "--threads",
            "1",
            "--no-estimators",
            "--profile",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    rows = results["workloads"]["small"]["rows"]
    assert set(rows) == {"betaprop", "bound"}
    for name, row in rows.items():
        assert len(row["seconds"]) == 2 and all(t > 0 for t in row["seconds"])
        assert row["median"] == statistics.median(row["seconds"])
        assert row["min"] <= row["median"] <= row["max"]
        assert row["per_bound"] == pytest.approx(row["median"] / rows["bound"]["median"])
        assert row["per_betaprop"] == pytest.approx(row["median"] / rows["betaprop"]["median"])
        assert row["peak_rss"] > 0, name
    assert rows["bound"]["per_bound"] == 1.0
    assert "| betaprop |" in printed and "targets: betaprop ÷ bound =" in printed
    assert results["machine"]["cores"] >= 1 and results["threads"] >= 1
    # the profile: every phase of fit's step was timed, beside a fit epoch and the bound
    profile = results["profile"]["small"]
    assert tuple(profile["phases"]) == bench.PHASES
    assert all(t > 0 for t in profile["phases"].values()) and profile["fit"] > 0
    assert "| steps 3-5 |" in printed
    # the memory modes on Q = 256: the recompute work buffers are a small part of "all"'s
    memory = results["checkpoint"]
    assert memory["recompute"]["work_bytes"] * 5 < memory["all"]["work_bytes"]
    assert "| recompute |" in printed


def test_target_lines_say_what_each_target_asks_of_betaprop_in_bound_units() -> None:
    # deep's targets: 1.2 x bound, 0.55 x torch, 0.75 x sklearn; seconds chosen by hand
    rows = {
        name: {"median": t}
        for name, t in (("betaprop", 1.3), ("sklearn", 1.4), ("torch", 1.8), ("bound", 1.0))
    }
    lines = report.target_lines("deep", rows)
    assert lines[0].startswith("targets: betaprop ÷ bound = 1.300 (target <= 1.2: missed)")
    # torch: 0.55 x 1.8 s = 0.99 s = 0.99 x bound, below it; sklearn: 0.75 x 1.4 = 1.05
    assert (
        "betaprop ÷ torch = 0.722 (target <= 0.55: missed; needs betaprop <= 0.99 x bound)"
        in lines[0]
    )
    assert (
        "betaprop ÷ sklearn = 0.929 (target <= 0.75: missed; needs betaprop <= 1.05 x bound)"
        in lines[0]
    )
    assert len(lines) == 2 and "against torch asks for less time than the GEMM bound" in lines[1]
    rows["torch"]["median"] = 2.0  # 0.55 x 2.0 = 1.1 x bound: no longer below the bound
    assert len(report.target_lines("deep", rows)) == 1
    assert report.target_lines("deep", {"betaprop": {"median": 1.0}}) == []  # no contender


def test_unsteady_contenders_are_those_whose_epochs_spread_over_the_limit() -> None:
    rows = {
        "betaprop": {"min": 1.0, "max": 1.25},
        "sklearn": {"min": 2.0, "max": 2.8},  # 1.4 > 1.3
        "bound": {"min": 0.5, "max": 0.5},
    }
    assert report.unsteady(rows) == {"sklearn": pytest.approx(1.4)}
    rows["sklearn"]["max"] = 2.5  # 1.25
    assert report.unsteady(rows) == {}


def test_an_unsteady_run_is_flagged_in_print_and_json(monkeypatch, capsys) -> None:
    # the betaprop child reports one slow epoch among fast ones: a change of load mid-run
    timings = {"betaprop": [0.010, 0.030, 0.011], "bound": [0.005, 0.005, 0.005]}

    def interleaved(tasks, repeats):
        return {name: {"seconds": timings[name], "peak_rss": 1, "over_data": 0} for name in tasks}

    monkeypatch.setattr(command, "interleaved", interleaved)
    args = bench.parse(
        [
            "--workloads",
            "small",
            "--contenders",
            "betaprop,bound",
            "--no-estimators",
            "--no-checkpoint",
        ]
    )
    results = bench.run(args, say=print)
    printed = capsys.readouterr().out
    assert results["workloads"]["small"]["steady"] is False
    assert "note: unsteady epochs (max ÷ min > 1.3: betaprop 3.00)" in printed
    timings["betaprop"] = [0.010, 0.012, 0.011]
    assert bench.run(args, say=print)["workloads"]["small"]["steady"] is True
    assert "unsteady" not in capsys.readouterr().out


def test_missing_torch_and_estimator_are_skipped_with_a_note(monkeypatch) -> None:
    real = command.machine

    def without_torch() -> dict:
        return {**real(), "torch": None}

    monkeypatch.setattr(command, "machine", without_torch)

    def no_estimators(name: str) -> object:
        raise AttributeError(name)

    monkeypatch.setattr(betaprop, "__getattr__", no_estimators)  # as before estimators.py
    args = bench.parse(
        ["--quick", "--workloads", "small", "--contenders", "torch", "--repeats", "1"]
    )
    args.no_checkpoint = True
    lines: list[str] = []
    results = bench.run(args, say=lines.append)
    assert "note: PyTorch is not installed; the torch contender is skipped" in lines
    assert results["workloads"]["small"]["rows"] == {}
    assert any("MLPClassifier does not exist yet; table skipped" in line for line in lines)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--workloads", "huge"], "--workloads must name some of ['wide', 'small', 'deep']"),
        (["--contenders", "jax"], "--contenders must name some of ['betaprop', 'sklearn'"),
        (["--repeats", "0"], "--repeats must be an integer >= 1, got 0"),
        (["--threads", "0"], "--threads must be an integer >= 1, got 0"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_benchmarks_script_is_importable_and_runs_the_same_main() -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
    spec = importlib.util.spec_from_file_location("benchmarks_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main is bench.main
    assert set(module.WORKLOADS) == {"wide", "small", "deep"}
    assert isinstance(bench.parse(["--quick"]), argparse.Namespace)


def test_workloads_are_the_issues() -> None:
    wide, small, deep = (bench.WORKLOADS[k] for k in ("wide", "small", "deep"))
    assert (wide.n, wide.sizes, wide.activation, wide.batch_size) == (
        60_000,
        (784, 256, 128, 10),
        "relu",
        128,
    )
    X, labels = bench.load(small)
    assert X.shape == (1797, 64) and X.dtype == np.float32 and small.batch_size == 32
    assert len(deep.sizes) == 66 and set(deep.sizes[1:-1]) == {128} and deep.batch_size == 256
    assert deep.activation == "tanh" and deep.n == 8_192


# ------------------------------------------------------------------ betaprop bench (the CLI)
def test_the_command_runs_the_checkouts_benchmarks_with_its_arguments(monkeypatch) -> None:
    from betaprop import cli

    seen: list = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 5

    monkeypatch.setattr(bench, "main", fake_main)
    assert cli_bench.find_checkout() == Path(__file__).resolve().parents[1]
    assert cli.main(["bench", "--quick", "-n", "3"]) == 5
    assert seen == [["--quick", "-n", "3"]]


def test_the_command_without_a_checkout_says_how_to_run_it(monkeypatch, tmp_path, capsys) -> None:
    from betaprop import cli

    monkeypatch.setattr(cli_bench, "checkout_folders", lambda: [tmp_path])  # as from a wheel
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the benchmarks are not installed with betaprop" in err
    assert "python -m benchmarks.bench" in err


# ------------------------------------------------------------------ compare (before / after)
def test_compare_summarizes_paired_times_by_their_ratios() -> None:
    before = [1.00, 1.10, 0.90, 1.00, 2.00]  # the fifth pair: both slowed by the machine
    after = [1.02, 1.10, 0.99, 0.98, 2.10]
    row = compare.summarize(before, after)
    ratios = sorted(b / a for a, b in zip(before, after, strict=True))  # 0.98, 1.0, 1.02, 1.05, 1.1
    assert row["pairs"] == 5
    assert row["before"] == 1.00 and row["after"] == 1.02
    assert row["ratio_of_medians"] == pytest.approx(1.02)
    assert row["ratio"] == pytest.approx(ratios[2]) == pytest.approx(1.02)
    assert (row["ratio_q1"], row["ratio_q3"]) == (pytest.approx(1.0), pytest.approx(1.05))
    assert row["spread_before"] == pytest.approx(2.0 / 0.9)
    assert row["verdict"] == "within"  # 1.02 <= 1.03
    assert compare.summarize([1.0] * 4, [1.1] * 4)["verdict"] == "slower"
    unclear = compare.summarize([1.0] * 4, [1.0, 1.02, 1.05, 1.06])  # q1 1.015, median 1.035
    assert unclear["verdict"] == "unclear"
    one = compare.summarize([2.0], [1.0])
    assert one["ratio"] == one["ratio_q1"] == one["ratio_q3"] == 0.5
    with pytest.raises(ValueError, match="need as many before as after times, got 2, 1"):
        compare.summarize([1.0, 1.0], [1.0])


def test_compare_table_and_epochs_per_sample() -> None:
    assert compare.epochs_per_sample([0.003, 0.004], 0.2) == 67  # ceil(0.2 / 0.003)
    assert compare.epochs_per_sample([0.5, 0.6], 0.2) == 1
    row = compare.summarize([0.5, 0.52], [0.51, 0.5])
    lines = compare.table({"wide": {**row, "epochs": 1}})
    assert lines[0].startswith("| workload | before s/epoch | after s/epoch |")
    assert lines[2].startswith("| wide | 0.5100 | 0.5050 | 0.990 | 0.991 [0.976, 1.005] | 2 x 1 |")
    assert lines[2].endswith("| yes |")


def test_compare_runs_two_trees_paired(tmp_path: Path) -> None:
    """The machinery, with the same tree on both sides: one pair of one small sample."""
    src = str(Path(betaprop.__file__).resolve().parents[1])
    out = tmp_path / "compare.json"
    argv = ["--before", src, "--after", src, "--workloads", "small", "--quick"]
    argv += ["--rounds", "2", "--sample", "0.01", "--threads", "1", "--json", str(out)]
    assert compare.main(argv) == 0
    row = json.loads(out.read_text())["workloads"]["small"]
    assert row["pairs"] == 2 and len(row["times"]["before"]) == len(row["times"]["after"]) == 2
    assert row["ratio"] > 0 and row["verdict"] in ("within", "slower", "unclear")
    where = str(Path(src) / "betaprop" / "__init__.py")  # each child imported the given tree
    assert row["imported"] == {"before": where, "after": where}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--before", "/nowhere"], "--before must be a src folder holding betaprop/"),
        (["--before", "src", "--workloads", "huge"], "--workloads must name some of ['wide'"),
        (["--before", "src", "--rounds", "0"], "--rounds must be an integer >= 1, got 0"),
    ],
)
def test_compare_refuses_bad_options(argv, message, capsys, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    with pytest.raises(SystemExit) as exit_info:
        compare.parse(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
