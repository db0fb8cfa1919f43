"""Prometheus metrics of one server: decisions, rewards, RPCs, the log queue and the serving version.

Each `Metrics` owns its own `CollectorRegistry`, so several servers in one process (tests) never
clash. Label values are checked against small closed sets: a typo in the caller must not grow an
unbounded family of time series. ``policy_version`` is open (every checkpoint is a new version), so
only the newest ``versions_kept`` versions of each campaign keep decision series; older ones are removed.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput

# Decide/Reward RPCs answer in (sub-)milliseconds when healthy; the tail buckets catch group-commit
# stalls and overload.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)

#: Decide calls decided together: 1 when calls come one at a time, up to server.max_combined_decides
DECIDE_GROUP_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
#: a young collection takes well under a millisecond; a full one of a large heap, tens to hundreds of them
GC_PAUSE_BUCKETS_S: tuple[float, ...] = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
DECISION_OUTCOMES = frozenset(
    {"ok", "no_contact", "invalid", "not_found", "unauthenticated", "overloaded", "unavailable", "error"}
)
EXPLORATION_KINDS = frozenset({"exploit", "explore", "explore_outside_history", "no_contact", "holdout", "none"})
REWARD_OUTCOMES = frozenset({"accepted", "duplicate", "late", "retried", "unknown", "invalid", "error"})


def _check_label(value: str, field: str, allowed: frozenset[str] | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    if allowed is not None and value not in allowed:
        raise InvalidInput(f"{field} must be one of {sorted(allowed)}, got {value!r}", field=field)
    if allowed is None and not value:
        raise InvalidInput(f"{field} must not be empty", field=field)
    return value


@dataclass(frozen=True)
class MetricsHTTPServer:
    """A running `/metrics` HTTP endpoint (daemon thread); `stop()` closes the socket."""

    host: str
    port: int
    _httpd: object
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class Metrics:
    """All metrics of one server process, in a private registry."""

    def __init__(self, versions_kept: int = 5) -> None:
        self.versions_kept = check_scalar(versions_kept, "versions_kept", int, low=1)
        # campaign -> version -> the (outcome, exploration) label pairs it has series for, oldest version first
        self._series: dict[str, OrderedDict[str, set[tuple[str, str]]]] = {}
        self._series_lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._decisions = Counter(
            "offerbandit_decisions", "Decisions by campaign, outcome, exploration kind and policy version.",
            ("campaign", "outcome", "exploration", "policy_version"), registry=self.registry,
        )
        self._decision_latency = Histogram(
            "offerbandit_decision_latency_seconds", "Time to answer one decision, by campaign.",
            ("campaign",), buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self._rewards = Counter(
            "offerbandit_rewards", "Rewards by campaign and outcome (accepted, duplicate, late, unknown, ...).",
            ("campaign", "outcome"), registry=self.registry,
        )
        self._rpcs = Counter(
            "offerbandit_rpcs", "gRPC calls by method and status code.", ("method", "code"),
            registry=self.registry,
        )
        self._rpc_latency = Histogram(
            "offerbandit_rpc_latency_seconds", "gRPC call latency by method.", ("method",),
            buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self._queue_depth = Gauge(
            "offerbandit_log_queue_depth", "Rows waiting for the decision-log writer.", registry=self.registry,
        )
        self._policy_version = Gauge(
            "offerbandit_policy_version_info", "The serving policy version of each campaign (value 1).",
            ("campaign", "version"), registry=self.registry,
        )
        self._quarantined = Counter(
            "offerbandit_quarantined_events", "Events taken out of learning for good because learning them "
            "broke the model (non-finite or degenerate predictions), by campaign.", ("campaign",),
            registry=self.registry,
        )
        self._rollbacks = Counter(
            "offerbandit_model_rollbacks", "Model updates rolled back because the model failed its probe, by campaign.",
            ("campaign",), registry=self.registry,
        )
        self._learn_lag_events = Gauge(
            "offerbandit_learn_lag_events", "Final events not learned yet (the learner's backlog).",
            registry=self.registry,
        )
        self._learn_lag_seconds = Gauge(
            "offerbandit_learn_lag_seconds", "Seconds since the oldest final event not learned yet became final "
            "(0 when none).", registry=self.registry,
        )
        self._gc_pauses = Histogram(
            "offerbandit_gc_pause_seconds", "Garbage collections of this process, by generation: each one stops "
            "every thread (calls in flight included) for its duration.", ("generation",),
            buckets=GC_PAUSE_BUCKETS_S, registry=self.registry,
        )
        self._decide_groups = Histogram(
            "offerbandit_decide_group_size", "Decide calls decided together (one engine pass, one commit): 1 when "
            "calls come one at a time, more under load.", buckets=DECIDE_GROUP_BUCKETS, registry=self.registry,
        )
        self._versions: dict[str, str] = {}
        self._versions_lock = threading.Lock()

    def observe_decision(
        self, campaign: str, exploration: str, policy_version: str, latency_s: float, outcome: str = "ok"
    ) -> None:
        """Count one decision and its latency. ``exploration`` is ``none`` when no arm was drawn."""
        _check_label(campaign, "campaign")
        _check_label(exploration, "exploration", EXPLORATION_KINDS)
        _check_label(policy_version, "policy_version")
        _check_label(outcome, "outcome", DECISION_OUTCOMES)
        latency = check_scalar(latency_s, "latency_s", low=0.0)
        self._track(campaign, policy_version, (outcome, exploration))
        self._decisions.labels(campaign, outcome, exploration, policy_version).inc()
        self._decision_latency.labels(campaign).observe(latency)

    def _track(self, campaign: str, version: str, labels: tuple[str, str]) -> None:
        """Remember the series of (campaign, version); drop every series of versions beyond the newest K."""
        with self._series_lock:
            versions = self._series.setdefault(campaign, OrderedDict())
            seen = versions.get(version)
            if seen is None:
                seen = versions[version] = set()
                while len(versions) > self.versions_kept:
                    old, pairs = versions.popitem(last=False)
                    for outcome, exploration in pairs:
                        self._decisions.remove(campaign, outcome, exploration, old)
            seen.add(labels)

    def tracked_versions(self, campaign: str) -> tuple[str, ...]:
        """The policy versions of ``campaign`` that still have decision series, oldest first."""
        with self._series_lock:
            return tuple(self._series.get(campaign, ()))

    def observe_reward(self, campaign: str, outcome: str) -> None:
        _check_label(campaign, "campaign")
        _check_label(outcome, "outcome", REWARD_OUTCOMES)
        self._rewards.labels(campaign, outcome).inc()

    def observe_quarantine(self, campaign: str, n: int) -> None:
        _check_label(campaign, "campaign")
        self._quarantined.labels(campaign).inc(check_scalar(n, "n", int, low=0))

    def observe_rollback(self, campaign: str) -> None:
        _check_label(campaign, "campaign")
        self._rollbacks.labels(campaign).inc()

    def set_queue_depth(self, n: int) -> None:
        self._queue_depth.set(check_scalar(n, "n", int, low=0))

    def set_learn_lag(self, events: int, seconds: float) -> None:
        """The learner's lag: final events without a learn_seq, and the age of the oldest of them."""
        self._learn_lag_events.set(check_scalar(events, "events", int, low=0))
        self._learn_lag_seconds.set(check_scalar(seconds, "seconds", low=0.0))

    def set_policy_version(self, campaign: str, version: str) -> None:
        """Mark ``version`` as the one serving ``campaign``; the previous version's series is removed."""
        _check_label(campaign, "campaign")
        _check_label(version, "version")
        with self._versions_lock:
            previous = self._versions.get(campaign)
            if previous is not None and previous != version:
                self._policy_version.remove(campaign, previous)
            self._versions[campaign] = version
            self._policy_version.labels(campaign, version).set(1)

    def observe_rpc(self, method: str, code: str, latency_s: float) -> None:
        """One gRPC call; ``code`` is the status name, e.g. ``OK`` or ``INVALID_ARGUMENT``."""
        _check_label(method, "method")
        _check_label(code, "code")
        latency = check_scalar(latency_s, "latency_s", low=0.0)
        self._rpcs.labels(method, code).inc()
        self._rpc_latency.labels(method).observe(latency)

    def observe_gc_pause(self, generation: int, seconds: float) -> None:
        """One garbage collection of ``generation`` (0, 1 or 2) that took ``seconds``."""
        check_scalar(generation, "generation", int, low=0, high=2)
        self._gc_pauses.labels(str(generation)).observe(check_scalar(seconds, "seconds", low=0.0))

    def observe_decide_group(self, size: int) -> None:
        """``size`` Decide calls were decided together (`service.combiner`)."""
        self._decide_groups.observe(check_scalar(size, "size", int, low=1))

    def render(self) -> bytes:
        """The Prometheus text exposition of this instance's registry."""
        return generate_latest(self.registry)

    def serve_http(self, host: str, port: int) -> MetricsHTTPServer:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread; ``port=0`` picks a free port."""
        check_scalar(port, "port", int, low=0, high=65535)
        _check_label(host, "host")
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsHTTPServer(host=host, port=httpd.server_address[1], _httpd=httpd, _thread=thread)
