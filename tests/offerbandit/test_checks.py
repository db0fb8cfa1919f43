"""The one scalar checker: what it accepts, what it refuses, and how the refusal reads."""
import math

import numpy as np
import pytest

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput


@pytest.mark.parametrize("value, kind, bounds, expected", [
    (3, int, {"low": 1}, 3),
    (np.int64(3), int, {"low": 1, "high": 3}, 3),
    (2, float, {"low": 0.0}, 2.0),
    (np.float32(0.5), float, {"low": 0.0, "high": 1.0}, 0.5),
    (1.0, float, {"low": 0.0, "high": 1.0, "low_open": True}, 1.0),
    (-7.5, float, {}, -7.5),
])
def test_accepted_values_come_back_as_the_kind(value, kind, bounds, expected):
    result = check_scalar(value, "x", kind, **bounds)
    assert result == expected and type(result) is kind


@pytest.mark.parametrize("value, kind, bounds, message", [
    (0, int, {"low": 1}, "n must be an integer >= 1, got 0"),
    (2, float, {"low": 0.0, "high": 1.0}, "n must be a finite number in [0, 1], got 2"),
    (0.0, float, {"low": 0.0, "low_open": True}, "n must be a finite number > 0, got 0.0"),
    (1.0, float, {"low": 0.0, "high": 1.0, "high_open": True}, "n must be a finite number in [0, 1), got 1.0"),
    (5, int, {"high": 4}, "n must be an integer <= 4, got 5"),
    (2**40, int, {"low": 0, "high": 2**31 - 1}, "n must be an integer in [0, 2147483647], got 1099511627776"),
    (True, int, {}, "n must be an integer, got True"),
    (False, float, {}, "n must be a finite number, got False"),
    (1.5, int, {}, "n must be an integer, got 1.5"),
    ("3", float, {}, "n must be a finite number, got '3'"),
    (None, float, {}, "n must be a finite number, got None"),
    (math.nan, float, {}, "n must be a finite number, got nan"),
    (math.inf, float, {"low": 0.0}, "n must be a finite number >= 0, got inf"),
])
def test_refusals_name_the_field_and_read_the_same_everywhere(value, kind, bounds, message):
    with pytest.raises(InvalidInput) as caught:
        check_scalar(value, "n", kind, **bounds)
    assert str(caught.value) == message
    assert caught.value.field == "n"


def test_only_int_and_float_are_kinds():
    with pytest.raises(TypeError):
        check_scalar(1, "n", str)
