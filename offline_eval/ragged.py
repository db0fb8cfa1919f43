"""Ragged (CSR-like) per-event rows: candidate sets of varying size without a dense n x arms matrix.

Row i is ``values[indptr[i]:indptr[i + 1]]``: one entry per candidate of event i, in the event's own
candidate order (the order the logged ``action`` index refers to). 1M events x 500 arms is 500M
float64 entries only when every event really has 500 candidates; nothing is padded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerbandit.errors import InvalidInput


@dataclass(frozen=True, eq=False)
class RaggedMatrix:
    """``indptr``: int64, shape (n + 1,), starting at 0, strictly increasing (no empty row), ending at
    ``len(values)``; ``values``: float64, shape (nnz,). Both are stored read-only."""

    indptr: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        indptr = np.asarray(self.indptr)
        if indptr.ndim != 1 or indptr.shape[0] < 2:
            raise InvalidInput("`indptr` must be 1-D with at least 2 entries (n + 1)", field="indptr")
        if indptr.dtype == bool or not np.issubdtype(indptr.dtype, np.integer):
            raise InvalidInput(f"`indptr` must hold integers, got {indptr.dtype}", field="indptr")
        indptr = indptr.astype(np.int64, copy=False)
        try:
            values = np.asarray(self.values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"`values` must be numeric: {exc}", field="values") from exc
        if values.ndim != 1:
            raise InvalidInput(f"`values` must be 1-D, got shape {values.shape}", field="values")
        if indptr[0] != 0:
            raise InvalidInput(f"`indptr` must start at 0, got {indptr[0]}", field="indptr")
        if indptr[-1] != values.shape[0]:
            raise InvalidInput(
                f"`indptr` must end at len(values) = {values.shape[0]}, got {indptr[-1]}",
                field="indptr",
            )
        steps = np.diff(indptr)
        if (steps <= 0).any():
            row = int(np.argmax(steps <= 0))
            raise InvalidInput(
                f"`indptr` must be strictly increasing (every event needs at least one "
                f"candidate); row {row} has {steps[row]} entries",
                field="indptr",
            )
        if indptr is self.indptr:
            indptr = indptr.copy()
        if values is self.values:
            values = values.copy()
        indptr.flags.writeable = False
        values.flags.writeable = False
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "values", values)

    @classmethod
    def from_rows(cls, rows: list[np.ndarray] | list[list[float]]) -> RaggedMatrix:
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = np.concatenate([np.asarray(row, dtype=np.float64) for row in rows]) if rows else []
        return cls(indptr, values)

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> RaggedMatrix:
        matrix = np.asarray(matrix, dtype=np.float64)
        n_rows, n_cols = matrix.shape
        return cls(np.arange(n_rows + 1, dtype=np.int64) * n_cols, matrix.ravel())

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def row_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def same_layout(self, other: RaggedMatrix) -> bool:
        return self.indptr is other.indptr or np.array_equal(self.indptr, other.indptr)

    def row_sums(self) -> np.ndarray:
        return np.add.reduceat(self.values, self.indptr[:-1])

    def at_positions(self, positions: np.ndarray) -> np.ndarray:
        """Entry ``positions[i]`` of each row i (positions already checked to be in range)."""
        return self.values[self.indptr[:-1] + positions]

    def row_dot(self, other: RaggedMatrix) -> np.ndarray:
        """Per-row inner product with a matrix of the same layout."""
        return np.add.reduceat(self.values * other.values, self.indptr[:-1])

    def to_dense(self, n_cols: int | None = None) -> np.ndarray:
        """Zero-padded dense copy (for tests and small logs)."""
        lengths = self.row_lengths
        width = int(lengths.max()) if n_cols is None else n_cols
        dense = np.zeros((self.n_rows, width))
        rows = np.repeat(np.arange(self.n_rows), lengths)
        cols = np.arange(self.values.shape[0]) - np.repeat(self.indptr[:-1], lengths)
        dense[rows, cols] = self.values
        return dense
