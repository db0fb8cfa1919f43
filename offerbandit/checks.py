"""One argument checker for scalars (the shape of OBP's ``check_scalar``).

Every configuration record and public function checks its numbers here, so a bad value is refused
with the same kind of message everywhere: ``<name> must be <kind><range>, got <value>``, raised as
:class:`~offerbandit.errors.InvalidInput` naming the field.
"""
from __future__ import annotations

import math
import numbers

from offerbandit.errors import InvalidInput

__all__ = ["check_range", "check_scalar"]


def _bound_text(bound: float) -> str:
    # Integer bounds print in full (2**31 - 1 is not "2.14748e+09"); other floats stay short.
    if isinstance(bound, numbers.Integral):
        return str(int(bound))
    return f"{bound:g}"


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{_bound_text(low)}, {_bound_text(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {_bound_text(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {_bound_text(high)}"
    return ""


def check_scalar(value: object, name: str, kind: type = float, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False, high_open: bool = False) -> int | float:
    """Return ``value`` as ``kind`` (``int`` or ``float``) if it is one and lies in the range, else raise.

    Booleans are refused for both kinds (``True`` is an ``int`` to Python, never a count or a rate to
    us); floats must be finite; numpy scalars are accepted.
    """
    if kind not in (int, float):
        raise TypeError(f"check_scalar checks int or float, not {kind!r}")
    wanted = numbers.Integral if kind is int else numbers.Real

    def refuse() -> InvalidInput:  # the message is built only for a refusal: checks run on hot paths
        noun = "an integer" if kind is int else "a finite number"
        return InvalidInput(f"{name} must be {noun}{_range_text(low, high, low_open, high_open)}, got {value!r}",
                            field=name)

    if isinstance(value, bool) or not isinstance(value, wanted):
        raise refuse()
    number = int(value) if kind is int else float(value)
    if kind is float and not math.isfinite(number):
        raise refuse()
    if low is not None and (number < low or (low_open and number == low)):
        raise refuse()
    if high is not None and (number > high or (high_open and number == high)):
        raise refuse()
    return number


def check_range(value: object, name: str) -> tuple[float, float]:
    """``value`` as a ``(low, high)`` pair of finite numbers with ``low < high`` (a reward range), else
    InvalidInput naming ``name``."""
    text = f"{name} must be [LOW, HIGH] with finite LOW < HIGH, got {value!r}"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise InvalidInput(text, field=name)
    low, high = (check_scalar(bound, name) for bound in value)
    if not low < high:
        raise InvalidInput(text, field=name)
    return (low, high)
