"""The one validator of offline-evaluation inputs. Every message names the argument at fault.

Every check raises :class:`offerbandit.errors.InvalidInput` with ``field`` set to the argument name, so
the CLI and the service can report a one-line cause without a traceback.
"""
from __future__ import annotations

import math

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput

# Same tolerance as OBP's ``np.allclose(action_dist.sum(axis=1), 1)``: rtol 1e-5 + atol 1e-8.
PMF_SUM_TOLERANCE = 1e-5 + 1e-8


def as_1d_array(name: str, values: object, *, integer: bool = False) -> np.ndarray:
    """Return ``values`` as a non-empty, finite, read-only 1-D array (int64 or float64)."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"`{name}` must be array-like: {exc}", field=name) from exc
    if array.ndim != 1:
        raise InvalidInput(f"`{name}` must be 1-dimensional, got shape {array.shape}", field=name)
    if array.shape[0] == 0:
        raise InvalidInput(f"`{name}` must not be empty", field=name)
    if integer:
        if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
            raise InvalidInput(
                f"`{name}` must hold integers (action indices), got dtype {array.dtype}", field=name
            )
        array = array.astype(np.int64, copy=True)
        if array.min() < 0:
            bad = int(np.argmax(array < 0))
            raise InvalidInput(
                f"`{name}` must be non-negative; {name}[{bad}] = {array[bad]}", field=name
            )
    else:
        if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
            raise InvalidInput(f"`{name}` must be numeric, got dtype {array.dtype}", field=name)
        array = array.astype(np.float64, copy=True)
        _require_finite(name, array)
    array.flags.writeable = False
    return array


def check_same_length(**arrays: np.ndarray) -> int:
    """All arrays have the same first dimension; return it."""
    lengths = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        first = next(iter(lengths))
        raise InvalidInput(f"arrays must have the same length n ({described})", field=first)
    return next(iter(lengths.values()))


def check_pscore(pscore: np.ndarray, name: str = "pscore") -> None:
    """Logging probabilities must lie in (0, 1]."""
    bad = (pscore <= 0.0) | (pscore > 1.0)
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidInput(
            f"`{name}` must be in (0, 1]; {name}[{index}] = {float(pscore[index])!r}", field=name
        )


def check_actions_below(action: np.ndarray, limit: np.ndarray | int, name: str = "action") -> None:
    """Each action index must be smaller than its event's number of actions."""
    bad = action >= limit
    if bad.any():
        index = int(np.argmax(bad))
        bound = limit if np.isscalar(limit) else int(np.asarray(limit)[index])
        raise InvalidInput(
            f"`{name}` must be smaller than the number of actions; {name}[{index}] = "
            f"{action[index]} but event {index} has {bound} actions",
            field=name,
        )


def as_matrix(name: str, values: object, n_rows: int) -> np.ndarray:
    """A 2-D float array with ``n_rows`` rows (not copied when already float64)."""
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"`{name}` must be a numeric array: {exc}", field=name) from exc
    if matrix.ndim != 2:
        raise InvalidInput(
            f"`{name}` must have shape (n, n_actions), got shape {matrix.shape}", field=name
        )
    if matrix.shape[0] != n_rows:
        raise InvalidInput(
            f"`{name}` must have one row per logged event: expected {n_rows} rows, got "
            f"{matrix.shape[0]}",
            field=name,
        )
    if matrix.shape[1] == 0:
        raise InvalidInput(f"`{name}` must have at least one action column", field=name)
    return matrix


def check_pmf_rows(name: str, values: np.ndarray, row_sums: np.ndarray, row_offset: int = 0) -> None:
    """Entries finite and non-negative, rows summing to 1 (``row_sums`` precomputed)."""
    _require_finite(name, values)
    if (values < 0).any():
        raise InvalidInput(f"`{name}` must be non-negative", field=name)
    off = np.abs(row_sums - 1.0) > PMF_SUM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise InvalidInput(
            f"`{name}` rows must sum to 1; row {row + row_offset} sums to {row_sums[row]:.8g}",
            field=name,
        )


def check_finite(name: str, values: np.ndarray) -> None:
    _require_finite(name, values)


def check_alpha(alpha: object) -> float:
    return check_scalar(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)


def check_n_bootstrap(n_bootstrap: object) -> int:
    return check_scalar(n_bootstrap, "n_bootstrap", int, low=0)


def as_generator(random_state: object) -> np.random.Generator:
    """A numpy Generator from None (fresh entropy), a seed >= 0, or a Generator (returned as is)."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    try:
        return np.random.default_rng(check_scalar(random_state, "random_state", int, low=0))
    except InvalidInput:
        raise InvalidInput(
            f"`random_state` must be None, an int >= 0 or a numpy Generator, got {random_state!r}",
            field="random_state",
        ) from None


def check_hyperparameter(name: str, value: object, *, minimum: float = 0.0) -> None:
    """An estimator hyper-parameter: a real number >= ``minimum``, or +inf (which switches it off)."""
    if isinstance(value, float) and value == math.inf:
        return
    check_scalar(value, name, low=minimum)


def _require_finite(name: str, values: np.ndarray) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        flat = int(np.argmax(~finite.ravel()))
        where = np.unravel_index(flat, values.shape)
        position = ", ".join(str(int(i)) for i in where)
        raise InvalidInput(
            f"`{name}` must be finite (no NaN or inf); {name}[{position}] = "
            f"{float(values.ravel()[flat])!r}",
            field=name,
        )
