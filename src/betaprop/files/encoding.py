"""Tables encoded as scikit-learn's ``ColumnTransformer`` would: imputation and one-hot columns.

``fit_table`` runs scikit-learn's ``SimpleImputer`` and ``OneHotEncoder`` on the training rows and
keeps what they learned in a ``Preprocessing`` (fill values, categories, the indicator's columns);
``encode_table`` rebuilds the encoding from what it stored. A boolean is one category whatever its
spelling (``category_text``). ``Preprocessing.fit`` and ``Preprocessing.encode_table`` call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .datasets import DataError, Dataset

if TYPE_CHECKING:
    from .preprocessing import Preprocessing

__all__ = ["fit_table", "encode_table", "table_of", "category_text", "BOOLEAN_SPELLINGS"]

Array = np.ndarray

# The spellings pandas' C parser reads as booleans: a column of them only comes as True/False,
# a column with any other cell (a gap) keeps the text; either way a cell is one category.
BOOLEAN_SPELLINGS = {
    **dict.fromkeys(("True", "TRUE", "true"), "True"),
    **dict.fromkeys(("False", "FALSE", "false"), "False"),
}


def fit_table(
    prep: Preprocessing,
    data: Dataset,
    rows: Array | None,
    impute: str | None,
    indicator: bool,
    unknown: str,
) -> Array:
    """Fit SimpleImputer and OneHotEncoder on the training rows (into ``prep``); their encoded
    features."""
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    frame = table_of(data)
    train = frame if rows is None else frame.iloc[rows]
    prep.columns = list(data.feature_names)
    prep.impute, prep.unknown = impute, unknown
    numeric = [c for c in prep.columns if c not in data.categorical]
    if numeric and impute is not None:
        imputer = SimpleImputer(strategy=impute, add_indicator=indicator,
                                keep_empty_features=True)  # fmt: skip
        imputer.fit(train[numeric].to_numpy(np.float64))
        prep.fill = {c: float(v) for c, v in zip(numeric, imputer.statistics_, strict=True)}
        if indicator and imputer.indicator_ is not None:
            prep.indicators = [numeric[i] for i in imputer.indicator_.features_]
    for name in data.categorical:
        cells = train[[name]].to_numpy(dtype=object, copy=True)
        absent = pd.isna(cells)
        cells[absent] = np.nan
        cells[~absent] = category_text(cells[~absent].astype(str), [])  # one True, one False
        if impute is not None:
            strategy = "constant" if impute == "constant" else "most_frequent"
            imputer = SimpleImputer(strategy=strategy, fill_value="missing")
            cells = imputer.fit_transform(cells)
            prep.fill[name] = str(imputer.statistics_[0])
        elif absent.any():
            raise DataError(
                f"categorical column {name!r} has missing values and impute is None "
                "(--impute none): fill them in, or let them be imputed"
            )
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        encoder.fit(cells.astype(str))
        prep.categories[name] = [str(c) for c in encoder.categories_[0]]
    prep.feature_names = (
        numeric
        + [f"{c}_missing" for c in prep.indicators]
        + [f"{c}={k}" for c in data.categorical for k in prep.categories[c]]
    )
    return encode_table(prep, data, rows)


def encode_table(prep: Preprocessing, data: Dataset, rows: Array | None = None) -> Array:
    """The encoded features (n, N_0) of a table: numeric columns imputed, indicators,
    one-hot columns (scikit-learn's OneHotEncoder with the stored categories); the raw
    columns are found by name, in any order. Before the standardisation."""
    import pandas as pd

    assert prep.columns is not None
    frame = table_of(data)
    if rows is not None:
        frame = frame.iloc[rows]
    lacking = [c for c in prep.columns if c not in frame.columns]
    if lacking:
        raise DataError(
            f"{data.source} lacks the feature columns {lacking[:5]} that the model was trained on"
        )
    numeric = [c for c in prep.columns if c not in prep.categories]
    # one matrix written in place: numbers, indicators, one-hot blocks (no dense parts
    # made and then stacked)
    encoded = np.zeros((len(frame), len(prep.feature_names)))
    values = encoded[:, : len(numeric)]
    values[...] = frame[numeric].to_numpy(np.float64)
    gaps = np.isnan(values)
    if gaps.any():
        if not prep.fill:
            raise DataError(
                f"{data.source} has missing values; the model imputes none (trained with "
                "--impute none): fill them in, or train again with --impute median"
            )
        values[gaps] = np.take(np.array([prep.fill[c] for c in numeric]), np.nonzero(gaps)[1])
    offset = len(numeric)
    if prep.indicators:
        where = [numeric.index(c) for c in prep.indicators]
        encoded[:, offset : offset + len(where)] = gaps[:, where]
        offset += len(where)
    prep.unseen = {}
    for name in [c for c in prep.columns if c in prep.categories]:  # the columns' order
        categories = prep.categories[name]
        cells = frame[name].to_numpy(dtype=object).copy()
        absent = pd.isna(cells)
        if absent.any():
            if name not in prep.fill:
                raise DataError(
                    f"{data.source}: column {name!r} has missing values; the model imputes "
                    "none for it: fill them in, or train again with --impute median"
                )
            cells[absent] = prep.fill[name]
        cells = old_spelling(category_text(cells.astype(str), categories), categories)
        # OneHotEncoder(categories=[categories], handle_unknown="ignore"): the position
        # of each cell's category, -1 (a row of zeros) for one training did not see
        codes = pd.Index(categories, dtype=object).get_indexer(cells.astype(object))
        unseen = sorted(str(c) for c in pd.unique(cells[codes < 0]))
        if unseen:
            prep.unseen[name] = unseen
            if prep.unknown == "error":
                raise DataError(
                    f"{data.source}: column {name!r} has categories {unseen[:5]} that "
                    f"training did not see (its categories are {categories[:10]}); give "
                    "--unknown ignore to encode them as all zeros"
                )
        seen = np.flatnonzero(codes >= 0)
        encoded[seen, offset + codes[seen]] = 1.0
        offset += len(categories)
    return encoded


def table_of(data: Dataset) -> Any:
    """The feature table to encode: the Dataset's own, or a frame of its numbers."""
    import pandas as pd

    return (
        data.frame if data.frame is not None else pd.DataFrame(data.X, columns=data.feature_names)
    )


def category_text(cells: Array, categories: Sequence[str]) -> Array:
    """Cells of a categorical column (text) as category names: a boolean spelling
    (``BOOLEAN_SPELLINGS``) is True or False, or the spelling of that value that
    ``categories`` holds (a model file written before booleans were one category)."""
    spelling = dict(BOOLEAN_SPELLINGS)
    for text, value in BOOLEAN_SPELLINGS.items():
        if text in categories and value not in categories:
            spelling.update({k: text for k, v in BOOLEAN_SPELLINGS.items() if v == value})
    if not any(text in spelling for text in np.unique(cells)):
        return cells
    return np.array([spelling.get(c, c) for c in cells.tolist()], dtype=str)


def old_spelling(cells: Array, categories: Sequence[str]) -> Array:
    """Cells of a declared category as a model file written before whole numbers were read
    as such spells them: "4" as its "4.0" when that is the category it holds."""
    import re

    pattern = re.compile(r"[+-]?\d+\.0*")
    aliases = {c.split(".")[0]: c for c in categories if pattern.fullmatch(c)}
    aliases = {k: v for k, v in aliases.items() if k not in categories}
    if not aliases:
        return cells
    import pandas as pd

    return pd.Series(cells, dtype=object).replace(aliases).to_numpy(dtype=str)
