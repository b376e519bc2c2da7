"""What training learned about the data, so that ``predict`` applies exactly the same.

``Preprocessing`` holds feature means and scales, the class labels and the scale of a
regression target as plain JSON-ready fields, so that a model file can carry it
(``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .datasets import TASKS, DataError, Dataset, as_number, class_labels, numeric_labels

__all__ = ["Preprocessing"]

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

    @classmethod
    def fit(cls, data: Dataset, task: str, rows: Array | None = None) -> Preprocessing:
        """Learn the scaling from ``data`` (only the given ``rows``: the training split)."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        X = data.X if rows is None else data.X[rows]
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0.0] = 1.0
        prep = cls(
            list(data.feature_names),
            [float(v) for v in mean],
            [float(v) for v in scale],
            task,
            data.target_name,
        )
        if task == "classification":
            prep.classes = _sorted_classes(class_labels(data.target))
            if len(prep.classes) < 2:
                raise DataError(
                    f"target {data.target_name!r} must have at least 2 classes for "
                    f"classification, got {prep.classes}"
                )
        else:
            numbers = numeric_labels(data.target)
            if numbers is None:
                bad = next(v for v in data.target if as_number(str(v)) is None)
                raise DataError(
                    f"target {data.target_name!r} must be numeric for regression, got {bad!r}"
                )
            t = numbers if rows is None else numbers[rows]
            prep.target_mean = float(t.mean())
            spread = float(t.std())
            prep.target_scale = spread if spread > 0 else 1.0
        return prep

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def columns_of(self, data: Dataset) -> Array:
        """The model's feature columns of ``data``, in the model's order (by name)."""
        if data.feature_names == self.feature_names:
            return data.X
        missing = [name for name in self.feature_names if name not in data.feature_names]
        if missing:
            raise DataError(
                f"{data.source} lacks the feature columns {missing} that the model was trained on"
            )
        index = [data.feature_names.index(name) for name in self.feature_names]
        return data.X[:, index]

    def transform(self, X: Array, dtype: str = "float64") -> Array:
        """Standardised features (x - mean) / scale, computed in float64, then cast."""
        Z = (np.asarray(X, dtype=np.float64) - np.array(self.mean)) / np.array(self.scale)
        return Z.astype(dtype)

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
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"preprocessing must hold the fields of Preprocessing: {error}"
            ) from None
        if prep.task not in TASKS or not (
            len(prep.mean) == len(prep.scale) == len(prep.feature_names)
        ):
            raise ValueError("preprocessing fields are inconsistent")
        if not all(math.isfinite(v) and v != 0 for v in prep.scale):
            raise ValueError("preprocessing scale must be finite and non-zero")
        return prep


def _sorted_classes(labels: Sequence[str]) -> list[str]:
    unique = set(labels)
    numbers = {label: as_number(label) for label in unique}
    if all(v is not None for v in numbers.values()):
        return sorted(unique, key=lambda label: (numbers[label], label))
    return sorted(unique)
