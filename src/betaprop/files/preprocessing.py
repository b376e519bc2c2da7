"""What training learned about the data, so that ``predict`` applies exactly the same.

``Preprocessing`` holds feature means and scales, the class labels and the scale of a
regression target, and for tables with text categories or gaps the category lists and fill
values, as plain JSON-ready fields, so that a model file can carry it (``to_dict`` /
``from_dict``; never pickle).

Tables are encoded as scikit-learn's
``ColumnTransformer([("num", Pipeline([SimpleImputer(strategy, add_indicator), StandardScaler()]),
numeric), ("cat", Pipeline([SimpleImputer("most_frequent"), OneHotEncoder(handle_unknown=...)]),
categorical)])`` would: ``fit`` runs scikit-learn's ``SimpleImputer`` and ``OneHotEncoder`` on the
training rows and keeps what they learned (``statistics_``, ``categories_``, the indicator's
``features_``); ``transform`` rebuilds the encoder from the stored categories. A boolean
is one category whatever its spelling (``category_text``), so that a column read as booleans
and the same column read as text (it had a gap) encode alike.
The table's imputation and encoding live in ``files.encoding``, the column statistics in
``files.statistics``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .datasets import (
    TASKS,
    DataError,
    Dataset,
    as_number,
    class_labels,
    from_frame,
    infer_task,
    numeric_labels,
)
from .encoding import BOOLEAN_SPELLINGS as BOOLEAN_SPELLINGS  # this module's before encoding.py
from .encoding import category_text as category_text
from .encoding import encode_table, fit_table
from .statistics import column_statistics

__all__ = ["Preprocessing", "IMPUTE"]

# the smallest scale a model file may hold: x / scale stays finite for any sane feature
_TINY = 1e-150
IMPUTE = ("mean", "median", "most_frequent", "constant")  # SimpleImputer's strategies

Array = np.ndarray


@dataclass
class Preprocessing:
    """What ``predict`` must apply: feature standardisation and the target's encoding.

    Features: x' = (x - mean) / scale per column (scale 1 for a constant column).
    Classification: ``classes`` in output order; one-hot rows d (or one column d = [label
    is classes[1]] for a single sigmoid output). Regression: d = (t - target_mean) /
    target_scale, undone on the way out.
    """

    feature_names: list[str]
    mean: list[float]
    scale: list[float]
    task: str
    target_name: str
    classes: list[str] | None = None
    target_mean: float = 0.0
    target_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    # tables: the raw input columns (None: they are feature_names), category lists of the
    # one-hot columns, fill values of imputed columns, columns with a missing-value indicator
    columns: list[str] | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)
    impute: str | None = None
    fill: dict[str, Any] = field(default_factory=dict)
    indicators: list[str] = field(default_factory=list)
    unknown: str = "ignore"
    unseen: dict[str, list[str]] = field(default_factory=dict)  # last transform's, not saved

    @classmethod
    def fit(
        cls,
        data: Any,
        task: str | None = None,
        rows: Array | None = None,
        *,
        target: str | None = None,
        impute: str | None = None,
        indicator: bool = False,
        categorical: Sequence[str] | str = "auto",
        unknown: str = "ignore",
    ) -> Preprocessing:
        """Learn the encoding and scaling from ``data`` (only ``rows``: the training split).

        ``data`` is a ``Dataset`` or a pandas DataFrame (its ``target`` column, by default the
        last, is the target). ``impute`` is ``SimpleImputer``'s strategy for numeric columns
        (mean, median, most_frequent, constant); categorical columns take the most frequent
        category (``"missing"`` with constant). ``indicator`` adds a 0/1 column per numeric
        column that had gaps. ``unknown`` ("ignore" or "error") is what ``transform`` does
        with a category that training did not see.
        """
        if not isinstance(data, Dataset):
            data = from_frame(
                data, target, categorical=categorical, allow_missing=impute is not None
            )
        if task is None:
            task = infer_task(data)
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        if impute is not None and impute not in IMPUTE:
            raise ValueError(f"impute must be one of {list(IMPUTE)}, got {impute!r}")
        if unknown not in ("ignore", "error"):
            raise ValueError(f"unknown must be 'ignore' or 'error', got {unknown!r}")
        prep = cls([], [], [], task, data.target_name)
        if data.frame is not None or impute is not None:
            X = prep._fit_table(data, rows, impute, indicator, unknown)
        else:
            prep.feature_names = list(data.feature_names)
            X = data.X if rows is None else data.X[rows]
        onehot = len(prep.feature_names) - sum(len(c) for c in prep.categories.values())
        width = len(prep.feature_names)  # a table's X: the columns before the one-hot ones
        mean, scale = np.zeros(width), np.ones(width)  # one-hot columns stay 0/1
        if onehot:  # the statistics of the other columns only
            mean[:onehot], scale[:onehot] = column_statistics(
                X if onehot == X.shape[1] else X[:, :onehot], prep.feature_names
            )
        scale[scale == 0.0] = 1.0
        prep.mean = [float(v) for v in mean]
        prep.scale = [float(v) for v in scale]
        if task == "classification":
            prep.classes = classes_of(class_labels(data.target), data.target_name)
        else:
            numbers = numeric_labels(data.target)
            if numbers is None:
                bad = next(v for v in data.target if as_number(str(v)) is None)
                raise DataError(
                    f"target {data.target_name!r} must be numeric for regression, got {bad!r}"
                )
            t = numbers if rows is None else numbers[rows]
            (target_mean,), (spread,) = column_statistics(t[:, None], [data.target_name])
            prep.target_mean = float(target_mean)
            prep.target_scale = float(spread) if spread > 0 else 1.0
        for name, value in prep.fill.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise DataError(f"column {name!r}: its fill value is {value} ({impute}); "
                                "rescale the column")  # fmt: skip
        return prep

    @classmethod
    def fit_parts(
        cls,
        parts: Any,
        task: str | None = None,
        agreement: Any = None,
        *,
        target: str | None = None,
        impute: str | None = None,
        indicator: bool = False,
        categorical: Sequence[str] | str = "auto",
        unknown: str = "ignore",
        reading: dict[str, Any] | None = None,
    ) -> Preprocessing:
        """``fit`` from rows seen part by part, or held by the ranks of an ``Agreement``.

        ``parts`` (this rank's training rows) is a list of DataFrames (or ``Dataset``s read
        with ``from_frame(..., features=...)``: every column, even one a part has no value
        in), or a function returning an iterator over them (read again by a median's rounds,
        where a list keeps its numeric values). ``reading``: more ``from_frame`` arguments
        for DataFrame parts (source, drop, na_values, decimal, thousands, sep, dtype). Every
        rank calls this together and gets the same ``Preprocessing`` as ``fit`` on all rows:
        means and scales to rounding, the rest exactly (``files.fit_parts``).
        """
        from .agreement import Agreement
        from .fit_parts import fit_parts

        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        if impute is not None and impute not in IMPUTE:
            raise ValueError(f"impute must be one of {list(IMPUTE)}, got {impute!r}")
        if unknown not in ("ignore", "error"):
            raise ValueError(f"unknown must be 'ignore' or 'error', got {unknown!r}")
        options = {"target": target, "impute": impute, "indicator": indicator,
                   "categorical": categorical, "unknown": unknown,
                   "reading": dict(reading or {})}  # fmt: skip
        return fit_parts(cls, parts, task, agreement or Agreement(None), options)

    def _fit_table(
        self, data: Dataset, rows: Array | None, impute: str | None, indicator: bool, unknown: str
    ) -> Array:
        """Fit SimpleImputer and OneHotEncoder on the training rows; their encoded features
        (``encoding.fit_table``)."""
        return fit_table(self, data, rows, impute, indicator, unknown)

    def encode_table(self, data: Dataset, rows: Array | None = None) -> Array:
        """The encoded features (n, N_0) of a table: numeric columns imputed, indicators,
        one-hot columns (scikit-learn's OneHotEncoder with the stored categories); the raw
        columns are found by name, in any order. Before the standardisation."""
        return encode_table(self, data, rows)

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def columns_of(self, data: Dataset) -> Array:
        """The model's feature columns of ``data``, in the model's order (by name); a table
        is encoded (``encode_table``) first."""
        if self.columns is not None:
            return self.encode_table(data)
        if data.feature_names == self.feature_names:
            return data.X
        missing = [name for name in self.feature_names if name not in data.feature_names]
        if missing:
            raise DataError(
                f"{data.source} lacks the feature columns {missing} that the model was trained on"
            )
        index = [data.feature_names.index(name) for name in self.feature_names]
        return data.X[:, index]

    def transform(self, X: Any, dtype: str = "float64") -> Array:
        """Standardised features (x - mean) / scale, computed in float64, then cast.

        ``X`` is the encoded features (n, N_0), or a raw pandas DataFrame with the model's
        columns in any order, which is encoded first (imputed, one-hot).
        """
        if not isinstance(X, np.ndarray) and hasattr(X, "columns"):
            X = self.columns_of(self.read_frame(X))
        X = np.asarray(X)
        mean, scale = np.array(self.mean), np.array(self.scale)
        # the columns up to the last that is not (x - 0) / 1: one-hot blocks are copied as
        # they are (the same numbers, without two float64 passes over a wide table)
        moved = np.flatnonzero((mean != 0.0) | (scale != 1.0))
        k = int(moved[-1]) + 1 if len(moved) else 0
        if k == X.shape[-1] or X.ndim != 2:
            Z = (np.asarray(X, dtype=np.float64) - mean) / scale
            return Z.astype(dtype)
        Z = X.astype(dtype)
        Z[:, :k] = (np.asarray(X[:, :k], dtype=np.float64) - mean[:k]) / scale[:k]
        return Z

    def read_frame(self, frame: Any, source: str = "the table") -> Dataset:
        """A raw DataFrame read as the model's input table (its columns by name)."""
        return from_frame(
            frame,
            require_target=False,
            features=self.columns if self.columns is not None else self.feature_names,
            categorical=list(self.categories),
            detect=self.columns is None,  # the model's columns have their kinds
            allow_missing=bool(self.fill),
            source=source,
        )

    def describe(self) -> list[tuple[str, str]]:
        """What ``info`` and the final table say about the encoding: (what, value) rows."""
        rows = []
        if self.categories:
            rows.append(("one-hot", ", ".join(f"{c} ({len(k)})" for c, k in
                                              self.categories.items())))  # fmt: skip
            rows.append(("unseen categories", self.unknown))
        if self.fill:
            shown = ", ".join(f"{c}={v:.4g}" if isinstance(v, float) else f"{c}={v}"
                              for c, v in list(self.fill.items())[:8])  # fmt: skip
            rows.append((f"imputed ({self.impute})", shown))
        if self.indicators:
            rows.append(("missing indicators", ", ".join(self.indicators)))
        return rows

    def encode(self, target: Array, n_outputs: int, dtype: str = "float64") -> Array:
        """Target rows d for the network: one-hot, a single 0/1 column, or scaled values."""
        if self.task == "regression":
            numbers = numeric_labels(target)
            if numbers is None:
                raise DataError(f"target {self.target_name!r} must be numeric for regression")
            d = (numbers - self.target_mean) / self.target_scale
            return d.reshape(-1, 1).astype(dtype)
        assert self.classes is not None
        position = {label: k for k, label in enumerate(self.classes)}
        labels = class_labels(target)
        unknown = sorted({label for label in labels if label not in position})
        if unknown:
            raise DataError(
                f"target {self.target_name!r} has classes {unknown[:5]} that the model does "
                f"not know; its classes are {self.classes}"
            )
        k = np.array([position[label] for label in labels])
        if n_outputs == 1:
            return (k == 1).astype(dtype).reshape(-1, 1)
        return np.eye(n_outputs, dtype=dtype)[k]

    def decode(self, P: Array) -> list[str] | Array:
        """Network outputs (n, N_Q) back to class labels or target values."""
        if self.task == "regression":
            return P[:, 0].astype(np.float64) * self.target_scale + self.target_mean
        assert self.classes is not None
        if P.shape[1] == 1:
            return [self.classes[int(p > 0.5)] for p in P[:, 0]]
        return [self.classes[k] for k in P.argmax(axis=1)]

    def labels(self, target: Array) -> list[str]:
        """Class labels of a target column in the model's spelling."""
        return class_labels(target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (floats round-trip exactly through JSON)."""
        return {
            "feature_names": self.feature_names,
            "mean": self.mean,
            "scale": self.scale,
            "task": self.task,
            "target_name": self.target_name,
            "classes": self.classes,
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
            "extra": self.extra,
            "columns": self.columns,
            "categories": self.categories,
            "impute": self.impute,
            "fill": self.fill,
            "indicators": self.indicators,
            "unknown": self.unknown,
        }

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Preprocessing:
        """Rebuild from ``to_dict`` output; raises ValueError on anything malformed."""
        try:
            prep = cls(
                [str(v) for v in fields["feature_names"]],
                [float(v) for v in fields["mean"]],
                [float(v) for v in fields["scale"]],
                str(fields["task"]),
                str(fields["target_name"]),
                None if fields["classes"] is None else [str(c) for c in fields["classes"]],
                float(fields["target_mean"]),
                float(fields["target_scale"]),
                dict(fields.get("extra", {})),
                None if fields.get("columns") is None else [str(c) for c in fields["columns"]],
                {str(c): [str(k) for k in v] for c, v in fields.get("categories", {}).items()},
                None if fields.get("impute") is None else str(fields["impute"]),
                {str(c): v for c, v in fields.get("fill", {}).items()},
                [str(c) for c in fields.get("indicators", [])],
                str(fields.get("unknown", "ignore")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"preprocessing must hold the fields of Preprocessing: {error}"
            ) from None
        if prep.task not in TASKS or not (
            len(prep.mean) == len(prep.scale) == len(prep.feature_names)
        ):
            raise ValueError("preprocessing fields are inconsistent")
        prep._check_meaning()
        return prep

    def _check_meaning(self) -> None:
        """Refuse fields that are well-formed JSON but cannot mean anything (a crafted file)."""
        if not all(math.isfinite(v) and v != 0 for v in self.scale):
            raise ValueError("preprocessing scale must be finite and non-zero")
        if not all(v >= _TINY for v in self.scale):
            bad = min(self.scale)
            raise ValueError(f"preprocessing scale must be >= {_TINY:g}, got {bad!r}")
        if not all(math.isfinite(v) for v in self.mean):
            raise ValueError("preprocessing mean must be finite")
        if not (math.isfinite(self.target_mean) and math.isfinite(self.target_scale)
                and self.target_scale >= _TINY):  # fmt: skip
            raise ValueError(
                f"preprocessing target scale must be finite and >= {_TINY:g}, got "
                f"{self.target_scale!r} (mean {self.target_mean!r})"
            )
        for name, levels in self.categories.items():
            if len(set(levels)) != len(levels):
                raise ValueError(f"preprocessing categories of {name!r} must be distinct")
        for what, names in (("feature names", self.feature_names), ("columns", self.columns)):
            if names is not None and len(set(names)) != len(names):
                raise ValueError(f"preprocessing {what} must be distinct, got {names[:10]}")
        if self.task == "classification":
            if self.classes is None or len(self.classes) < 2:
                raise ValueError(
                    f"preprocessing classes must list >= 2 classes, got {self.classes!r}"
                )
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"preprocessing classes must be distinct, got {self.classes}")
        elif self.classes is not None:
            raise ValueError("preprocessing classes must be null for regression")
        if self.unknown not in ("ignore", "error"):
            raise ValueError(f"preprocessing unknown must be 'ignore' or 'error', got "
                             f"{self.unknown!r}")  # fmt: skip
        if self.columns is not None:
            lacking = [c for c in (*self.categories, *self.fill, *self.indicators)
                       if c not in self.columns]  # fmt: skip
            numeric = [c for c in self.columns if c not in self.categories]
            expected = (
                len(numeric) + len(self.indicators) + sum(len(k) for k in self.categories.values())
            )
            if lacking or expected != len(self.feature_names):
                raise ValueError("preprocessing columns, categories and features are inconsistent")
            for name, value in self.fill.items():
                numeric_fill = name not in self.categories
                if numeric_fill and not (isinstance(value, (int, float)) and math.isfinite(value)):
                    raise ValueError(
                        f"preprocessing fill of {name!r} must be finite, got {value!r}"
                    )
        elif self.categories or self.fill or self.indicators:
            raise ValueError("preprocessing categories or fill values need the columns field")

    def check_network(self, sizes: Sequence[int]) -> None:
        """Refuse a network whose layers contradict the preprocessing: N_0 features, and N_Q
        outputs for the task (1 for regression; one per class, or 1 for two classes)."""
        if len(self.feature_names) != sizes[0]:
            raise ValueError(
                f"the preprocessing has {len(self.feature_names)} features for "
                f"N_0 = {sizes[0]} inputs"
            )
        outputs = sizes[-1]
        if self.task == "regression" and outputs != 1:
            raise ValueError(f"a regression model must have N_Q = 1 output, got {outputs}")
        if self.task == "classification" and not (
            outputs == self.n_classes or (outputs == 1 and self.n_classes == 2)
        ):
            raise ValueError(
                f"the preprocessing has {self.n_classes} classes for N_Q = {outputs} outputs"
            )


def classes_of(labels: Sequence[str], target_name: str) -> list[str]:
    """The classes of a classification target, sorted (``_sorted_classes``); at least 2, or
    a one-line ``DataError``."""
    classes = _sorted_classes(labels)
    if len(classes) < 2:
        raise DataError(
            f"target {target_name!r} must have at least 2 classes for classification, got {classes}"
        )
    return classes


def _sorted_classes(labels: Sequence[str]) -> list[str]:
    """Distinct labels in output order: by value when all are numbers (integers compared
    exactly, as Python ints: 2^63 before 2^63 + 1), else as text."""
    unique = set(labels)
    numbers = {label: _exact_number(label) for label in unique}
    if all(v is not None for v in numbers.values()):
        return sorted(unique, key=lambda label: (numbers[label], label))
    return sorted(unique)


def _exact_number(label: str) -> int | float | None:
    if "_" not in label:  # as as_number: 1_000 is no number in a data file
        with contextlib.suppress(ValueError):
            return int(label)
    return as_number(label)
