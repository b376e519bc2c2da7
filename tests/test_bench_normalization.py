"""benchmarks/normalization.py: its arithmetic on stubbed timings (no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks.normalization import measure, render, summarize, verdicts


def test_measure_interleaves_rounds_after_one_warm_up() -> None:
    calls: list[str] = []
    epochs = {("betaprop", v): (lambda v=v: calls.append(v)) for v in ("plain", "dropout")}
    ticks = iter(range(100))
    times = measure(epochs, rounds=2, clock=lambda: float(next(ticks)))
    # warm-up plain, dropout; round 0 plain, dropout; round 1 rotated: dropout, plain
    assert calls == ["plain", "dropout", "plain", "dropout", "dropout", "plain"]
    assert times == {("betaprop", "plain"): [1.0, 1.0], ("betaprop", "dropout"): [1.0, 1.0]}


def test_medians_and_ratios_to_each_librarys_own_plain_epoch() -> None:
    times = {
        ("betaprop", "plain"): [1.0, 9.0, 2.0],
        ("betaprop", "batch_norm"): [3.0, 3.0, 2.5],
        ("betaprop", "dropout"): [2.2, 2.4, 99.0],
        ("torch", "plain"): [4.0, 4.0, 4.0],
        ("torch", "batch_norm"): [6.0, 5.0, 7.0],
        ("torch", "dropout"): [4.4, 4.0, 5.0],
    }
    rows = summarize(times)
    got = {(r["library"], r["variant"]): (r["median"], r["ratio"]) for r in rows}
    assert got[("betaprop", "plain")] == (2.0, 1.0)
    assert got[("betaprop", "batch_norm")] == (3.0, 1.5)
    assert got[("betaprop", "dropout")] == (2.4, pytest.approx(1.2))
    assert got[("torch", "batch_norm")] == (6.0, 1.5)
    assert got[("torch", "dropout")] == (4.4, pytest.approx(1.1))
    assert verdicts(rows) == {"batch_norm": True, "dropout": False}
    text = render(rows, "## heading")
    assert "| betaprop | batch_norm | 3000.0 | 1.50 |" in text
    assert "- dropout: betaprop's ratio worse than PyTorch's" in text
