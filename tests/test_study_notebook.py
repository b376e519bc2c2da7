"""`bp.study_depth(...)` in Jupyter: a real kernel (nbclient) displays the study's figure as
a self-contained PNG, and printing the result gives its table."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import betaprop as bp
from betaprop.explain.study import StudyView, text_table

from .test_trace_notebook import run_notebook

OPTIONS = "depths=[3], configurations=['sigmoid', 'relu+bn'], epochs=1, width=4"
CELLS = [
    f"import betaprop as bp\nview = bp.study_depth('digits', {OPTIONS})\nview",
    "print(view)",
]


@pytest.fixture(scope="module")
def executed():
    return run_notebook(CELLS)


@pytest.fixture(scope="module")
def here() -> StudyView:
    """The same study computed in this process."""
    return bp.study_depth(
        "digits", depths=[3], configurations=["sigmoid", "relu+bn"], epochs=1, width=4
    )


def test_the_notebook_shows_the_figure_and_prints_the_table(executed, here) -> None:  # type: ignore[no-untyped-def]
    shown, printed = executed.cells[0].outputs, executed.cells[1].outputs
    data = shown[0]["data"]
    assert "<betaprop study depth: digits, depths [3]" in data["text/plain"]
    picture = base64.b64decode(data["image/png"])
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(picture[16:20], "big"), int.from_bytes(picture[20:24], "big")
    expected = here.png()
    assert (width, height) == (
        int.from_bytes(expected[16:20], "big"), int.from_bytes(expected[20:24], "big")
    )  # fmt: skip
    assert width >= 900 and height >= 1000
    text = "".join(output.get("text", "") for output in printed)
    assert text.strip() == str(here).strip()  # the kernel's numbers are the engine's here


def test_the_text_is_the_table_and_the_numbers_are_the_runs(here) -> None:  # type: ignore[no-untyped-def]
    """Displayed numbers are claims: each row of the text recomputed from the runs."""
    lines = str(here).splitlines()
    assert str(here) == text_table(here.study)
    assert "1347 training rows, score on 450 held-out rows" in lines[0]
    for line, run in zip(lines[2:], here.study.runs, strict=True):
        fields = line.split()
        assert fields[0] == run.configuration and int(fields[1]) == run.Q
        assert float(fields[2]) == pytest.approx(run.ratio("start"), rel=1e-2)
        assert float(fields[3]) == pytest.approx(run.ratio("end"), rel=1e-2)
        assert float(fields[-1]) == pytest.approx(run.test_score, abs=1e-4)


def test_study_depth_takes_arrays_and_refuses_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    D = np.eye(2)[(X[:, 0] > 0).astype(int)]
    view = bp.study_depth(X, D, depths=[3], configurations=["relu"], epochs=1, width=4)
    assert view.study.n_train + view.study.n_test == 40
    assert view._repr_png_()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="D must be given with an array X"):
        bp.study_depth(X)
    with pytest.raises(ValueError, match=r"lang must be one of \['en', 'ru'\], got 'de'"):
        bp.study_depth(X, D, lang="de")
