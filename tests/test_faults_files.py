"""Damaged files: model files, checkpoints and CSV files, broken in every way we can think of.

Only the documented error types may come out -- ``ModelFileError`` from ``betaprop.load``,
``CheckpointError`` (a ``ModelFileError``) from ``load_checkpoint``, ``DataError`` from
``read_csv`` -- never another exception, never a hang (hypothesis' deadline), never code
execution (a pickle that would run code is refused before anything is unpickled).
"""

from __future__ import annotations

import io
import itertools
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as safetensors_save

import betaprop as bp
from betaprop import optimizers as opt
from betaprop.files.checkpoint import (
    CheckpointError,
    CheckpointFile,
    load_checkpoint,
    save_checkpoint,
)
from betaprop.files.container import digest as _digest
from betaprop.files.datasets import DataError, Dataset, read_csv
from betaprop.files.model import ModelFileError, read_model
from betaprop.files.model import save as save_model

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ------------------------------------------------------------------------------ good files
def _model_bytes(tmp: Path) -> bytes:
    net = bp.Network([3, 4, 2], activation="tanh", loss="cross_entropy", seed=0)
    path = tmp / "model.safetensors"
    save_model(net, path, metadata={"classes": ["a", "b"], "scale": [1.5, 2.0]})
    return path.read_bytes()


def _checkpoint_bytes(tmp: Path) -> bytes:
    """A checkpoint taken in the middle of an epoch: every optional part is present."""
    net = bp.Network([3, 4, 2], activation="tanh", loss="cross_entropy", seed=0)
    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(12, 3)), np.eye(2)[rng.integers(0, 2, 12)]
    state = bp.TrainingState()
    history = bp.fit(
        net,
        X,
        D,
        optimizer=opt.RMSprop(0.01, momentum=0.5, centered=True),
        schedule=bp.schedules.ReduceOnPlateau(patience=1),
        early_stopping=5,
        epochs=2,
        batch_size=5,
        seed=0,
        state=state,
        validation_data=(X, D),
    )
    state.position, state.batch, state.epoch_loss = 5, 1, 0.25  # as after a Ctrl-C
    state.last_good = net.params.copy()
    path = tmp / "checkpoint.safetensors"
    save_checkpoint(path, net, state, history, metadata={"note": "fuzz"})
    return path.read_bytes()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("good")
    return {"model": _model_bytes(tmp), "checkpoint": _checkpoint_bytes(tmp)}


def _load_model(path: Path) -> Any:
    return read_model(path)


LOADERS: dict[str, tuple[Callable[[Path], Any], type[Exception]]] = {
    "model": (_load_model, ModelFileError),
    "checkpoint": (load_checkpoint, CheckpointError),
}


_FRESH = itertools.count()


def _fresh(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new file beside ``path`` (overwriting a file is slow on ext4)."""
    fresh = path.with_name(f"{path.name}-{next(_FRESH)}")
    fresh.write_bytes(data)
    return fresh


def expect_refused(kind: str, data: bytes, path: Path, match: str | None = None) -> str:
    """Write ``data`` and load it: the documented error must come out; returns its text."""
    loader, error = LOADERS[kind]
    path = _fresh(path, data)
    with pytest.raises(error, match=match) as caught:
        loader(path)
    path.unlink()
    assert type(caught.value) is error  # not a subclass that leaked from elsewhere
    return str(caught.value)


def loads_or_refused(kind: str, data: bytes, path: Path) -> Any:
    """Either a valid object or the documented error; anything else fails the test."""
    loader, error = LOADERS[kind]
    path = _fresh(path, data)
    try:
        return loader(path)
    except error as caught:
        assert type(caught) is error and str(caught)
        return None
    finally:
        path.unlink()


def test_the_good_files_load(good: dict[str, bytes], tmp_path: Path) -> None:
    model = loads_or_refused("model", good["model"], tmp_path / "m")
    assert model is not None and model.metadata["classes"] == ["a", "b"]
    saved = loads_or_refused("checkpoint", good["checkpoint"], tmp_path / "c")
    assert isinstance(saved, CheckpointFile)
    assert saved.state.position == 5 and saved.state.last_good is not None
    assert saved.metadata == {"note": "fuzz"}


# ------------------------------------------------------------------------------ truncation
@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_truncation_at_every_byte_is_refused(
    good: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    data = good[kind]
    path = tmp_path / "cut"
    for length in range(len(data)):
        expect_refused(kind, data[:length], path)


# ------------------------------------------------------------------------------ mutations
@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(data=st.data())
def test_flipped_bytes_are_refused(
    good: dict[str, bytes], tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    """Any change of one to four bytes anywhere in the file is detected."""
    original = bytearray(good[kind])
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(original) - 1), st.integers(1, 255)),
            min_size=1,
            max_size=4,
            unique_by=lambda flip: flip[0],
        )
    )
    for position, mask in flips:
        original[position] ^= mask
    expect_refused(kind, bytes(original), tmp_path / "flipped")


@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(blob=st.binary(max_size=3000))
def test_random_bytes_are_refused(tmp_path: Path, kind: str, blob: bytes) -> None:
    expect_refused(kind, blob, tmp_path / "random")


@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(header=st.binary(max_size=400), tail=st.binary(max_size=200))
def test_random_headers_of_a_plausible_length_are_refused(
    tmp_path: Path, kind: str, header: bytes, tail: bytes
) -> None:
    """The 8-byte length prefix is right, so the parser really reads the bytes behind it."""
    expect_refused(kind, struct.pack("<Q", len(header)) + header + tail, tmp_path / "h")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _split(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from safetensors.numpy import load

    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), load(data)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(data=st.data())
def test_hand_edited_metadata_is_refused_or_valid(
    good: dict[str, bytes], tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    """Edit one field of the JSON metadata (replace, or delete), then either keep the old
    SHA-256 (always refused) or recompute it as a careful editor would (then the loader's
    field checks must refuse it, or it must load as valid)."""
    header, tensors = _split(good[kind])
    key = "betaprop" if kind == "model" else "betaprop-checkpoint"
    document = json.loads(header["__metadata__"][key])
    paths = [p for p in _paths(document) if p]
    where = data.draw(st.sampled_from(paths))
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()):
        parent[where[-1]] = data.draw(JSON_VALUES)
    elif isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent.pop(where[-1])
    text = json.dumps(document)
    recompute = data.draw(st.booleans())
    digest = _digest(text, tensors) if recompute else header["__metadata__"]["sha256"]
    edited = safetensors_save(tensors, metadata={key: text, "sha256": digest})
    path = tmp_path / "edited"
    if recompute:
        result = loads_or_refused(kind, edited, path)
        if result is not None:  # accepted: then it is a usable, finite object
            network = result.network
            assert np.isfinite(network.params).all()
    elif text != header["__metadata__"][key]:  # refused: for the digest, or a field before it
        expect_refused(kind, edited, path)


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize(
    "edit",
    [
        ("network", "sizes", [3, 5, 2]),
        ("network", "sizes", [3, 2**40, 2]),  # refused before anything is allocated
        ("network", "dtype", "float16"),
        ("network", "activations", ["tanh", "no-such-thing"]),
        ("network", "loss", "hinge"),
        ("format_version", None, 99),
        ("format", None, "something-else"),
    ],
    ids=lambda edit: f"{edit[0]}.{edit[1]}={edit[2]}",
)
def test_specific_edits_with_a_recomputed_digest_name_the_problem(
    good: dict[str, bytes], tmp_path: Path, kind: str, edit: tuple
) -> None:
    header, tensors = _split(good[kind])
    key = "betaprop" if kind == "model" else "betaprop-checkpoint"
    document = json.loads(header["__metadata__"][key])
    section, field, value = edit
    if field is None:
        document[section] = value
    else:
        document[section][field] = value
    text = json.dumps(document)
    edited = safetensors_save(tensors, metadata={key: text, "sha256": _digest(text, tensors)})
    message = expect_refused(kind, edited, tmp_path / "edited")
    words = {
        "sizes": "shape",
        "dtype": "dtype must be one of",
        "activations": "no-such-thing",
        "loss": "hinge",
        "format_version": "version 99",
        "format": "format is not",
    }
    assert words[field or section] in message


CHECKPOINT_EDITS = [
    ("training", "position", 12, "position must be in"),
    ("training", "position", -1, "position must be an integer >= 0"),
    ("training", "epoch", 7, "final_epoch must be an integer >= 7"),
    ("history", "epoch", [1, 3], "history must end at the checkpoint's epoch 2"),
    ("training", "batch_size", 0, "batch_size must be an integer >= 1"),
    ("training", "shuffle", "yes", "shuffle must be true or false"),
    ("training", "epoch_loss", "NaN", "epoch_loss must be a finite number"),
    ("optimizer", "name", "lbfgs", "optimizer must be one of"),
    ("optimizer", "settings", {"learning_rate": -1.0}, "optimizer settings are invalid"),
    ("optimizer", "scalars", {"lr": 0.1}, "optimizer state must hold"),
    ("schedule", "name", "warmup", "schedule must be one of"),
    ("schedule", "settings", {"factor": 5.0}, "schedule settings are invalid"),
    ("rng", "bit_generator", "RandomState", "rng must be the state of one of"),
    ("rng", "state", {"state": "x", "inc": 1}, "rng state is invalid"),
    ("history", "loss", [1.0], "history loss must have one value per epoch"),
    ("history", "best_epoch", 9, "best_epoch must be one of its epochs"),
    ("early_stopping", "patience", 0, "early_stopping settings are invalid"),
]


@pytest.mark.parametrize("edit", CHECKPOINT_EDITS, ids=lambda e: f"{e[0]}.{e[1]}")
def test_checkpoint_field_edits_name_the_field(
    good: dict[str, bytes], tmp_path: Path, edit: tuple
) -> None:
    header, tensors = _split(good["checkpoint"])
    key = "betaprop-checkpoint"
    document = json.loads(header["__metadata__"][key])
    section, field, value, words = edit
    document[section][field] = float("nan") if value == "NaN" else value
    text = json.dumps(document)
    edited = safetensors_save(tensors, metadata={key: text, "sha256": _digest(text, tensors)})
    message = expect_refused("checkpoint", edited, tmp_path / "edited")
    assert words in message


@pytest.mark.parametrize(
    "tensor, replace, words",
    [
        ("training.order", np.zeros(12, np.int64), "must be a permutation"),
        ("training.order", np.arange(12, dtype=np.int32), "1-D int64 array"),
        ("optimizer.a", np.full(26, np.inf, np.float32), "non-finite values"),
        ("optimizer.a", np.zeros(25, np.float32), "must be float32 of shape (26,)"),
        ("training.best_params", np.zeros(26, np.float64), "must be float32 of shape (26,)"),
        ("training.last_good", None, "'training.last_good' is missing"),
        ("optimizer.extra", np.zeros(26, np.float32), "optimizer state must hold"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_checkpoint_tensor_edits_are_refused(
    good: dict[str, bytes], tmp_path: Path, tensor: str, replace: Any, words: str
) -> None:
    header, tensors = _split(good["checkpoint"])
    if replace is None:
        del tensors[tensor]
    else:
        tensors[tensor] = replace
    text = header["__metadata__"]["betaprop-checkpoint"]
    edited = safetensors_save(
        tensors, metadata={"betaprop-checkpoint": text, "sha256": _digest(text, tensors)}
    )
    assert words in expect_refused("checkpoint", edited, tmp_path / "edited")


# ------------------------------------------------------------------------------ foreign files
class RunsCode:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _foreign_files(tmp_path: Path, good: dict[str, bytes]) -> dict[str, bytes]:
    npy = io.BytesIO()
    np.save(npy, np.arange(10.0))
    npz = io.BytesIO()
    np.savez(npz, W=np.ones((2, 2)))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("data.pkl", pickle.dumps({"W": [1.0, 2.0]}))
    return {
        "empty": b"",
        "pickle": pickle.dumps({"weights": np.ones(3)}),
        "pickle-that-runs-code": pickle.dumps(RunsCode(str(tmp_path / "pwned"))),
        "npy": npy.getvalue(),
        "npz": npz.getvalue(),
        "torch-like-zip": archive.getvalue(),
        "json": json.dumps({"sizes": [3, 4, 2]}).encode(),
        "csv": b"a,b,c\n1,2,3\n",
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "plain-safetensors": safetensors_save({"0.weight": np.ones((4, 3), np.float32)}),
        "safetensors-other-metadata": safetensors_save(
            {"x": np.ones(2, np.float32)}, metadata={"format": "pt"}
        ),
    }


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_other_formats_are_refused_and_no_code_runs(
    good: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    for name, data in _foreign_files(tmp_path, good).items():
        message = expect_refused(kind, data, tmp_path / name)
        if name.startswith("pickle"):
            assert "pickle" in message
    assert not (tmp_path / "pwned").exists()
    other = "checkpoint" if kind == "model" else "model"
    expect_refused(kind, good[other], tmp_path / "swapped")
    loader, error = LOADERS[kind]
    (tmp_path / "folder").mkdir()
    with pytest.raises(error):
        loader(tmp_path / "folder")
    with pytest.raises(error, match="does not exist"):
        loader(tmp_path / "missing.safetensors")


def test_a_model_file_is_named_as_such_by_the_checkpoint_loader(
    good: dict[str, bytes], tmp_path: Path
) -> None:
    message = expect_refused("checkpoint", good["model"], tmp_path / "model")
    assert "a betaprop model file, not a checkpoint" in message


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize(
    "declared",
    [2**64 - 1, 2**63, 100 * 1024 * 1024 + 1, 10**9],
    ids=["2^64-1", "2^63", "100MiB+1", "1e9"],
)
def test_a_huge_declared_header_is_refused_at_once(
    good: dict[str, bytes], tmp_path: Path, kind: str, declared: int
) -> None:
    data = struct.pack("<Q", declared) + good[kind][8:]
    expect_refused(kind, data, tmp_path / "huge")


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_deeply_nested_json_is_refused(tmp_path: Path, kind: str) -> None:
    """JSON nested 100000 deep overflows Python's recursive parser: still our error."""
    for body in (b"[" * 100000 + b"]" * 100000, b'{"a":' * 100000 + b"1" + b"}" * 100000):
        expect_refused(kind, struct.pack("<Q", len(body)) + body, tmp_path / "deep")


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_huge_declared_tensor_shapes_are_refused(
    good: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    """A header that declares a tensor of 2^40 elements over a few bytes of data."""
    header, _ = _split(good[kind])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [2**20, 2**20]
    text = json.dumps(header).encode()
    rest = good[kind][8 + struct.unpack("<Q", good[kind][:8])[0] :]
    expect_refused(kind, struct.pack("<Q", len(text)) + text + rest, tmp_path / "shape")


# ------------------------------------------------------------------------------ CSV files
CSV_ALPHABET = st.sampled_from(
    list("0123456789.,-+eE \t;\"'\n\r") + ["nan", "inf", "NA", "?", "x", "é", "\ufeff", "\x00"]
)


def _read_or_data_error(path: Path) -> Dataset | None:
    try:
        return read_csv(str(path))
    except DataError as error:
        assert type(error) is DataError and str(error) and "\n" not in str(error)
        return None


@FUZZ
@given(text=st.lists(CSV_ALPHABET, max_size=300).map("".join))
def test_csv_reader_on_csv_like_text(tmp_path: Path, text: str) -> None:
    data = _read_or_data_error(_fresh(tmp_path / "fuzz.csv", text.encode()))
    if data is not None:
        assert data.X.ndim == 2 and data.X.shape[0] == len(data.target) >= 1
        assert np.isfinite(data.X).all()


@FUZZ
@given(blob=st.binary(max_size=2000))
def test_csv_reader_on_random_bytes(tmp_path: Path, blob: bytes) -> None:
    _read_or_data_error(_fresh(tmp_path / "fuzz.csv", blob))


@FUZZ
@given(
    table=st.integers(1, 6).flatmap(
        lambda columns: st.lists(
            st.lists(
                # every finite float the reader accepts: |v| <= 1e150 (larger ones are refused
                # up front, tests/test_faults_hostile.py), subnormals included
                st.floats(-1e150, 1e150, allow_nan=False, allow_infinity=False, width=64),
                min_size=columns,
                max_size=columns,
            ),
            min_size=1,
            max_size=8,
        )
    ),
    cut=st.integers(0, 10**6),
)
def test_csv_reader_reads_numbers_exactly_and_refuses_truncations(
    tmp_path: Path, table: list[list[float]], cut: int
) -> None:
    """A written table reads back bit for bit; any prefix of its bytes is read or refused."""
    columns = len(table[0])
    lines = [",".join(f"c{i}" for i in range(columns + 1))]
    lines += [",".join(repr(v) for v in row) + ",label" for row in table]
    text = "\n".join(lines) + "\n"
    data = read_csv(str(_fresh(tmp_path / "table.csv", text.encode())))
    np.testing.assert_array_equal(data.X, np.array(table))
    _read_or_data_error(_fresh(tmp_path / "cut.csv", text.encode()[: cut % (len(text) + 1)]))


def test_csv_reader_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        read_csv(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        read_csv(str(tmp_path / "missing.csv"))
