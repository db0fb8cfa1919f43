"""Policy speed: pmf per decision (128 / 512 joint arms, single and batched), cached vs text-built
arm examples, first-sight cost, lock cost, online learning events/s, reward-model predictions, and the
pmf latency while a learner thread learns and checkpoints (one workspace vs double-buffered).

    python bench/bench_policies.py [--quick]

All figures come from one run on this machine; ratios are printed next to them.
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from policies.vw.double_buffer import DoubleBuffer
from policies.vw.learner import CbAdfLearner
from policies.vw.regressor import RewardRegressorConfig, VWRewardRegressor
from policies.vw.policy import VWPolicy, VWPolicyConfig
from policies.vw.workspace import learn_multi

FORMATS = ["sms", "email", "push", "in_app"]


def arm_set_of(n_arms: int) -> ArmSet:
    slots = ["morning", "lunch", "evening", "night"][: max(1, n_arms // 64)]
    n_offers = n_arms // (len(FORMATS) * len(slots))
    offers = [Offer(f"offer-{i}", {"category": f"cat-{i % 7}", "discount": f"{i % 5}0%"}) for i in range(n_offers)]
    arm_set = ArmSet.product(offers, FORMATS, slots)
    assert len(arm_set) == n_arms, len(arm_set)
    return arm_set


def contexts(count: int, seed: int = 0) -> list[DecisionContext]:
    rng = np.random.default_rng(seed)
    return [DecisionContext(f"u{i}", {"segment": f"s{rng.integers(6)}", "device": ("ios", "web")[i % 2],
                                      "weekday": f"d{rng.integers(7)}"},
                            {"tenure": float(rng.integers(100)), "spend": float(rng.random() * 50)})
            for i in range(count)]


def events_for(policy: VWPolicy, arm_set: ArmSet, count: int, seed: int = 1) -> list[LearningEvent]:
    rng = np.random.default_rng(seed)
    out = []
    for context in contexts(count, seed):
        chosen = int(rng.integers(len(arm_set)))
        out.append(LearningEvent(context, arm_set, chosen, 1.0 / len(arm_set), float(rng.random() < 0.2)))
    return out


def per_call_us(function, items, rounds: int = 5) -> float:
    """Best of ``rounds`` passes over ``items`` (the minimum is robust to other load on the machine)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, (time.perf_counter() - start) / len(items) * 1e6)
    return best


def learn_rate(policy: VWPolicy, events: list[LearningEvent]) -> float:
    start = time.perf_counter()
    for i in range(0, len(events), 100):
        policy.learn(events[i:i + 100])
    return len(events) / (time.perf_counter() - start)


def latency_under_learning(policy: VWPolicy, arm_set: ArmSet, seconds: float) -> tuple[float, float, float, int, int]:
    """pmf latency (p50, p99, max in ms), decisions and checkpoints while another thread learns in batches
    of 100 and saves every 1,000 events (what the service's learner and checkpointer do)."""
    events = events_for(policy, arm_set, 2000, seed=5)
    ctxs = contexts(500, seed=8)
    policy.learn(events[:100])
    policy.pmf(ctxs[0], arm_set)
    stop = threading.Event()
    saves = [0]

    def learn_and_checkpoint() -> None:
        learned = 0
        while not stop.is_set():
            start = learned % len(events)
            policy.learn(events[start:start + 100])
            learned += 100
            if learned % 1000 == 0:
                policy.save()
                saves[0] += 1

    thread = threading.Thread(target=learn_and_checkpoint)
    thread.start()
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        policy.pmf(ctxs[len(latencies) % len(ctxs)], arm_set)
        latencies.append(time.perf_counter() - started)
    stop.set()
    thread.join()
    ms = np.asarray(latencies) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max()), len(ms), saves[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run")
    args = parser.parse_args()
    n_decisions = 100 if args.quick else 1000
    n_learn = 500 if args.quick else 5000

    policy = VWPolicy(VWPolicyConfig(seed=1))  # default: squarecb, -b 24, 7 interactions
    learner: CbAdfLearner = policy._learner  # the mediator, to time below the policy layer
    print(f"VW {policy.params['exploration']}, bits {policy.params['bits']}, interactions {policy.params['interactions']}")

    for n_arms in (128, 512):
        arm_set = arm_set_of(n_arms)
        policy.learn(events_for(policy, arm_set, 200))
        ctxs = contexts(n_decisions, seed=n_arms)
        cold = VWPolicy(VWPolicyConfig(seed=1))
        start = time.perf_counter()
        cold.pmf(ctxs[0], arm_set)
        first_sight = (time.perf_counter() - start) * 1e6
        cached = per_call_us(lambda c: policy.pmf(c, arm_set), ctxs)
        text = per_call_us(lambda c: learner.predict_pmf_uncached(c, arm_set), ctxs[: max(50, n_decisions // 4)])
        batches = [[(c, arm_set) for c in ctxs[i:i + 32]] for i in range(0, len(ctxs), 32)]
        batched = per_call_us(policy.pmf_batch, batches) * len(batches) / len(ctxs)
        no_lock = per_call_us(lambda c: learner._pmf_locked(c, arm_set), ctxs)
        copies = [ArmSet(arm_set.arms, arm_set.offers) for _ in ctxs]  # equal arms, new objects
        fresh_object = per_call_us(lambda i: policy.pmf(ctxs[i], copies[i]), range(len(ctxs)))
        print(f"\n{n_arms} joint arms per decision")
        print(f"  pmf, cached arm examples  {cached:9.1f} us/decision  ({1e6 / cached:,.0f}/s on one core)")
        print(f"  pmf_batch (32 per call)   {batched:9.1f} us/decision  ({1e6 / batched:,.0f}/s)")
        print(f"  pmf, new ArmSet object    {fresh_object:9.1f} us/decision  (same arms: the per-arm cache path)")
        print(f"  pmf from text lines       {text:9.1f} us/decision  (cached is {text / cached:.1f}x faster)")
        print(f"  first sight of the arms   {first_sight:9.1f} us        (parse + cache every arm once)")
        print(f"  mediator without the lock {no_lock:9.1f} us/decision  (lock + policy layer: {cached - no_lock:+.1f} us)")
        print(f"  first sight includes page faults of a fresh -b {policy.params['bits']} weight table")

    lock = threading.Lock()
    loops = 200_000 if args.quick else 1_000_000
    def acquire_release(_):
        with lock:
            pass
    lock_ns = per_call_us(acquire_release, range(loops)) * 1e3
    print(f"\nuncontended lock acquire+release: {lock_ns:.0f} ns (x{lock_ns / 1e3 / cached:.4f} of a 512-arm decision)")

    arm_set = arm_set_of(128)
    ctxs = contexts(n_decisions, seed=3)
    serial_start = time.perf_counter()
    for c in ctxs:
        policy.pmf(c, arm_set)
    serial = time.perf_counter() - serial_start
    threads = [threading.Thread(target=lambda part=part: [policy.pmf(c, arm_set) for c in part])
               for part in (ctxs[::2], ctxs[1::2])]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contended = time.perf_counter() - start
    print(f"2 threads sharing one workspace (128 arms): {len(ctxs) / contended:,.0f} decisions/s "
          f"vs serial {len(ctxs) / serial:,.0f}/s (x{serial / contended:.2f}; the lock serialises VW)")

    print()
    for n_arms in (12, 128):
        arm_set = arm_set_of(n_arms) if n_arms >= 64 else ArmSet.product(
            [Offer(f"o{i}", {"category": "c"}) for i in range(3)], FORMATS, ["am"])
        learner_policy = VWPolicy(VWPolicyConfig(seed=2))
        events = events_for(learner_policy, arm_set, n_learn, seed=5)
        learner_policy.learn(events[:50])
        rate = learn_rate(learner_policy, events)
        print(f"online learning, {n_arms:3d} arms per event: {rate:,.0f} events/s (batches of 100)")
    arm_set = arm_set_of(128)
    events = [LearningEvent(e.context, ArmSet(arm_set.arms, arm_set.offers), e.chosen, e.probability, e.reward)
              for e in events_for(policy, arm_set, n_learn // 2, seed=6)]
    floor = VWPolicy(VWPolicyConfig(seed=2))
    floor.learn(events[:50])
    mediator = floor._learner
    with mediator._lock:  # the examples built beforehand: what VW's learn_multi alone costs
        built = [mediator._learn_examples(e.context, arm_set, e.chosen, f"0:{-e.reward!r}:{e.probability!r}")
                 for e in events[:1000]]
        start = time.perf_counter()
        for examples in built:
            learn_multi(mediator._vw, examples)
        vw_only = len(built) / (time.perf_counter() - start)
    del built
    print(f"VW's learn_multi alone (the learner's examples built beforehand), 128 arms: {vw_only:,.0f} events/s "
          "(the ceiling)")
    learner_policy = VWPolicy(VWPolicyConfig(seed=2))
    learner_policy.learn(events[:50])
    print(f"online learning, 128 arms, a new ArmSet object per event (as decoded from a log): "
          f"{learn_rate(learner_policy, events):,.0f} events/s")

    print("\npmf latency while a learner thread learns (batches of 100) and checkpoints (save every 1,000 events),"
          " 128 arms:")
    seconds = 3.0 if args.quick else 8.0
    for label, candidate in (("one workspace (lock shared)", VWPolicy(VWPolicyConfig(seed=1))),
                             ("double-buffered", VWPolicy(VWPolicyConfig(seed=1), double_buffer=DoubleBuffer()))):
        p50, p99, worst, decisions, saves = latency_under_learning(candidate, arm_set, seconds)
        print(f"  {label:28s} p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  max {worst:7.1f} ms  "
              f"({decisions / seconds:,.0f} decisions/s, {saves} checkpoints)")
        candidate.close()

    regressor = VWRewardRegressor(RewardRegressorConfig(epochs=1))
    arm_set = arm_set_of(512)
    events = events_for(policy, arm_set, n_learn // 5, seed=9)
    start = time.perf_counter()
    regressor.fit(events)
    fit_rate = len(events) / (time.perf_counter() - start)
    predict = per_call_us(lambda c: regressor.predict(c, arm_set), contexts(n_decisions // 2, seed=4))
    print(f"reward model: fit {fit_rate:,.0f} events/s per epoch; predict 512 arms {predict:.1f} us/context")


if __name__ == "__main__":
    main()
