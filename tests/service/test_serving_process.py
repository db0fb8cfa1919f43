"""What ``offerbandit serve`` does to its own process once started: shorter GIL turns (see
`service.server.SERVING_SWITCH_INTERVAL_S` for the measurement behind them)."""
import sys

import pytest

from service.server import SERVING_SWITCH_INTERVAL_S, shorten_gil_turns


def test_a_serving_process_hands_the_gil_over_every_millisecond():
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # CPython's default
        shorten_gil_turns()
        assert sys.getswitchinterval() == pytest.approx(SERVING_SWITCH_INTERVAL_S)
        assert SERVING_SWITCH_INTERVAL_S == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(before)


def test_serve_shortens_the_turns_after_it_started():
    import inspect

    from offerbandit.cli import serve

    source = inspect.getsource(serve)
    assert source.index("server.start()") < source.index("shorten_gil_turns()")
