"""Building NWB tables column by column.

Tables are assembled from whole columns (one array per column, ragged columns as a flat
array plus the end offset of each row), never row by row: adding rows one at a time is the
known cause of quadratic time and memory blow-ups in hdmf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hdmf.common import DynamicTable, VectorData, VectorIndex

__all__ = ["Column", "build_table", "ragged_ends"]


@dataclass
class Column:
    """One column of a table.

    Parameters
    ----------
    name : str
        Column name.
    description : str
        What the column holds, with its unit.
    data : array-like
        The values, one per row; for a ragged column, the flat concatenation of all rows.
    ends : array-like, optional
        For a ragged column, the end offset into ``data`` of each row.
    vector_class : type, optional
        The VectorData subclass to use (for example pynwb's ``TimestampVectorData``).
    """

    name: str
    description: str
    data: object
    ends: object | None = None
    vector_class: type = VectorData

    def to_vectors(self) -> list[VectorData]:
        vector = self.vector_class(name=self.name, description=self.description, data=self.data)
        if self.ends is None:
            return [vector]
        index = VectorIndex(name=f"{self.name}_index", data=np.asarray(self.ends, dtype=np.uint64), target=vector)
        return [vector, index]


def ragged_ends(lengths) -> np.ndarray:
    """End offsets of ragged rows from their lengths."""
    return np.cumsum(np.asarray(lengths, dtype=np.int64)).astype(np.uint64)


def build_table(table_class: type[DynamicTable], *, name: str, description: str, columns: list[Column],
                **kwargs) -> DynamicTable:
    """Create a table of ``table_class`` from whole columns.

    Parameters
    ----------
    table_class : type
        ``TimeIntervals``, ``EventsTable``, ``DynamicTable``, ...
    name, description : str
        Of the table.
    columns : list of Column
        In the order they should appear; all must have the same number of rows.
    **kwargs
        Passed to the table's constructor.
    """
    lengths = {column.name: (len(column.ends) if column.ends is not None else len(column.data)) for column in columns}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns of table {name!r} have different lengths: {lengths}")
    vectors = [vector for column in columns for vector in column.to_vectors()]
    return table_class(name=name, description=description, columns=vectors, **kwargs)
