"""A Parquet file's parts (``files.parts``): whole row groups planned from the footer, and
read a few columns at a time so that a part's peak is its frame plus a few columns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import DataError, first_line
from .reading import parquet_module
from .streams import open_data

__all__ = ["plan_row_groups", "read_row_groups", "parquet_columns"]

_COLUMNS = 8  # Parquet columns read at a time by read_part (threads decode them together)


def plan_row_groups(handle: Any, path: str, part_bytes: int) -> list[tuple[int, int, int, int]]:
    """Row groups merged while their bytes stay within ``part_bytes`` (footer only): each
    part's (first row group, row group past its last, first row, rows)."""
    pq = parquet_module(path)
    try:
        meta = pq.ParquetFile(handle).metadata
        schema = pq.ParquetFile(handle).schema_arrow
    except Exception as error:  # pyarrow's ArrowInvalid, OSError, ...
        first = first_line(error)
        raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    if meta.num_rows == 0 or meta.num_columns == 0:
        raise DataError(f"{path} has no rows or no columns")
    _check_schema(schema, path)
    parts: list[tuple[int, int, int, int]] = []
    group = row = rows = size = 0
    for g in range(meta.num_row_groups):
        block = meta.row_group(g)
        if rows and size + block.total_byte_size > part_bytes:
            parts.append((group, g, row, rows))
            group, row, rows, size = g, row + rows, 0, 0
        rows += block.num_rows
        size += block.total_byte_size
    parts.append((group, meta.num_row_groups, row, rows))
    return parts


def _check_schema(schema: Any, path: str) -> None:
    """Refuse columns that hold no single value per cell (``read_table``'s rule)."""
    import pyarrow as pa

    from .header import check_header

    for column in schema:
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise DataError(
                f"{path}: column {column.name!r} holds {column.type} values, not numbers or "
                "text; betaprop reads one value per cell: flatten it into columns, or leave it "
                "out with --drop"
            )
    names = [str(name).strip() for name in schema.names]
    check_header(path, names, ",".join(names), ",")


def parquet_columns(path: str) -> list[str]:
    """The stripped names of a Parquet file's columns as ``read_part`` gives them (pandas'
    index columns left out), from its footer."""
    import pyarrow.parquet as pq

    handle, _ = open_data(path)
    with handle:
        schema = pq.ParquetFile(handle).schema_arrow
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    return [str(name).strip() for name in schema.names if name not in index]


def read_row_groups(path: str, start: int, stop: int, wanted: Sequence[str] | None = None) -> Any:
    """Row groups [start, stop) as ``to_pandas`` makes them, ``_COLUMNS`` columns at a time (read
    and converted with their pandas metadata, then let go), so that the peak is the frame
    plus a few columns, not the part twice over (Arrow's table and the frame); the columns
    stay separate blocks (no consolidated copy). Arrow allocates from its system pool while
    reading (``_returning_pool``): freed buffers go back at once."""
    import pandas as pd
    import pyarrow.parquet as pq

    handle, _ = open_data(path)
    with handle, _returning_pool():
        try:
            source = pq.ParquetFile(handle, buffer_size=1 << 20, pre_buffer=False)
            index = (source.schema_arrow.pandas_metadata or {}).get("index_columns", [])
            chosen = [  # pandas' index kept as a column: to_pandas makes it the index,
                name  # which the part's row numbers replace
                for name in source.schema_arrow.names
                if name not in index and (wanted is None or str(name).strip() in wanted)
            ]
            columns, names = [], []
            for k in range(0, len(chosen), _COLUMNS):
                table = source.read_row_groups(range(start, stop), columns=chosen[k : k + _COLUMNS])
                piece = table.to_pandas(split_blocks=True, self_destruct=True)
                del table
                columns += [piece.iloc[:, j] for j in range(piece.shape[1])]
                names += [str(name).strip() for name in piece.columns]
                del piece
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
            raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    frame = pd.DataFrame(dict(enumerate(columns)), copy=False)
    del columns
    frame.attrs["format"] = "parquet"
    frame.columns = names
    return frame


@contextlib.contextmanager
def _returning_pool() -> Iterator[None]:
    """pyarrow's system memory pool as its default while the block runs (mimalloc, its usual
    default, keeps a part's freed pages); the previous pool afterwards. Buffers remember
    their pool, so those allocated here are freed to it whenever they go."""
    import pyarrow as pa

    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)
