"""service.gc_pauses: real collections of this process are timed, counted by generation and, past the
threshold, logged in the line bench/bench_latency.py matches."""
import gc
import logging
import re

import pytest

from offerbandit.errors import InvalidInput
from service.gc_pauses import GC_PAUSE_LINE, GcPauseWatch
from service.metrics import Metrics


def _collect_observed(watch: GcPauseWatch, generation: int) -> None:
    watch.install()
    try:
        gc.collect(generation)
    finally:
        watch.uninstall()


def test_a_full_collection_is_observed_with_its_generation_and_a_plausible_duration():
    seen = []
    _collect_observed(GcPauseWatch(lambda generation, seconds: seen.append((generation, seconds))), 2)
    full = [seconds for generation, seconds in seen if generation == 2]
    assert len(full) == 1  # exactly the collection asked for (no young one runs inside it)
    assert 0.0 < full[0] < 5.0


def test_uninstall_stops_observing_and_install_is_idempotent():
    seen = []
    watch = GcPauseWatch(lambda generation, seconds: seen.append(generation))
    watch.install()
    watch.install()
    try:
        assert sum(1 for callback in gc.callbacks if callback == watch._callback) == 1
        gc.collect(1)
    finally:
        watch.uninstall()
    assert seen.count(1) == 1  # installed twice, observed once
    gc.collect(1)
    assert seen.count(1) == 1
    assert watch._callback not in gc.callbacks


def test_long_collections_are_logged_in_the_line_the_latency_bench_reads(caplog):
    from bench.bench_latency import SERVER_GC

    caplog.set_level(logging.INFO, logger="offerbandit.gc")
    _collect_observed(GcPauseWatch(lambda generation, seconds: None, logged_pause_s=0.0), 2)
    lines = [r.getMessage() for r in caplog.records if r.name == "offerbandit.gc"]
    assert lines, "a collection over the threshold (0 s) was not logged"
    match = SERVER_GC.search(lines[-1])
    assert match is not None, lines[-1]
    assert match.group(1) == "2" and float(match.group(2)) >= 0.0
    assert GC_PAUSE_LINE.startswith("garbage collection of generation")


def test_short_collections_are_not_logged(caplog):
    caplog.set_level(logging.INFO, logger="offerbandit.gc")
    _collect_observed(GcPauseWatch(lambda generation, seconds: None, logged_pause_s=60.0), 0)
    assert not [r for r in caplog.records if r.name == "offerbandit.gc"]


def test_the_metrics_count_pauses_by_generation():
    metrics = Metrics()
    _collect_observed(GcPauseWatch(metrics.observe_gc_pause), 2)
    text = metrics.render().decode()
    count = re.search(r'^offerbandit_gc_pause_seconds_count\{generation="2"\} (\S+)$', text, re.M)
    assert count is not None and float(count.group(1)) == 1.0
    with pytest.raises(InvalidInput):
        metrics.observe_gc_pause(3, 0.01)
    with pytest.raises(InvalidInput):
        metrics.observe_gc_pause(0, -1.0)
    with pytest.raises(InvalidInput):
        GcPauseWatch(lambda generation, seconds: None, logged_pause_s=-0.5)
