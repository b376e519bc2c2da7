"""The table encoding of ``Preprocessing`` as ONNX nodes: raw columns in, encoded features out.

``betaprop train`` encodes a table (``Preprocessing.encode_table``): numeric gaps filled, 0/1
missing indicators, one-hot columns from text categories. ``encode_table`` writes the same
into a graph (``files.onnx.build_model`` calls it), so the exported graph takes one input per
raw column, as skl2onnx names the inputs of a ``ColumnTransformer`` fed with a DataFrame.
What a graph cannot do is refuse a row: docs/onnx.md says what it does instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .datasets import MISSING
from .encoding import BOOLEAN_SPELLINGS, category_text
from .onnx import Graph
from .preprocessing import Preprocessing

__all__ = ["encode_table", "category_codes", "ML_DOMAIN"]

ML_DOMAIN = "ai.onnx.ml"


def encode_table(g: Graph, prep: Preprocessing) -> tuple[str, list[Any]]:
    """The raw columns of a table as graph inputs, encoded as ``Preprocessing.encode_table``
    does; returns the encoded features (n, N_0) in float64 and the inputs' descriptions.

    Numeric columns (n, 1) float64, NaN where missing: ``Where(IsNaN(x), fill, x)`` and the
    indicators ``Cast(IsNaN(x))``. Categorical columns (n, 1) string: ``LabelEncoder`` maps a
    cell's text to its category's position (``category_codes``: booleans, missing tokens
    to the fill value; -1 for anything else), ``OneHotEncoder`` writes its one-hot row: all
    zeros for -1 (``zeros=1``), or a runtime error when the model refuses unseen categories.
    """
    from onnx import TensorProto, helper  # build_model has checked that onnx is there

    double = TensorProto.DOUBLE
    assert prep.columns is not None  # a table
    columns = list(prep.columns)
    numeric = [c for c in columns if c not in prep.categories]
    inputs, parts = [], []
    for name in columns:
        if name in prep.categories:
            what = (
                f"categorical column {name!r}: the cell's text (string), one of "
                f"{prep.categories[name][:10]}; missing: '' or NA, N/A, NaN, null, None, ?, -"
            )
            kind = TensorProto.STRING
        else:
            what = f"numeric column {name!r}: float64, NaN where missing"
            kind = double
        if name in prep.fill:
            what += f" (filled with {prep.fill[name]!r})"
        info = helper.make_tensor_value_info(name, kind, ["n", 1])
        info.doc_string = what
        inputs.append(info)
    if numeric:
        x = g.node("Concat", numeric, "numbers", axis=1) if len(numeric) > 1 else numeric[0]
        gaps = g.node("IsNaN", [x], "gaps")
        if any(c in prep.fill for c in numeric):  # x = fill where x is missing
            fill = [float(prep.fill.get(c, math.nan)) for c in numeric]
            x = g.node("Where", [gaps, g.constant("fill", fill, np.float64), x], "imputed")
        parts.append(x)
        if prep.indicators:  # 1 where the column had a gap
            which = g.constant("indicator_columns", [numeric.index(c) for c in prep.indicators],
                               np.int64)  # fmt: skip
            gaps = g.node("Gather", [gaps, which], "indicated", axis=1)
            parts.append(g.node("Cast", [gaps], "indicators", to=double))
    for name in (c for c in columns if c in prep.categories):  # the columns' order
        codes = category_codes(prep, name)
        index = g.node("LabelEncoder", [name], "category", domain=ML_DOMAIN,
                       keys_strings=list(codes), values_int64s=list(codes.values()),
                       default_int64=-1)  # fmt: skip
        onehot = g.node("OneHotEncoder", [index], "onehot", domain=ML_DOMAIN,
                        cats_int64s=list(range(len(prep.categories[name]))),
                        zeros=int(prep.unknown != "error"))  # fmt: skip
        onehot = g.node("Flatten", [onehot], axis=1)  # (n, 1, K) -> (n, K)
        parts.append(g.node("Cast", [onehot], "onehot", to=double))
    x = g.node("Concat", parts, "encoded", axis=1) if len(parts) > 1 else parts[0]
    return x, inputs


def category_codes(prep: Preprocessing, name: str) -> dict[str, int]:
    """What ``encode_table`` makes of each cell text of categorical column ``name``: the
    position of its category in ``prep.categories[name]`` (the one-hot column that is 1).

    A category is its own text; a boolean spelling counts as its category (``category_text``);
    a missing cell (``MISSING``, any case) counts as the fill value's category when the model
    imputes the column. Any other text (a category training did not see, a gap the model
    does not fill) has no entry. For an export (``files.onnx``) that cannot call Python.
    """
    categories = prep.categories[name]
    position = {text: k for k, text in enumerate(categories)}
    codes: dict[str, int] = {}
    if name in prep.fill:
        filled = str(category_text(np.array([str(prep.fill[name])]), categories)[0])
        if filled in position:  # a constant fill that training never needed is unseen
            codes.update(dict.fromkeys(_every_case(MISSING), position[filled]))
    spellings = list(BOOLEAN_SPELLINGS)
    for text, named in zip(spellings, category_text(np.array(spellings), categories), strict=True):
        if str(named) in position:
            codes[text] = position[str(named)]
    codes.update(position)  # a category is itself, before anything else
    return codes


def _every_case(words: Sequence[str]) -> list[str]:
    """Every spelling of ``words`` in upper and lower case letters ("na": na, nA, Na, NA)."""
    spellings: list[str] = []
    for word in words:
        variants = [""]
        for letter in word:
            cases = {letter.lower(), letter.upper()}
            variants = [v + c for v in variants for c in sorted(cases)]
        spellings += variants
    return spellings
