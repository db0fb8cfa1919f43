"""Learning speed at 128 joint arms: the served policy's own ``VWPolicy.learn`` against the way it
learned before (every arm's parsed example and VW's prediction pass inside an mtr update), VW's
``learn_multi`` alone, and a check that both ways learn the same model (saved bytes compared).

    python bench/bench_learner.py [--quick | --tiny] [--json PATH]

Rates are wall-clock, best of 3 passes (each pass a fresh policy learning the same events), with the
process's CPU time per event beside them (other work on the machine inflates wall time, not CPU time).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Report, parse_flags  # noqa: E402
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer  # noqa: E402
from policies.vw.features import arm_line, shared_line  # noqa: E402
from policies.vw.learner import CbAdfLearner  # noqa: E402
from policies.vw.policy import VWPolicy, VWPolicyConfig  # noqa: E402
from policies.vw.workspace import learn_multi, new_workspace, parse_example, save_workspace  # noqa: E402

FORMATS = ("sms", "email", "push", "in_app")
SLOTS = ("morning", "lunch", "evening", "night")
BATCH = 64  # the service learner's batch_size


def arm_set_128() -> ArmSet:
    offers = [Offer(f"offer-{i}", {"category": f"cat-{i % 7}", "discount": f"{i % 5}0%"}) for i in range(8)]
    return ArmSet.product(offers, FORMATS, SLOTS)


def events(arm_set: ArmSet, count: int, seed: int, *, new_objects: bool = False) -> list[LearningEvent]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        context = DecisionContext(f"u{i}", {"segment": f"s{rng.integers(6)}", "device": ("ios", "web")[i % 2],
                                            "weekday": f"d{rng.integers(7)}"},
                                  {"tenure": float(rng.integers(100)), "spend": float(rng.random() * 50)})
        arms = ArmSet(arm_set.arms, arm_set.offers) if new_objects else arm_set
        out.append(LearningEvent(context, arms, int(rng.integers(len(arm_set))), float(rng.uniform(0.002, 0.5)),
                                 float(rng.random() < 0.2)))
    return out


class PlainLearner:
    """How the learner learned before issue 15: a workspace without ``--no_predict``, pyvw examples for
    the shared line, every arm (cached) and the labelled chosen arm. The reference for speed and bytes."""

    def __init__(self, config: VWPolicyConfig) -> None:
        self.vw = new_workspace([*config.options().args(), "--save_resume"])
        self.label_type = self.vw.get_label_type()
        self.arms: dict[int, tuple[ArmSet, list[str], list]] = {}  # by ArmSet object, held

    def learn(self, batch: Sequence[LearningEvent]) -> None:
        for event in batch:
            arm_set = event.arm_set
            known = self.arms.get(id(arm_set))
            if known is None:
                lines = [arm_line(arm, arm_set.offers[arm.offer_id]) for arm in arm_set.arms]
                known = self.arms[id(arm_set)] = (arm_set, lines, [parse_example(self.vw, line, self.label_type)
                                                                   for line in lines])
            _, lines, cached = known
            examples = [parse_example(self.vw, shared_line(event.context), self.label_type), *cached]
            label = f"0:{-event.reward!r}:{event.probability!r}"
            examples[event.chosen + 1] = parse_example(self.vw, f"{label} {lines[event.chosen]}", self.label_type)
            learn_multi(self.vw, examples)

    def save(self) -> bytes:
        return save_workspace(self.vw)


def timed(make: Callable[[], object], learn_of: Callable[[object], Callable], items: list[LearningEvent],
          passes: int) -> tuple[float, float, object]:
    """Best events/s (wall) and its CPU us/event over ``passes`` fresh learners; the last learner."""
    best_rate, best_cpu, learner = 0.0, 0.0, None
    for _ in range(passes):
        learner = make()
        learn = learn_of(learner)
        learn(items[:BATCH])  # first sight of the arm set (parsing every arm once) is not the steady state
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(BATCH, len(items), BATCH):
            learn(items[start:start + BATCH])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rate = (len(items) - BATCH) / wall
        if rate > best_rate:
            best_rate, best_cpu = rate, cpu / (len(items) - BATCH) * 1e6
    return best_rate, best_cpu, learner


def vw_alone(config: VWPolicyConfig, items: list[LearningEvent]) -> tuple[float, float]:
    """``learn_multi`` alone on the fast learner's examples, built beforehand (the floor of Python cost)."""
    learner = CbAdfLearner(config.options())
    learner.learn(items[:BATCH])
    with learner._lock:
        built = [learner._learn_examples(e.context, e.arm_set, e.chosen, f"0:{-e.reward!r}:{e.probability!r}")
                 for e in items]
        wall, cpu = time.perf_counter(), time.process_time()
        for examples in built:
            learn_multi(learner._vw, examples)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(built) / wall, cpu / len(built) * 1e6


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0])
    report = Report("bench_learner", args.mode)
    count = {"tiny": 400, "quick": 3000, "full": 10_000}[args.mode]
    passes = 1 if args.mode == "tiny" else 3
    config = VWPolicyConfig(seed=2)  # the served default: squarecb, mtr, -b 24, 7 interactions
    arm_set = arm_set_128()
    items = events(arm_set, count, seed=5)
    fresh = events(arm_set, count, seed=5, new_objects=True)

    plain_rate, plain_cpu, plain = timed(lambda: PlainLearner(config), lambda p: p.learn, items, passes)
    fast_rate, fast_cpu, fast = timed(lambda: VWPolicy(config), lambda p: p.learn, items, passes)
    fresh_rate, fresh_cpu, _ = timed(lambda: VWPolicy(config), lambda p: p.learn, fresh, passes)
    alone_rate, alone_cpu = vw_alone(config, items)
    same = plain.save() == fast._learner.save()
    rows = [
        ["before: every arm's pyvw example, cb_adf predicting inside the mtr update", round(plain_rate, 1),
         round(plain_cpu, 1), 1.0],
        ["VWPolicy.learn, one ArmSet object per arm set (as the log's decoder caches them)", round(fast_rate, 1),
         round(fast_cpu, 1), round(fast_rate / plain_rate, 2)],
        ["VWPolicy.learn, a new ArmSet object per event", round(fresh_rate, 1), round(fresh_cpu, 1),
         round(fresh_rate / plain_rate, 2)],
        ["VW learn_multi alone (the fast examples built beforehand)", round(alone_rate, 1), round(alone_cpu, 1),
         round(alone_rate / plain_rate, 2)],
    ]
    report.table(f"Online learning, 128 joint arms per event, batches of {BATCH}, {count - BATCH:,} events "
                 f"(squarecb, -b 24, 7 interactions; best of {passes})",
                 ["learner", "events/s", "CPU us/event", "x before"], rows)
    report.note(f"the same {count:,} events learned both ways give byte-identical saved models: {same} "
                "(tests/policies/test_vw_learn_speed.py checks it for every exploration and cb_type)")
    if not same:
        raise SystemExit("the fast learner learned a different model")
    report.goal("learner_events_per_s_128_arms",
                f"events/s of VWPolicy.learn (the served policy's learning) at 128 joint arms, batches of {BATCH}, "
                "events as decoded from the log (one ArmSet object per arm set), wall clock, best of "
                f"{passes} passes", fast_rate, 10_000)
    report.write(args.json)


if __name__ == "__main__":
    main()
