"""Issue 14, item 3: every cache on the request path is bounded in bytes, and its estimate is honest."""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np


from policies.bounded import ByteLRU
from policies.types import ArmSet, DecisionContext, Offer
from policies.vw.learner import CbAdfLearner, CbAdfOptions
from policies.vw.workspace import EXAMPLE_BYTES
from service.campaigns import CampaignCaches, build_runtimes
from service.config import ServiceConfig, default_campaign
from service.metrics import Metrics
from service.outcomes import DecisionOutcome, RepeatCache, RepeatRecord, arm_set_bytes
from tests.conftest import make_request
from tests.repeats import assert_repeat_of


def _offers(n: int, tag: str) -> tuple[Offer, ...]:
    return tuple(Offer(f"{tag}-{i:04d}", {"category": f"c{i % 7}", "brand": f"b{i}"}) for i in range(n))


def _record(event_id: str, arms: ArmSet, rng: np.random.Generator) -> RepeatRecord:
    pmf = rng.dirichlet(np.ones(len(arms.arms)))
    outcome = DecisionOutcome(event_id, "default", arms.arms[0], float(pmf[0]), (), "3", "exploit")
    return RepeatRecord.of(outcome, "f1:" + "0" * 32, arms, np.arange(len(arms.arms)), pmf, 0)


def test_byte_lru_keeps_the_newest_within_budget():
    cache = ByteLRU(100, lambda k, v: v)
    for i in range(10):
        cache.put(i, 30)
    assert cache.nbytes <= 100 and list(range(7, 10)) == [k for k in range(10) if k in cache]
    assert cache.get(7) == 30
    cache.put(10, 30)  # 7 was just used: 8 goes first
    assert 7 in cache and 8 not in cache
    assert not cache.put("huge", 101) and "huge" not in cache


def test_the_repeat_cache_stays_within_its_budget_and_shares_arm_sets():
    rng = np.random.default_rng(1)
    shared = ArmSet.product(_offers(24, "s"), ("sms", "email", "push", "in_app"), ("morning", "evening"))
    cache = RepeatCache(2_000_000)
    for i in range(20_000):
        cache.put(_record(f"e{i}", shared, rng))
    assert cache.nbytes <= 2_000_000
    assert 500 < len(cache) < 20_000  # ~2.8 KB each (12 B per arm); a ranking of 192 Arm tuples is ~30 KB
    assert cache.get("e19999") is not None and cache.get("e0") is None
    for i in range(200):  # requests with their own inline offers charge their own arm sets
        cache.put(_record(f"own{i}", ArmSet.product(_offers(50, f"o{i}"), ("sms",), ("morning",)), rng))
    assert cache.nbytes <= 2_000_000


def test_the_repeat_cache_hands_back_each_record_whole_and_its_entries_cost_the_collector_nothing():
    """Thousands of recent decisions are cached; an object per entry would be walked by every full collection
    while every thread waits. The entries are plain tuples the collector stops tracking."""
    rng = np.random.default_rng(2)
    shared = ArmSet.product(_offers(6, "t"), ("sms", "email"), ("morning",))
    cache = RepeatCache(2_000_000)
    records = [_record(f"e{i}", shared, rng) for i in range(50)]
    for record in records:
        cache.put(record)
    gc.collect()
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in cache._records.values())
    for record in records[::7]:
        back = cache.get(record.event_id)
        assert back.arms is shared and back.fingerprint == record.fingerprint and back.chosen == record.chosen
        assert back.outcome() == record.outcome()
        assert back.outcome(ranking_limit=3) == record.outcome(ranking_limit=3)


def test_a_repeat_record_answers_like_the_original():
    arms = ArmSet.product(_offers(5, "x"), ("sms", "email"), ("morning",))
    eligible = np.array([0, 2, 3, 5, 9])
    pmf = np.array([0.1, 0.0, 0.5, 0.15, 0.25])
    outcome = DecisionOutcome("e", "default", arms.arms[3], 0.5, (), "1", "exploit")
    record = RepeatRecord.of(outcome, None, arms, eligible, pmf, 2)
    again = record.outcome(ranking_limit=2)
    assert again.arm == arms.arms[3] and again.probability == 0.5
    assert again.ranking == ((arms.arms[3], 0.5), (arms.arms[9], 0.25))
    assert len(record.outcome().ranking) == 4  # zero-probability arms are left out


def test_estimates_are_not_below_what_tracemalloc_measures():
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        arm_sets = [ArmSet.product(_offers(100, f"m{i}"), ("sms", "email", "push"), ("morning", "evening"))
                    for i in range(20)]
        measured = (tracemalloc.get_traced_memory()[0] - before) / 20
        rng = np.random.default_rng(3)
        before = tracemalloc.get_traced_memory()[0]
        records = [_record(f"event-{i:06d}", arm_sets[0], rng) for i in range(2000)]
        per_record = (tracemalloc.get_traced_memory()[0] - before) / 2000
    finally:
        tracemalloc.stop()
    assert measured <= arm_set_bytes(arm_sets[0]) <= 2.5 * measured
    assert per_record <= records[0].nbytes <= 2.5 * per_record


def test_campaign_caches_are_bounded_in_bytes():
    runtime = build_runtimes(ServiceConfig(campaigns={"default": default_campaign()}))["default"]
    runtime.caches = CampaignCaches.with_budget(600_000)
    for i in range(300):
        offers = _offers(30, f"req{i}")
        runtime.candidates(offers, ("sms", "email"), ("morning",))
        runtime.offer_set_code(offers)
    assert runtime.caches.nbytes <= 600_000
    assert runtime.category_of("req299-0001") == "c1"  # the newest are kept ...
    assert runtime.category_of("req0-0001") is None  # ... the oldest were dropped


def test_the_vw_arm_cache_is_bounded_and_stays_exact():
    options = CbAdfOptions(bits=18, interactions=("uo", "uf"))
    learner = CbAdfLearner(options, arm_cache_bytes=60 * EXAMPLE_BYTES)
    context = DecisionContext("u", {"segment": "a"})
    for i in range(6):
        arm_set = ArmSet.product(_offers(20, f"v{i}"), ("sms", "email"), ("morning",))
        np.testing.assert_array_equal(learner.predict_pmf(context, arm_set),
                                      learner.predict_pmf_uncached(context, arm_set))
        assert learner.cached_arms <= 60
    again = ArmSet.product(_offers(20, "v5"), ("sms", "email"), ("morning",))
    np.testing.assert_array_equal(learner.predict_pmf(context, again), learner.predict_pmf_uncached(context, again))
    learner.close()


def test_metric_series_of_old_policy_versions_are_pruned():
    metrics = Metrics(versions_kept=3)
    for version in range(1, 11):
        metrics.observe_decision("default", "exploit", str(version), 0.001)
        metrics.observe_decision("default", "explore", str(version), 0.001, outcome="no_contact")
    text = metrics.render().decode()
    kept = {line.split('policy_version="')[1].split('"')[0] for line in text.splitlines()
            if line.startswith("offerbandit_decisions_total{")}
    assert kept == {"8", "9", "10"} and metrics.tracked_versions("default") == ("8", "9", "10")


def test_the_servers_repeat_cache_is_bounded_and_evicted_ids_come_from_the_log(start_server):
    served = start_server("[server]\nidempotency_cache_bytes = 20000\n")
    first = [served.stub.Decide(make_request(event_id=f"b{i}"), timeout=10) for i in range(60)]
    assert served.engine.claims.recent.nbytes <= 20000 and len(served.engine.claims.recent) < 60
    assert served.stub.Decide(make_request(event_id="b0"), timeout=10) == first[0]  # from the log
    assert served.stub.Decide(make_request(event_id="b59"), timeout=10) == first[59]  # from the cache


def test_validated_offer_lists_are_remembered_by_their_bytes_and_bounded():
    from service.config import ServiceConfig
    from service.validation import ValidatedOffers, decide_input

    config = ServiceConfig()
    known = ValidatedOffers(20_000)
    first = decide_input(make_request(), config.limits, config.privacy, known)
    again = decide_input(make_request(user="bob"), config.limits, config.privacy, known)
    plain = decide_input(make_request(), config.limits, config.privacy)
    assert again.offers is first.offers and first.offers_key == again.offers_key and first.offers_key
    assert first.offers == plain.offers and plain.offers_key == b""
    changed = make_request(offers=[("o1", {"category": "travel"}), ("o2", {"category": "toys"})])
    other = decide_input(changed, config.limits, config.privacy, known)
    assert other.offers_key != first.offers_key and other.offers[1].features["category"] == "toys"
    for i in range(200):  # many distinct lists: the budget holds
        decide_input(make_request(offers=[(f"x{i}", {"category": "c"})]), config.limits, config.privacy, known)
        assert known.nbytes <= 20_000
