"""service.metrics: counters, histograms and gauges as Prometheus sees them over real HTTP."""
from __future__ import annotations

import math
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from offerbandit.errors import InvalidInput
from service.metrics import LATENCY_BUCKETS_S, Metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


@pytest.fixture
def metrics_server():
    metrics = Metrics()
    server = metrics.serve_http("127.0.0.1", 0)
    yield metrics, server
    server.stop()


def test_decisions_rewards_and_gauges_over_http(metrics_server) -> None:
    metrics, server = metrics_server
    assert server.port > 0
    for _ in range(3):
        metrics.observe_decision("default", "exploit", "4", 0.0012)
    metrics.observe_decision("default", "explore_outside_history", "4", 0.004)
    metrics.observe_decision("sms_winback", "none", "bootstrap", 0.0001, outcome="invalid")
    metrics.observe_reward("default", "accepted")
    metrics.observe_reward("default", "accepted")
    metrics.observe_reward("default", "late")
    metrics.observe_reward("default", "duplicate")
    metrics.observe_reward("default", "unknown")
    metrics.set_queue_depth(17)
    metrics.set_policy_version("default", "4")
    metrics.observe_rpc("Decide", "OK", 0.002)
    metrics.observe_rpc("Decide", "INVALID_ARGUMENT", 0.0003)

    samples = _samples(_fetch(server.url))

    decisions = "offerbandit_decisions_total"
    assert _value(samples, decisions, campaign="default", outcome="ok", exploration="exploit", policy_version="4") == 3
    assert _value(samples, decisions, campaign="default", outcome="ok",
                  exploration="explore_outside_history", policy_version="4") == 1
    assert _value(samples, decisions, campaign="sms_winback", outcome="invalid", exploration="none",
                  policy_version="bootstrap") == 1
    assert _value(samples, "offerbandit_rewards_total", campaign="default", outcome="accepted") == 2
    for outcome in ("late", "duplicate", "unknown"):
        assert _value(samples, "offerbandit_rewards_total", campaign="default", outcome=outcome) == 1
    assert _value(samples, "offerbandit_log_queue_depth") == 17
    assert _value(samples, "offerbandit_policy_version_info", campaign="default", version="4") == 1
    assert _value(samples, "offerbandit_rpcs_total", method="Decide", code="OK") == 1
    assert _value(samples, "offerbandit_rpcs_total", method="Decide", code="INVALID_ARGUMENT") == 1


def test_latency_histogram_buckets_are_cumulative_and_ms_sized() -> None:
    metrics = Metrics()
    latencies = [0.0004, 0.0009, 0.003, 0.003, 0.2]
    for latency in latencies:
        metrics.observe_decision("default", "explore", "1", latency)
    samples = _samples(metrics.render().decode())
    name = "offerbandit_decision_latency_seconds"
    assert _value(samples, name + "_count", campaign="default") == len(latencies)
    assert math.isclose(_value(samples, name + "_sum", campaign="default"), sum(latencies))
    # Several buckets below 10 ms, so ms-level gRPC latencies are resolved.
    assert sum(1 for b in LATENCY_BUCKETS_S if b <= 0.01) >= 5
    for bucket in LATENCY_BUCKETS_S:
        expected = sum(1 for latency in latencies if latency <= bucket)
        assert _value(samples, name + "_bucket", campaign="default", le=repr(float(bucket))) == expected
    assert _value(samples, name + "_bucket", campaign="default", le="+Inf") == len(latencies)


def test_policy_version_keeps_one_active_version_per_campaign() -> None:
    metrics = Metrics()
    metrics.set_policy_version("default", "bootstrap")
    metrics.set_policy_version("default", "1")
    metrics.set_policy_version("default", "2")
    metrics.set_policy_version("sms_winback", "7")
    metrics.set_policy_version("sms_winback", "7")
    samples = _samples(metrics.render().decode())
    active = {labels: value for (name, labels), value in samples.items() if name == "offerbandit_policy_version_info"}
    assert active == {
        (("campaign", "default"), ("version", "2")): 1.0,
        (("campaign", "sms_winback"), ("version", "7")): 1.0,
    }


def test_two_instances_do_not_clash() -> None:
    first, second = Metrics(), Metrics()
    first.observe_reward("default", "accepted")
    first.set_queue_depth(5)
    second.set_queue_depth(9)
    one = first.serve_http("127.0.0.1", 0)
    two = second.serve_http("127.0.0.1", 0)
    try:
        assert one.port != two.port
        a, b = _samples(_fetch(one.url)), _samples(_fetch(two.url))
    finally:
        one.stop()
        two.stop()
    assert _value(a, "offerbandit_rewards_total", campaign="default", outcome="accepted") == 1
    assert _value(b, "offerbandit_rewards_total", campaign="default", outcome="accepted") is None
    assert _value(a, "offerbandit_log_queue_depth") == 5
    assert _value(b, "offerbandit_log_queue_depth") == 9


def test_stop_closes_the_port() -> None:
    metrics = Metrics()
    server = metrics.serve_http("127.0.0.1", 0)
    url = server.url
    server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


INVALID_CALLS = [
    ("observe_decision", ("default", "exploit", "1", 0.001, "exploded"), "outcome"),
    ("observe_decision", ("default", "guess", "1", 0.001), "exploration"),
    ("observe_decision", ("", "exploit", "1", 0.001), "campaign"),
    ("observe_decision", ("default", "exploit", "", 0.001), "policy_version"),
    ("observe_decision", ("default", "exploit", "1", -0.001), "latency_s"),
    ("observe_decision", ("default", "exploit", "1", float("nan")), "latency_s"),
    ("observe_decision", ("default", "exploit", "1", float("inf")), "latency_s"),
    ("observe_decision", ("default", "exploit", "1", "fast"), "latency_s"),
    ("observe_reward", ("default", "great"), "outcome"),
    ("observe_reward", (None, "accepted"), "campaign"),
    ("set_queue_depth", (-1,), "n"),
    ("set_queue_depth", (2.5,), "n"),
    ("set_queue_depth", (True,), "n"),
    ("set_policy_version", ("default", ""), "version"),
    ("observe_rpc", ("", "OK", 0.001), "method"),
    ("observe_rpc", ("Decide", "", 0.001), "code"),
    ("observe_rpc", ("Decide", "OK", -1.0), "latency_s"),
    ("serve_http", ("127.0.0.1", 70000), "port"),
    ("serve_http", ("127.0.0.1", -1), "port"),
]


@pytest.mark.parametrize(("method", "args", "field"), INVALID_CALLS)
def test_invalid_input_names_the_field(method: str, args: tuple, field: str) -> None:
    metrics = Metrics()
    before = metrics.render()
    with pytest.raises(InvalidInput) as excinfo:
        getattr(metrics, method)(*args)
    assert excinfo.value.field == field
    assert metrics.render() == before  # nothing half-recorded
