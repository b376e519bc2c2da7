"""The ``betaprop`` command where two of its capabilities meet (issue 22): an output path and
an input path, the number of classes and the report figure, the task and the output
activation, a file's text and rich's markup, a closed pipe, Ctrl-C and the imports, the
separator and the readers. Real subprocesses on real files, as a user runs the command."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

_SCRIPT = Path(sys.executable).with_name("betaprop")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "betaprop.cli"]
ENV = dict(os.environ, COLUMNS="250", PYTHONWARNINGS="ignore")


def run(*args: str, cwd: Path | str | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV,
        **kwargs,
    )  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2 (a user error, docs/cli.md), one line on stderr holding ``needles``."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_table(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def three_classes(path: Path, labels: tuple[str, str, str] = ("a", "b", "c")) -> Path:
    """60 rows, two numeric features, three classes that the features separate."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        k = i % 3
        rows.append([*(rng.normal(size=2) + 3.0 * k), labels[k]])
    return write_table(path, ["x1", "x2", "label"], rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A model file trained by the command and its data file."""
    folder = tmp_path_factory.mktemp("trained")
    data = three_classes(folder / "data.csv")
    result = run("train", "--data", str(data), "--hidden", "4", "--epochs", "2", "--out",
                 str(folder / "run"), "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder / "run" / "model.safetensors", data


# ------------------------------------------------------------ 1. no command writes onto its inputs
def _overwrite_cases(folder: Path, model: Path, data: Path) -> dict[str, tuple[list[str], Path]]:
    """Each command that writes, asked to write onto one of its inputs: (arguments, the input)."""
    (folder / "link.safetensors").symlink_to(model)
    os.link(data, folder / "hard.csv")
    run_folder = folder / "run"
    run_folder.mkdir()
    (run_folder / "history.csv").write_bytes(data.read_bytes())
    forced = folder / "forced"
    forced.mkdir()
    (forced / "model.safetensors").write_bytes(data.read_bytes())
    study = folder / "study"
    study.mkdir()
    (study / "beta.csv").write_bytes(data.read_bytes())
    return {
        "export --onnx a link to the model": (
            ["export", str(model), "--onnx", str(folder / "link.safetensors")], model),
        "trace --out the model": (
            ["trace", "--model", str(model), "--example", "0", "--data", str(data), "--out",
             str(model.parent / "." / model.name)], model),
        "trace --out the data": (
            ["trace", "--model", str(model), "--example", "0", "--data", str(data), "--out",
             str(data)], data),
        "predict --out a hard link to the data": (
            ["predict", str(model), str(data), "--out", str(folder / "hard.csv")], data),
        "predict --out the model": (["predict", str(model), str(data), "--out", str(model)], model),
        "train --out the folder of its data": (
            ["train", "--data", str(run_folder / "history.csv"), "--epochs", "1", "--out",
             str(run_folder)], run_folder / "history.csv"),
        "train --force onto its data": (
            ["train", "--data", str(forced / "model.safetensors"), "--epochs", "1", "--out",
             str(forced), "--force"], forced / "model.safetensors"),
        "study --out the folder of its data": (
            ["study", "depth", "--data", str(study / "beta.csv"), "--depths", "2", "--epochs",
             "1", "--activations", "relu", "--out", str(study)], study / "beta.csv"),
    }  # fmt: skip


CASES = [
    "export --onnx a link to the model",
    "trace --out the model",
    "trace --out the data",
    "predict --out a hard link to the data",
    "predict --out the model",
    "train --out the folder of its data",
    "train --force onto its data",
    "study --out the folder of its data",
]


@pytest.mark.parametrize("case", CASES)
def test_no_command_writes_onto_one_of_its_inputs(tmp_path, trained, case):
    model = tmp_path / "model.safetensors"
    model.write_bytes(trained[0].read_bytes())
    data = tmp_path / "data.csv"
    data.write_bytes(trained[1].read_bytes())
    args, source = _overwrite_cases(tmp_path, model, data)[case]
    before = {path: digest(path) for path in tmp_path.rglob("*") if path.is_file()}
    result = run(*args, cwd=tmp_path)
    one_line_error(result, "must not be", "(the same file)", "nothing written")
    after = {path: digest(path) for path in tmp_path.rglob("*") if path.is_file()}
    assert after == before  # the input is intact, and nothing else was written either
    assert source in before


def test_every_writing_command_has_an_overwrite_case():
    """A command that writes files and has no case above fails here by name."""
    from betaprop import cli

    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    writing = set()
    for name, sub in commands.items():
        options = {option for action in sub._actions for option in action.option_strings}
        if options & {"--out", "--onnx"} or name == "study":
            writing.add(name)
    covered = {case.split()[0] for case in CASES}
    assert writing <= covered, writing - covered


# ------------------------------------------------------------ 3. contradictory options refused
@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--task", "regression", "--output", "softmax"], "--output softmax needs at"),
        (["gradcheck", "--sizes", "2,3,1", "--loss", "cross_entropy"], "--loss cross_entropy"),
        (["trace", "--sizes", "2,3,1", "--output", "softmax"], "--output softmax needs at"),
        (["train", "--task", "classification", "--output", "identity"], "--output must be one"),
    ],
)
def test_an_output_that_cannot_learn_the_task_is_refused(tmp_path, args, needle):
    data = three_classes(tmp_path / "data.csv", labels=("1", "2", "3"))
    if args[0] == "train":
        args = [*args, "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run")]
    result = run(*args, cwd=tmp_path)
    one_line_error(result, needle)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------ 7. --sep of more than one character
@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
@pytest.mark.parametrize("sep", ["::", "", '"'])
def test_a_separator_that_is_not_one_character_is_one_line(tmp_path, trained, command, sep):
    model, data = trained
    if command == "train":
        args = ["train", "--data", str(data), "--out", str(tmp_path / "run")]
    else:
        args = [command, str(model), str(data)]
    result = run(*args, f"--sep={sep}", cwd=tmp_path)
    one_line_error(result, "--sep must be one character", repr(sep))
    assert not (tmp_path / "run").exists()


def test_sep_tab_reaches_every_reader(tmp_path, trained):
    """--sep tab is one tab for train, predict and evaluate alike (predict passed 'tab' on)."""
    model, data = trained
    tsv = tmp_path / "data.txt"
    tsv.write_text(data.read_text().replace(",", "\t"))
    for args in (["predict", str(model), str(tsv)], ["evaluate", str(model), str(tsv)]):
        result = run(*args, "--sep", "tab", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    predicted = run("predict", str(model), str(tsv), "--sep", "tab").stdout
    assert predicted == run("predict", str(model), str(data)).stdout


# ------------------------------------------------------------ 4. names from a file are not markup
def test_names_labels_and_paths_from_files_print_as_written(tmp_path):
    """rich reads "[...]" as markup and ":cat:" as an emoji code; a user's names must not be."""
    rng = np.random.default_rng(1)
    labels = ["[red]c1[/red]", ":cat:"]
    rows = [[*(rng.normal(size=2) + 3.0 * (i % 2)), labels[i % 2]] for i in range(40)]
    data = write_table(tmp_path / "[bold]data.csv", ["[/bold]", "[link=x]", "label"], rows)
    trained = run("train", "--data", data.name, "--hidden", "3", "--epochs", "1", "--out", "[i]run",
                  cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "[bold]data.csv" in trained.stdout
    model = "[i]run/model.safetensors"
    info = run("info", model, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "[/bold], [link=x]" in info.stdout  # the features
    assert ":cat:, [red]c1[/red]" in info.stdout  # the classes, sorted
    assert f"betaprop model {model}" in info.stdout
    evaluated = run("evaluate", model, data.name, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    caption = "".join(evaluated.stdout.split())  # the caption wraps at the table's width
    assert f"{model}on[bold]data.csv" in caption


# ------------------------------------------------------------ 5. a closed pipe ends quietly
@pytest.mark.parametrize("command", ["info", "predict", "evaluate", "trace", "gradcheck"])
def test_a_reader_that_has_gone_ends_the_command_quietly_with_0(trained, command):
    """`betaprop info M | head -1`: head exits after one line. Here the pipe has no reader
    from the start, so the first write fails (EPIPE) whatever the timing."""
    model, data = trained
    args = {
        "info": ["info", str(model)],
        "predict": ["predict", str(model), str(data)],
        "evaluate": ["evaluate", str(model), str(data)],
        "trace": ["trace"],
        "gradcheck": ["gradcheck"],
    }[command]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([*COMMAND, *args], stdout=write_end, stderr=subprocess.PIPE,
                                text=True, timeout=300, env=ENV)  # fmt: skip
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")


# ------------------------------------------------------------ 6. Ctrl-C while the imports load
# The console script as pip writes it, with a Ctrl-C pressed the moment the module WHEN starts
# to load (an import hook, so no timing): directly, or inside a __del__ method, where Python can
# only print "Exception ignored" and go on.
CTRL_C_PROGRAM = """
import signal, sys
from importlib.metadata import entry_points

when, where = sys.argv[1], sys.argv[2]
if when in sys.modules:
    sys.exit(f"{when} was imported before the command started")


class Unwelcome:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)


class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == when:
            sys.meta_path.remove(self)
            if where == "in a __del__":
                Unwelcome()  # collected at once
            else:
                signal.raise_signal(signal.SIGINT)
        return None


sys.meta_path.insert(0, CtrlC())
(script,) = entry_points(group="console_scripts", name="betaprop")
sys.argv = ["betaprop", *sys.argv[3:]]
sys.exit(script.load()())
"""


@pytest.mark.parametrize(
    "when, where",
    [
        ("numpy", "directly"),  # import betaprop, before any of betaprop.cli has run
        ("scipy.special", "directly"),
        ("betaprop.cli.train", "directly"),
        ("rich.table", "directly"),  # inside the info command
        ("numpy", "in a __del__"),
        ("rich.table", "in a __del__"),
    ],
)
def test_ctrl_c_at_any_moment_is_one_line_and_130(trained, when, where):
    model, _ = trained
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_PROGRAM, when, where, "info", str(model)],
        capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (130, "betaprop: interrupted\n")
    if where == "directly":
        assert result.stdout == ""


def test_python_m_betaprop_cli_runs_the_console_scripts_entry(trained):
    """``python -m betaprop.cli`` ends a closed pipe and Ctrl-C as the console script does."""
    model, _ = trained
    result = subprocess.run([sys.executable, "-m", "betaprop.cli", "info", str(model)],
                            capture_output=True, text=True, timeout=300, env=ENV)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "betaprop model" in result.stdout


# SIGTERM (kill, timeout, Slurm) where no training handler is in place: after the model is
# written, while the report loads matplotlib (the same import hook, another signal)
STOP_PROGRAM = CTRL_C_PROGRAM.replace("signal.SIGINT", "signal.SIGTERM")


@pytest.mark.parametrize("command", ["train", "info"])
def test_sigterm_outside_training_is_one_line_143_and_leaves_no_lock(tmp_path, trained, command):
    model, data = trained
    if command == "train":
        when = "matplotlib.figure"  # the report, drawn after the model and history are written
        args = ["train", "--data", str(data), "--hidden", "4", "--epochs", "1",
                "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    else:
        when, args = "rich.table", ["info", str(model)]
    result = subprocess.run(
        [sys.executable, "-c", STOP_PROGRAM, when, "directly", *args],
        capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip
    assert result.returncode == 143, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    if command == "train":
        assert (tmp_path / "run" / "model.safetensors").exists()
        assert not (tmp_path / "run" / ".betaprop.lock").exists()


def test_a_full_standard_output_is_one_line_and_1(trained):
    model, data = trained
    for args in (["info", str(model)], ["predict", str(model), str(data)]):
        with open("/dev/full", "w") as full:
            result = subprocess.run([*COMMAND, *args], stdout=full, stderr=subprocess.PIPE,
                                    text=True, timeout=300, env=ENV)  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert result.stderr == "betaprop: error: No space left on device (writing the output)\n"


# ------------------------------------------------------------ 2. the model first, figures bounded
def _many_classes(path: Path, n_classes: int) -> Path:
    """Class k has 3 + k % 5 rows (so the most frequent are well defined), two features."""
    rng = np.random.default_rng(2)
    rows = []
    for k in range(n_classes):
        for _ in range(3 + k % 5):
            rows.append([*(rng.normal(size=2) + k), f"class{k:03d}"])
    return write_table(path, ["x1", "x2", "label"], rows)


def test_the_report_counts_the_most_frequent_classes_when_there_are_many(tmp_path):
    """40 classes: the confusion panel of train's report is the 25 classes with most test rows,
    its counts those of the full matrix (recomputed with scikit-learn)."""
    from sklearn.metrics import confusion_matrix

    from betaprop import cli
    from betaprop.explain.plots import MOST_CLASSES

    data = _many_classes(tmp_path / "many.csv", 40)
    args = cli.build_parser().parse_args(
        ["train", "--quiet", "--data", str(data), "--hidden", "none", "--epochs", "2",
         "--test-fraction", "0.4", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    run_ = cli.train_run(args, None)
    assert (tmp_path / "run" / "report.png").stat().st_size > 0
    prep, rows = run_.prep, run_.splits["test"]
    truth = prep.labels(run_.data.target[rows])
    predicted = prep.decode(run_.net.predict(prep.transform(run_.data.X[rows], run_.net.dtype)))
    full = confusion_matrix(truth, predicted, labels=prep.classes)
    frequency = full.sum(axis=1)
    shown = sorted(np.argsort(-frequency, kind="stable")[:MOST_CLASSES])
    confusion = run_.confusion
    assert confusion.n_classes == 40 and len(confusion.labels) == MOST_CLASSES == 25
    assert confusion.labels == [prep.classes[j] for j in shown]
    assert min(frequency[shown]) >= max(np.delete(frequency, shown))  # the most frequent
    np.testing.assert_array_equal(confusion.counts, full[np.ix_(shown, shown)])
    assert prep.extra["confusion_split"] == "test"


def test_the_confusion_panel_of_10000_classes_is_bounded_and_draws_what_it_claims(tmp_path):
    """10 000 classes: counted in a few MiB (the whole matrix is 763 MiB), drawn as 25 classes
    whose cells, labels and title are what the figure shows."""
    import tracemalloc

    from betaprop.explain.plots import Confusion, report
    from betaprop.training.state import History

    rng = np.random.default_rng(3)
    long = "a very long label " * 4
    classes = [f"c{j}" for j in range(9_998)] + ["$x^$", long]
    truth = [classes[j] for j in rng.zipf(1.3, size=20_000) % len(classes)]
    truth += ["$x^$", long] * 300  # frequent: drawn, escaped and cut
    predicted = [t if rng.random() < 0.5 else classes[0] for t in truth]
    tracemalloc.start()
    try:
        confusion = Confusion.of(truth, predicted, classes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak
    position = {label: i for i, label in enumerate(confusion.labels)}
    expected = np.zeros((25, 25), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        if t in position and p in position:
            expected[position[t], position[p]] += 1
    np.testing.assert_array_equal(confusion.counts, expected)
    counts = {label: truth.count(label) for label in set(truth)}
    least_shown = min(counts.get(label, 0) for label in confusion.labels)
    assert all(n <= least_shown for label, n in counts.items() if label not in position)

    history = History(epoch=[1], loss=[1.0], val_loss=[1.0], val_score=[0.5])
    figure = report(history, tmp_path / "report.png", confusion=confusion)
    panel = figure.axes[3]
    np.testing.assert_array_equal(panel.images[0].get_array(), confusion.counts)
    drawn = [label.get_text() for label in panel.get_yticklabels()]
    assert [label.replace("\\$", "$") for label in drawn] == [
        label if len(label) <= 24 else label[:23] + "…" for label in confusion.labels
    ]
    assert "$x^$" in confusion.labels and long in confusion.labels
    assert "the 25 most frequent of 10000 classes" in panel.get_title()


def test_class_labels_with_dollar_signs_draw_as_written(tmp_path):
    """Two '$' in a label started matplotlib's mathtext: '$x^$' failed the report."""
    rng = np.random.default_rng(4)
    labels = ["$x^$", "$y_$"]
    rows = [[*(rng.normal(size=2) + 3.0 * (i % 2)), labels[i % 2]] for i in range(40)]
    data = write_table(tmp_path / "dollars.csv", ["a", "b", "label"], rows)
    result = run("train", "--data", str(data), "--hidden", "3", "--epochs", "1", "--out",
                 str(tmp_path / "run"), "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "report.png").stat().st_size > 0


FAULT_PROGRAM = """
import sys
from importlib.metadata import entry_points

when = sys.argv[1]


class OutOfMemory:
    def find_spec(self, name, path=None, target=None):
        if name == when:
            raise MemoryError
        return None


sys.meta_path.insert(0, OutOfMemory())
(script,) = entry_points(group="console_scripts", name="betaprop")
sys.argv = ["betaprop", *sys.argv[2:]]
sys.exit(script.load()())
"""


def test_a_report_that_runs_out_of_memory_leaves_the_model_and_history(tmp_path):
    """The figure is drawn last; when it cannot be (no memory for matplotlib here), the model
    and history are kept and one line says what is complete."""
    data = three_classes(tmp_path / "data.csv")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", FAULT_PROGRAM, "matplotlib.figure", "train", "--data", str(data),
         "--hidden", "3", "--epochs", "1", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip
    one_line_error(result, "report.png could not be written (out of memory)",
                   "complete: model.safetensors, history.csv")  # fmt: skip
    assert sorted(os.listdir(out)) == ["history.csv", "model.safetensors"]
    info = run("info", str(out / "model.safetensors"))
    assert info.returncode == 0, info.stderr


def test_the_metrics_of_many_classes_are_computed_in_bounded_chunks(tmp_path, monkeypatch):
    """train's metrics (before the model is written) hold at most METRICS_CELLS targets and
    outputs at a time, not rows x classes (a 10 000-class target lost the model under a
    4 GiB limit), and equal the metrics of all rows at once, recomputed with scikit-learn."""
    import tracemalloc

    from sklearn.metrics import accuracy_score, f1_score, log_loss

    from betaprop import cli
    from betaprop.cli import models

    data = _many_classes(tmp_path / "many.csv", 600)  # 600 classes, 3000 rows
    args = cli.build_parser().parse_args(
        ["train", "--quiet", "--data", str(data), "--hidden", "none", "--epochs", "1",
         "--dtype", "float64", "--test-fraction", "0.5", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    run_ = cli.train_run(args, None)
    net, prep, rows = run_.net, run_.prep, run_.splits["test"]
    monkeypatch.setattr(models, "METRICS_CELLS", 6000)  # 10 rows of 600 outputs a chunk
    tracemalloc.start()
    chunked = models.metrics(net, prep, run_.data, rows)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole = len(rows) * 600 * 8  # one rows x classes float64 matrix (all rows at once: two)
    assert peak < whole, (peak, whole)
    truth = prep.labels(run_.data.target[rows])
    P = net.predict(prep.transform(run_.data.X[rows], net.dtype))
    predicted = prep.decode(P)
    assert chunked["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    expected_f1 = f1_score(truth, predicted, average="macro", zero_division=0)
    assert chunked["f1_macro"] == pytest.approx(expected_f1, abs=1e-12)
    expected_loss = log_loss(truth, P, labels=prep.classes)
    assert chunked["loss"] == pytest.approx(expected_loss, rel=1e-9)
