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


def test_serve_counts_its_own_garbage_collections_in_the_metrics(server_process, tmp_path):
    """``offerbandit serve`` installs a GcPauseWatch once started: its /metrics has pause series of its own
    collections (answering decisions allocates: young collections come)."""
    import re
    import time
    import urllib.request

    import grpc

    from bench.common import customers, decide_request
    from offers.v1 import decision_pb2_grpc as pb_grpc

    server = server_process("--metrics-port", "0", data_dir=tmp_path / "d")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.DecisionServiceStub(channel)
        for customer in customers(100, seed=3):
            stub.Decide(decide_request(customer, 16), timeout=10)
    deadline = time.time() + 20
    while time.time() < deadline and not any("metrics on" in line for line in server.output):
        time.sleep(0.1)
    url = re.search(r"metrics on (\S+)", next(line for line in server.output if "metrics on" in line)).group(1)
    counted = 0.0
    while time.time() < deadline and counted == 0.0:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        counted = sum(float(value) for value in
                      re.findall(r'^offerbandit_gc_pause_seconds_count\{generation="\d"\} (\S+)$', text, re.M))
        time.sleep(0.2)
    assert counted > 0, "no garbage collection of the serving process was counted within 20 s"
    assert server.stop() == 0
