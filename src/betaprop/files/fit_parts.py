"""``Preprocessing.fit_parts``: the preprocessing of rows seen part by part, or held by K ranks.

One pass summarises each part (per column: the moments and gaps of a numeric column, the
category counts of a text one; the target's labels or moments); the summaries are combined
in order within a rank, gathered over ranks (``files.agreement``) and combined in rank order,
so every rank learns the same ``Preprocessing`` that ``Preprocessing.fit`` learns from all
rows: means and scales to float rounding (Chan's update, 1e-12 relative), categories, classes,
most frequent values and medians exactly (medians take a few more passes: exact selection).

A column that is text in one part and numbers in another (each part's kinds are detected on
its own rows) is agreed by widening: it is a category where any part saw text, and a part
that saw only gaps in it agrees; a part that saw numbers in it is refused, as one process
refuses a column of numbers and text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .agreement import (
    Agreement,
    Counts,
    Moments,
    combine,
    combine_all,
    counts,
    median_of,
    merge_counts,
    middle_orders,
    moments,
    most_frequent,
    order_statistics,
)
from .datasets import (
    MAX_INTEGER_CLASSES,
    TASKS,
    DataError,
    Dataset,
    class_labels,
    from_frame,
    numeric_labels,
)
from .encoding import category_text, table_of
from .kinds import MISSING, missing_mask

if TYPE_CHECKING:
    from .preprocessing import Preprocessing

__all__ = ["fit_parts"]

Array = np.ndarray
Parts = Sequence[Any] | Callable[[], Iterable[Any]] | Iterable[Any]


@dataclass
class _Column:
    """One column's summary: numeric (moments of present values, smallest and largest,
    counts of values for most_frequent) or categorical (counts of categories); its gaps."""

    numeric: bool
    missing: int = 0
    stats: Moments | None = None
    low: float = np.inf
    high: float = -np.inf
    values: Counts | None = None
    example: str | None = None  # a present value of a categorical column, for messages

    def merge(self, other: _Column, name: str) -> _Column:
        if self.numeric != other.numeric:  # widening: number < text
            text, number = (other, self) if self.numeric else (self, other)
            if number.stats is not None and number.stats.n[0] > 0:
                raise DataError(
                    f"column {name!r} holds numbers in some rows and text ({text.example!r}) "
                    f"in others; declare it categorical (--categorical {name}) or correct it"
                )
            return _Column(False, text.missing + number.missing, None, np.inf, -np.inf,
                           text.values, text.example)  # fmt: skip
        return _Column(
            self.numeric,
            self.missing + other.missing,
            combine_all([self.stats, other.stats]),
            min(self.low, other.low),
            max(self.high, other.high),
            merge_counts([self.values, other.values]),
            self.example if self.example is not None else other.example,
        )


@dataclass
class _Summary:
    """A part's (a rank's, all ranks') summary: feature columns, target."""

    names: list[str] | None = None
    target_name: str | None = None
    columns: dict[str, _Column] = field(default_factory=dict)
    text_target: bool = False
    integral: bool = True
    labels: set[str] = field(default_factory=set)
    target: Moments | None = None
    bad_target: str | None = None  # a label that is no number (for regression's message)

    def merge(self, other: _Summary) -> _Summary:
        if other.names is None:
            return self
        if self.names is None:
            return other
        if other.names != self.names or other.target_name != self.target_name:
            raise DataError(
                f"the parts disagree on their columns: {self.names[:8]} (target "
                f"{self.target_name!r}) and {other.names[:8]} (target {other.target_name!r})"
            )
        columns = {n: self.columns[n].merge(other.columns[n], n) for n in self.names}
        return _Summary(
            self.names,
            self.target_name,
            columns,
            self.text_target or other.text_target,
            self.integral and other.integral,
            self.labels | other.labels,
            combine_all([self.target, other.target]),
            self.bad_target or other.bad_target,
        )


def _summary(
    data: Dataset, task: str | None, impute: str | None, kept: list[dict[str, Array]] | None
) -> _Summary:
    """One pass over one part's rows; with ``kept``, the present values of its numeric
    columns are appended to it (for the median's rounds, parts already in memory)."""
    import pandas as pd

    table = table_of(data)
    columns = {}
    if kept is not None:
        kept.append({})
    for name in data.feature_names:
        if name in data.categorical:
            cells = table[name].to_numpy(dtype=object)
            absent = pd.isna(cells)
            text = category_text(cells[~absent].astype(str), []).astype(str)
            example = str(text[0]) if len(text) else None
            columns[name] = _Column(False, int(absent.sum()), values=counts(text), example=example)
        else:
            x = table[name].to_numpy(dtype=np.float64)
            present = x[~np.isnan(x)]
            if kept is not None:
                kept[-1][name] = present
            columns[name] = _Column(
                True,
                len(x) - len(present),
                moments(present),
                float(present.min()) if len(present) else np.inf,
                float(present.max()) if len(present) else -np.inf,
                counts(present) if impute == "most_frequent" else None,
            )
    summary = _Summary(list(data.feature_names), data.target_name, columns)
    numbers = numeric_labels(data.target)
    if numbers is None:
        summary.text_target = True
        summary.labels = set(class_labels(data.target))
        summary.bad_target = next(str(v) for v in data.target if _not_number(v))
        return summary
    summary.integral = bool(np.all(numbers == np.round(numbers)))
    summary.target = moments(numbers)
    if task == "classification" or summary.integral:
        labels = class_labels(data.target)
        if task != "classification":  # more than the most classes: regression (capped)
            labels = list(dict.fromkeys(labels))[: MAX_INTEGER_CLASSES + 1]
        summary.labels = set(labels)
    return summary


def _not_number(value: Any) -> bool:
    from .datasets import as_number

    return as_number(str(value)) is None


def _datasets(parts: Parts, options: dict[str, Any]) -> Callable[[], Iterator[Dataset]]:
    """A function that reads the parts again (as Datasets) each time it is called; a one-shot
    iterator can be read once."""
    used = [False]

    def read() -> Iterator[Dataset]:
        if callable(parts):
            items: Iterable[Any] = parts()
        elif isinstance(parts, Sequence):
            items = parts
        else:
            if used[0]:
                raise ValueError(
                    "the median needs the parts twice: give a list of parts, or a function "
                    "that returns an iterator over them"
                )
            used[0], items = True, parts
        for item in items:
            if isinstance(item, Dataset):
                yield item
                continue
            header = [str(c) for c in item.columns]
            name = options["target"] if options["target"] is not None else header[-1]
            gaps = (*MISSING, *(str(v).strip().lower() for v in options.get("na_values", ())))
            if name in header and missing_mask(item[name], gaps).all():
                continue  # rows without a target teach nothing (fit leaves them out)
            # every column, even one with no value in this part: fit_parts leaves out those
            # with no value in any part
            drop = options.get("drop", ())
            features = [c for c in header if c != name and c not in drop]
            yield from_frame(item, features=features, **options)

    return read


def fit_parts(
    cls: type[Preprocessing],
    parts: Parts,
    task: str | None,
    agreement: Agreement | None,
    options: dict[str, Any],
) -> Preprocessing:
    """``Preprocessing.fit_parts`` (its docstring says what), past the argument checks."""
    agreement = agreement or Agreement(None)
    impute, indicator, unknown = options["impute"], options["indicator"], options["unknown"]
    frame_options = {**options["reading"], "target": options["target"]}
    frame_options.update(categorical=options["categorical"], allow_missing=impute is not None)
    read = _datasets(parts, frame_options)
    local = _Summary()
    # parts in memory (a list, an iterator): the median's rounds read their kept values;
    # parts read on demand (a function) are read again, round by round
    kept: list[dict[str, Array]] | None = [] if impute == "median" and not callable(parts) else None
    for data in read():
        local = local.merge(_summary(data, task, impute, kept))
    total = _Summary()
    for piece in agreement.gather(local):
        total = total.merge(piece)
    if total.names is None:
        raise DataError("no part holds any row: there is nothing to learn the preprocessing from")
    total.names = [n for n in total.names if not _empty(total.columns[n])]  # as from_frame
    if not total.names:
        raise DataError(f"no feature column besides the target {total.target_name!r} has a value")
    if task is None:
        small = len(total.labels) <= MAX_INTEGER_CLASSES
        task = "classification" if total.text_target or (total.integral and small) else "regression"
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    assert total.target_name is not None
    prep = cls([], [], [], task, total.target_name)
    numeric = [n for n in total.names if total.columns[n].numeric]
    table = impute is not None or len(numeric) < len(total.names)
    if table:
        prep.columns, prep.impute, prep.unknown = list(total.names), impute, unknown
        _fill(prep, total, numeric, impute, indicator, read, kept, agreement)
        _categories(prep, total, impute)
    prep.feature_names = (
        numeric
        + [f"{c}_missing" for c in prep.indicators]
        + [f"{c}={k}" for c in total.names if c in prep.categories for k in prep.categories[c]]
    )
    _scales(prep, total, numeric)
    _target(prep, total)
    return prep


def _fill(
    prep: Preprocessing,
    total: _Summary,
    numeric: list[str],
    impute: str | None,
    indicator: bool,
    read: Callable[[], Iterator[Dataset]],
    kept: list[dict[str, Array]] | None,
    agreement: Agreement,
) -> None:
    """SimpleImputer(strategy=impute, add_indicator=indicator, keep_empty_features=True)'s
    statistics of the numeric columns: 0 for a column without values."""
    if impute is None or not numeric:
        return
    column = total.columns
    if impute == "median":
        counts_ = [_n(column[n]) for n in numeric]
        bounds = [(column[n].low, column[n].high, k) if k else (0.0, 0.0, 0)
                  for n, k in zip(numeric, counts_, strict=True)]  # fmt: skip

        def passes() -> Iterator[list[Array]]:
            if kept is not None:
                nothing = np.empty(0)
                yield from ([values.get(n, nothing) for n in numeric] for values in kept)
                return
            for data in read():
                table = table_of(data)
                yield [_present(table[n].to_numpy(dtype=np.float64)) for n in numeric]

        middles = order_statistics(passes, [middle_orders(k) for k in counts_], agreement, bounds)
        fills = [median_of(m, k) for m, k in zip(middles, counts_, strict=True)]
    elif impute == "mean":
        fills = [_mean(column[n]) for n in numeric]
    elif impute == "most_frequent":
        fills = [_mode(column[n]) for n in numeric]
    else:  # constant: SimpleImputer's fill_value for numbers, 0
        fills = [0.0] * len(numeric)
    prep.fill = dict(zip(numeric, fills, strict=True))
    if indicator:
        prep.indicators = [n for n in numeric if column[n].missing > 0]


def _repeated(n: int, value: float) -> Moments:
    """The moments of n copies of one value."""
    return Moments(np.array([float(n)]), np.array([float(value)]), np.zeros(1))


def _empty(column: _Column) -> bool:
    """A column without any value in any row (``from_frame`` leaves it out)."""
    if column.numeric:
        return _n(column) == 0
    return column.values is None or not len(column.values.values)


def _n(column: _Column) -> int:
    return int(column.stats.n[0]) if column.stats is not None else 0


def _mean(column: _Column) -> float:
    return float(column.stats.mean[0]) if column.stats is not None and _n(column) else 0.0


def _mode(column: _Column) -> float:
    return float(most_frequent(column.values)) if column.values is not None else 0.0


def _present(x: Array) -> Array:
    return x[~np.isnan(x)]


def _categories(prep: Preprocessing, total: _Summary, impute: str | None) -> None:
    """SimpleImputer(most_frequent, or constant "missing") and OneHotEncoder on each
    categorical column: the fill value and the sorted categories."""
    for name in total.names or []:
        column = total.columns[name]
        if column.numeric:
            continue
        seen = column.values
        levels = [] if seen is None else [str(v) for v in seen.values]
        if column.missing:
            if impute is None:
                raise DataError(
                    f"categorical column {name!r} has missing values and impute is None "
                    "(--impute none): fill them in, or let them be imputed"
                )
            if impute == "constant" or seen is None:
                prep.fill[name] = "missing"
            else:
                prep.fill[name] = str(most_frequent(seen))
            levels = sorted(set(levels) | {prep.fill[name]})
        elif impute is not None and seen is not None:
            prep.fill[name] = "missing" if impute == "constant" else str(most_frequent(seen))
        prep.categories[name] = levels


def _scales(prep: Preprocessing, total: _Summary, numeric: list[str]) -> None:
    """Means and scales of the numeric columns (imputed) and the indicators; 0 and 1 for the
    one-hot columns. ``column_statistics``' refusal of a statistic that is not finite."""
    pieces = []
    for name in numeric:
        column = total.columns[name]
        present = column.stats or _repeated(0, 0.0)
        if name in prep.fill:  # the gaps take the fill value
            present = combine(present, _repeated(column.missing, prep.fill[name]))
        pieces.append(present)
    for name in prep.indicators:  # 1 for a gap, 0 for a value
        column = total.columns[name]
        pieces.append(combine(_repeated(_n(column), 0.0), _repeated(column.missing, 1.0)))
    mean, scale = np.zeros(len(prep.feature_names)), np.ones(len(prep.feature_names))
    for j, piece in enumerate(pieces):
        mean[j], scale[j] = piece.mean[0], piece.std[0]
        if not (np.isfinite(mean[j]) and np.isfinite(scale[j])):
            raise DataError(
                f"column {prep.feature_names[j]!r}: its mean and standard deviation must be "
                f"finite, got {mean[j]:g} and {scale[j]:g}; rescale the column"
            )
    scale[scale == 0.0] = 1.0
    prep.mean, prep.scale = [float(v) for v in mean], [float(v) for v in scale]


def _target(prep: Preprocessing, total: _Summary) -> None:
    """The classes (sorted as ``Preprocessing.fit`` sorts them), or the target's mean and
    scale; the fill values checked finite."""
    import math

    from .preprocessing import classes_of

    if prep.task == "classification":
        prep.classes = classes_of(sorted(total.labels), prep.target_name)
    else:
        if total.text_target or total.target is None:
            raise DataError(
                f"target {prep.target_name!r} must be numeric for regression, got "
                f"{total.bad_target!r}"
            )
        prep.target_mean = float(total.target.mean[0])
        spread = float(total.target.std[0])
        prep.target_scale = spread if spread > 0 else 1.0
    for name, value in prep.fill.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise DataError(f"column {name!r}: its fill value is {value} ({prep.impute}); "
                            "rescale the column")  # fmt: skip
