"""A data file as a ``Stream`` of parts (``files.parts``), encoded part by part.

``table_stream(path)`` plans the file's parts (Parquet row groups, CSV byte ranges, ``.npy``
row ranges), then makes one pass over them to fit the ``Preprocessing`` as one process fits
it on the whole table: the feature means and standard deviations combined part by part with
Chan et al.'s pairwise update (count, mean and sum of squared deviations; never Σx and Σx²,
which cancel), the class labels as the union of the parts' labels in ``Preprocessing``'s
order, a regression target's mean and spread the same way. Training then reads each part
again, every epoch, and encodes it (x - mean) / scale and one-hot (or scaled) targets. Only
one part is held at a time.

Tables of numbers only: a column of text categories, or gaps to impute, need the category
lists and medians agreed over the parts (``files.agreement``): refused with one line here.
A ``.npy`` array's last column is the target, the others its features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..training.stream import SHUFFLE_BUFFER, Stream
from .datasets import MAX_INTEGER_CLASSES, class_labels, infer_task, numeric_labels
from .errors import DataError
from .frames import Dataset, from_frame
from .parts import PART_BYTES, Part, plan_parts, read_part
from .preprocessing import Preprocessing
from .statistics import column_statistics

__all__ = ["table_stream", "TableStream", "Moments"]

Array = np.ndarray

_BLOCK_ROWS = 8192  # rows encoded at a time: (x - mean) / scale takes float64 scratch


class Moments:
    """Count, mean and sum of squared deviations of columns, combined part by part.

    ``add(X)`` merges a block of rows (Chan, Golub and LeVeque's pairwise update):
    delta = mean_b - mean_a, mean = mean_a + delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a
    n_b / n. ``std`` is sqrt(M2 / n), the population deviation ``StandardScaler`` uses.
    """

    def __init__(self, width: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(width), np.zeros(width)

    def add(self, X: Array, names: list[str]) -> None:
        if not len(X):
            return
        mean_b, std_b = column_statistics(X, names)  # float64 whatever X's dtype
        n_a, n_b = self.n, len(X)
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + np.square(std_b) * n_b + np.square(delta) * (n_a * n_b / n)
        self.n = n

    @property
    def std(self) -> Array:
        return np.sqrt(self.m2 / max(self.n, 1))


def table_stream(
    path: str,
    target: str | None = None,
    *,
    task: str | None = None,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    part_bytes: int = PART_BYTES,
    sep: str | None = None,
    outputs: int | None = None,
    dtype: str = "float32",
) -> TableStream:
    """The training rows of a data file as a ``Stream`` (``fit(net, stream)``).

    ``target``: the target column (default: the last); ``task``: "classification" or
    "regression" (default: inferred as ``infer_task`` does, from the labels of every part);
    ``outputs``: N_Q (default: one per class, 1 for regression); ``part_bytes``: the size
    of a part (Parquet row groups are merged up to it). The stream's ``preprocessing`` is
    the fitted ``Preprocessing`` (for the model file and ``predict``). Raises a one-line
    ``DataError``.
    """
    parts = plan_parts(path, sep=sep, part_bytes=part_bytes)
    first = _FirstPass(path, target, sep, dtype)
    rows = [first.add(part) for part in parts]
    prep = first.preprocessing(task)
    stream = TableStream(parts, first, prep, rows, shuffle_buffer, dtype)
    if outputs is not None:
        stream.outputs = outputs
    return stream


class TableStream(Stream):
    """A data file's parts as a ``Stream``: ``read(part)`` encodes a part's rows with the
    fitted ``preprocessing``, its targets for ``outputs`` columns (N_Q: one per class, or
    1; set it to the network's N_Q, e.g. 1 for two classes and a sigmoid output);
    ``dataset(part)`` is the part as read (its raw target, for metrics in its own units)."""

    def __init__(
        self,
        parts: list[Part],
        first: _FirstPass,
        prep: Preprocessing,
        rows: list[int],
        shuffle_buffer: int,
        dtype: str,
    ) -> None:
        super().__init__(parts, self._encoded, rows=rows, shuffle_buffer=shuffle_buffer,
                         preprocessing=prep)  # fmt: skip
        self.first, self.dtype = first, dtype
        self.outputs = prep.n_classes or 1

    def dataset(self, part: Part) -> Dataset:
        return self.first.dataset(part)

    def subset(self, chosen: list[int]) -> TableStream:
        """The same file's parts ``chosen`` (indices into ``parts``) as a stream of their own."""
        parts, rows = [self.parts[k] for k in chosen], [self.rows[k] for k in chosen]
        prep = self.preprocessing
        stream = TableStream(parts, self.first, prep, rows, self.shuffle_buffer, self.dtype)
        stream.outputs = self.outputs
        return stream

    def _encoded(self, part: Part) -> tuple[Array, Array]:
        """The part's rows encoded. The first pass checked every cell (``from_frame``), so
        a part whose columns are still plain finite numbers with every target present is
        taken as it is (a third of an epoch's time went to checking again); anything else
        goes through ``from_frame`` again, with its one-line errors."""
        prep = self.preprocessing
        frame = self.first.frame(part)
        raw, target = _plain(frame, prep, self.dtype)
        if raw is None:
            data = self.first.checked(frame)
            raw, target = prep.columns_of(data), data.target
        X = np.empty(raw.shape, dtype=self.dtype)
        for start in range(0, len(raw), _BLOCK_ROWS):  # float64 scratch of a block, not a part
            block = raw[start : start + _BLOCK_ROWS]
            X[start : start + _BLOCK_ROWS] = prep.transform(block, self.dtype)
        return X, prep.encode(target, self.outputs, dtype=self.dtype)


def _plain(frame: Any, prep: Preprocessing, dtype: str) -> tuple[Array | None, Any]:
    """The model's feature columns as numbers and the target column, or (None, None) when a
    column is not plain numbers, a number is not finite or a target is missing."""
    try:
        raw = frame[prep.feature_names].to_numpy(dtype=dtype)
        target = frame[prep.target_name]
    except (KeyError, TypeError, ValueError):
        return None, None
    if not np.isfinite(raw).all() or bool(target.isna().any()):
        return None, None
    return raw, target.to_numpy()


class _FirstPass:
    """The pass over the parts that fits the preprocessing: moments, labels, the task."""

    def __init__(self, path: str, target: str | None, sep: str | None, dtype: str) -> None:
        self.path, self.target, self.sep, self.dtype = path, target, sep, dtype
        self.features: Moments | None = None
        self.targets = Moments(1)
        self.labels: set[str] = set()
        self.numeric, self.tasks = True, set[str]()
        self.first: Dataset | None = None  # the first part: feature and target names

    def frame(self, part: Part) -> Any:
        """A part read as a DataFrame (a ``.npy`` part's last column named "target")."""
        frame, _ = read_part(self.path, part, sep=self.sep)
        if part.kind == "parquet":  # pyarrow's pool (mimalloc) keeps freed pages otherwise:
            import pyarrow as pa  # part after part, they added up to 2-3 parts' worth

            pa.default_memory_pool().release_unused()
        if isinstance(frame, np.ndarray):
            import pandas as pd

            names = [f"x{j}" for j in range(frame.shape[1] - 1)] + ["target"]
            frame = pd.DataFrame(np.asarray(frame), columns=names)
        return frame

    def dataset(self, part: Part) -> Dataset:
        """A part read as a checked ``Dataset`` of numbers."""
        return self.checked(self.frame(part))

    def checked(self, frame: Any) -> Dataset:
        """A part's DataFrame as a ``Dataset`` (``from_frame``'s checks); text refused."""
        data = from_frame(frame, self.target, source=self.path, dtype=self.dtype)
        if data.frame is not None:
            raise DataError(
                f"{self.path}: streaming takes columns of numbers; {data.categorical[:3]} "
                "hold text categories (train without --stream, or encode them first)"
            )
        return data

    def add(self, part: Part) -> int:
        """Part ``part``'s statistics merged in; returns its rows."""
        data = self.dataset(part)
        if self.features is None:
            self.features, self.first = Moments(data.X.shape[1]), data
        self.features.add(data.X, data.feature_names)
        self.tasks.add(infer_task(data))
        numbers = numeric_labels(data.target)
        self.numeric = self.numeric and numbers is not None
        if numbers is not None:
            self.targets.add(numbers[:, None], [data.target_name])
        if len(self.labels) <= MAX_INTEGER_CLASSES or not self.numeric:
            self.labels.update(class_labels(data.target))
        return len(data.X)

    def preprocessing(self, task: str | None) -> Preprocessing:
        """The ``Preprocessing`` one process fits on the whole table, from the pass."""
        assert self.features is not None and self.first is not None
        if task is None:
            many = self.numeric and len(self.labels) > MAX_INTEGER_CLASSES
            task = "regression" if "regression" in self.tasks or many else "classification"
        scale = self.features.std
        scale[scale == 0.0] = 1.0
        first = self.first
        prep = Preprocessing(
            list(first.feature_names),
            [float(v) for v in self.features.mean],
            [float(v) for v in scale],
            task,
            first.target_name,
        )
        if task == "classification":
            prep.classes = _ordered(sorted(self.labels), first.target_name)
            if len(prep.classes) < 2:
                raise DataError(
                    f"target {first.target_name!r} must have at least 2 classes for "
                    f"classification, got {prep.classes}"
                )
        elif not self.numeric:
            raise DataError(f"target {first.target_name!r} must be numeric for regression")
        else:
            prep.target_mean = float(self.targets.mean[0])
            spread = float(self.targets.std[0])
            prep.target_scale = spread if spread > 0 else 1.0
        return prep


def _ordered(labels: list[str], target: str) -> list[str]:
    """The labels in the order ``Preprocessing`` gives classes (numbers by value)."""
    import pandas as pd

    frame = pd.DataFrame({f"{target} (not it)": np.zeros(len(labels)), target: labels})
    classes = Preprocessing.fit(frame, "classification", target=target).classes
    assert classes is not None
    return classes
