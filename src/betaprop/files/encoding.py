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
    """Fit SimpleImputer and OneHotEncoder on the training rows (into ``prep``); the encoded
    columns that are standardised (numbers imputed, indicators) of those rows: the one-hot
    columns are not made here (they stay 0/1, and ``train`` encodes every row once after)."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    frame = table_of(data)
    prep.columns = list(data.feature_names)
    prep.impute, prep.unknown = impute, unknown
    numeric = [c for c in prep.columns if c not in data.categorical]
    if numeric and impute is not None:
        X = _rows_of(frame, numeric, rows)
        if impute == "median":  # scikit-learn's rule, without its masked sort (_medians)
            fill = _medians(X)
            gaps = np.flatnonzero(np.isnan(X).any(axis=0) & indicator)
        else:
            imputer = SimpleImputer(strategy=impute, add_indicator=indicator,
                                    keep_empty_features=True)  # fmt: skip
            fill = imputer.fit(X).statistics_
            indicated = imputer.indicator_
            gaps = np.asarray(indicated.features_ if indicated is not None else [], dtype=int)
        prep.fill = {c: float(v) for c, v in zip(numeric, fill, strict=True)}
        prep.indicators = [numeric[i] for i in gaps]  # MissingIndicator: columns with gaps
        del X
    for name in data.categorical:
        cells = frame[name].to_numpy(dtype=object)
        codes, levels = _levels(cells if rows is None else cells[rows])
        # a boolean is one category whatever its spelling; each test made once per level
        spelled = category_text(levels.astype(str), [])
        absent = bool((codes < 0).any())
        if impute is not None:
            common = "missing" if impute == "constant" else _most_frequent(name, spelled, codes)
            prep.fill[name] = common
            spelled = np.append(spelled, common) if absent else spelled
        elif absent:
            raise DataError(
                f"categorical column {name!r} has missing values and impute is None "
                "(--impute none): fill them in, or let them be imputed"
            )
        # OneHotEncoder learns the sorted set of the (imputed) cells: fitted on that set
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        encoder.fit(spelled.astype(str)[:, None])
        prep.categories[name] = [str(c) for c in encoder.categories_[0]]
    prep.feature_names = (
        numeric
        + [f"{c}_missing" for c in prep.indicators]
        + [f"{c}={k}" for c in data.categorical for k in prep.categories[c]]
    )
    return encode_table(prep, data, rows, onehot=False)


BLOCK_ROWS = 8192  # rows copied at a time from a frame's columns into a matrix


def _rows_of(frame: Any, names: list[str], rows: Array | None, X: Array | None = None) -> Array:
    """The float64 matrix of some columns of ``frame`` at ``rows`` (None: all), written into
    ``X`` when given (else a new column-major one), a block of rows at a time: the frame's
    columns are one (p, n) block in pandas, and a row-major ``X`` written column by column
    would be walked once per column."""
    if X is None:
        X = np.empty((len(frame) if rows is None else len(rows), len(names)), order="F")
    if not names:
        return X
    matrix = frame[names].to_numpy(np.float64)  # a view of pandas' block where it can be
    for start in range(0, len(X), BLOCK_ROWS):
        part = slice(start, start + BLOCK_ROWS)
        X[part] = matrix[part] if rows is None else matrix[rows[part]]
    return X


def _medians(X: Array) -> Array:
    """SimpleImputer(strategy="median", keep_empty_features=True).statistics_ of X (n, p)
    with NaN gaps: each column's median of its present values (the mean of the two middle
    ones for an even count), 0 for a column without any; NumPy's partition, where
    scikit-learn sorts a masked array."""
    fill = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        column = X[:, j]
        present = column[~np.isnan(column)]
        if len(present):
            fill[j] = np.median(present)
    return fill


def _levels(cells: Array) -> tuple[Array, Array]:
    """(codes, levels) of a column of category names (None where missing): its distinct
    names in the order of their first row and each cell's position among them, -1 where
    missing (pandas' factorize: a hash, no sort, no text made per cell)."""
    import pandas as pd

    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), np.asarray(uniques, dtype=object)


def _most_frequent(name: str, spelled: Array, codes: Array) -> str:
    """SimpleImputer(strategy="most_frequent")'s fill of a text column: its most frequent
    category, the smallest of those that tie (``spelled``: each level's name, ``codes``
    each cell's level, -1 where missing)."""
    names, merged = np.unique(spelled, return_inverse=True)  # sorted: ties go to the first
    if len(names) == 0:
        raise DataError(
            f"categorical column {name!r} has no value in the training rows: fill some in, "
            "or leave the column out with --drop"
        )
    counts = np.bincount(merged[codes[codes >= 0]], minlength=len(names))
    return str(names[int(np.argmax(counts))])


def encode_table(
    prep: Preprocessing, data: Dataset, rows: Array | None = None, onehot: bool = True
) -> Array:
    """The encoded features (n, N_0) of a table: numeric columns imputed, indicators,
    one-hot columns (scikit-learn's OneHotEncoder with the stored categories); the raw
    columns are found by name, in any order. Before the standardisation. Of the dtype of
    ``data.X`` (a float32 run's table in half the memory); ``onehot`` False: in float64, the
    columns before the one-hot blocks only (those that are standardised)."""
    assert prep.columns is not None
    frame = table_of(data)
    lacking = [c for c in prep.columns if c not in frame.columns]
    if lacking:
        raise DataError(
            f"{data.source} lacks the feature columns {lacking[:5]} that the model was trained on"
        )
    numeric = [c for c in prep.columns if c not in prep.categories]
    blocks = sum(len(c) for c in prep.categories.values()) if onehot else 0
    n = len(frame) if rows is None else len(rows)
    # one matrix written in place: numbers, indicators, one-hot blocks (no dense parts
    # made and then stacked)
    # in the dtype the table was read in (read_csv's: float32 for a float32 network, float64
    # where float32 would lose what training needs), as its numbers alone would be; the
    # standardised columns of fit's training rows in float64, for their statistics
    dtype = data.X.dtype if onehot and data.X.dtype in (np.float32, np.float64) else np.float64
    encoded = np.zeros((n, len(numeric) + len(prep.indicators) + blocks), dtype=dtype)
    values = encoded[:, : len(numeric)]
    _rows_of(frame, numeric, rows, values)
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
    for name in [c for c in prep.columns if c in prep.categories and onehot]:  # in order
        cells = frame[name].to_numpy(dtype=object)
        position = _category_positions(prep, data, name, cells if rows is None else cells[rows])
        seen = np.flatnonzero(position >= 0)
        encoded[seen, offset + position[seen]] = 1.0
        offset += len(prep.categories[name])
    return encoded


def _category_positions(prep: Preprocessing, data: Dataset, name: str, cells: Array) -> Array:
    """OneHotEncoder(categories=[categories], handle_unknown="ignore") on one column: the
    position of each cell's category (missing cells filled), -1 (a row of zeros) for one
    that training did not see, noted in ``prep.unseen`` (refused with ``unknown`` "error").
    Each distinct cell is spelled and looked up once (``_levels``)."""
    import pandas as pd

    categories = prep.categories[name]
    codes, levels = _levels(cells)
    if (codes < 0).any():
        if name not in prep.fill:
            raise DataError(
                f"{data.source}: column {name!r} has missing values; the model imputes "
                "none for it: fill them in, or train again with --impute median"
            )
        levels = np.append(levels, np.array([prep.fill[name]], dtype=object))
        codes = np.where(codes < 0, len(levels) - 1, codes)
    spelled = old_spelling(category_text(levels.astype(str), categories), categories)
    found = pd.Index(categories, dtype=object).get_indexer(spelled.astype(object))
    unseen = sorted(str(c) for c in pd.unique(spelled[found < 0]))
    if unseen:
        prep.unseen[name] = unseen
        if prep.unknown == "error":
            raise DataError(
                f"{data.source}: column {name!r} has categories {unseen[:5]} that "
                f"training did not see (its categories are {categories[:10]}); give "
                "--unknown ignore to encode them as all zeros"
            )
    return found[codes]


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
