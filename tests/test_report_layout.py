"""train's report.png laid out to be read: a 2 x 2 grid on a laptop screen, no text under
10 points, the confusion panel in the fourth cell (or the cell left empty without one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from betaprop.explain.plots import REPORT_FONT, Confusion, report
from betaprop.training.state import History


def _history() -> History:
    history = History(epoch=[1, 2, 3], loss=[2.0, 1.0, 0.5], val_loss=[2.1, 1.2, 0.7],
                      val_score=[0.4, 0.6, 0.8])  # fmt: skip
    for q in (1, 2, 3):
        history.extra[f"beta_rms_{q}"] = [0.1 * q, 0.05 * q, 0.02 * q]
    return history


def _sizes(fig) -> list[float]:  # type: ignore[no-untyped-def]
    """The font size of every visible text of the figure (ticks, labels, titles, legends)."""
    fig.canvas.draw()
    return [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
            if t.get_visible() and t.get_text()]  # fmt: skip


def test_the_report_is_a_readable_grid(tmp_path: Path) -> None:
    classes = [str(j) for j in range(10)]
    rng = np.random.default_rng(0)
    truth = [classes[j] for j in rng.integers(0, 10, 200)]
    confusion = Confusion.of(truth, truth, classes)
    fig = report(_history(), tmp_path / "report.png", confusion=confusion, title="a run")
    width, height = fig.get_size_inches() * 90
    assert (round(width), round(height)) == (1080, 900)
    panels = fig.axes[:4]
    boxes = [ax.get_position() for ax in panels]
    assert boxes[0].y0 > boxes[2].y1 and boxes[1].y0 > boxes[3].y1  # two rows
    assert boxes[0].x1 < boxes[1].x0 and boxes[2].x1 < boxes[3].x0  # two columns
    np.testing.assert_array_equal(panels[3].images[0].get_array(), confusion.counts)
    assert min(_sizes(fig)) >= REPORT_FONT
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_without_a_confusion_matrix_the_fourth_cell_is_empty(tmp_path: Path) -> None:
    fig = report(_history(), tmp_path / "report.png")
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == [
        "loss", "validation score", "local errors per layer"
    ]  # fmt: skip
    assert min(_sizes(fig)) >= REPORT_FONT
