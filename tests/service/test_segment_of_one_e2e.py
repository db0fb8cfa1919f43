"""Segment of one through the real server (issue 16): on the individual-habit world (seeded), the served VW
policy with per-customer features against per-segment rules in hindsight and mass marketing on the same
requests (the last sixth of 60 decisions per customer).

Deterministic: the world and its request stream are seeded, event ids derive from the world's seed (so the
server's draws do too), each Reward waits for the one before (the learner sees them in decision order) and
every DecideBatch waits until the learner has learned -- and published to decisions -- everything rewarded
before it. The test proves it by running the first part twice and comparing every decision.

Where it stands (seed 404 was one of the worlds the feature design was chosen on): on this small world (40
customers, kept small for the suite's time) the served policy is at 0.91x per-segment rules in hindsight and
1.83x mass marketing; bench/bench_habits.py reports 100-customer worlds, where it is above per-segment rules
but short of the issue's 1.5x. The bounds are two-sided: a broken feature path falls under the lower one;
passing the upper one means the level moved and the bounds should move with it.
"""
from __future__ import annotations

import numpy as np
import pytest

from offerbandit.demo.traffic import Step, drive, world_catalog_toml
from simulator import CustomerWorld, WorldConfig, per_segment_rules_rewards

WORLD = WorldConfig(seed=404, n_customers=40, fatigue=False, drift=False, habits="individual")
PER_CUSTOMER = 60
REPEATED = 640  # decisions run a second time on a fresh server to show the run is deterministic


def _lockstep_run(start_server, n: int) -> list[Step]:
    world = CustomerWorld(WORLD)
    served = start_server('[privacy]\nuser_hash_key = "segment-of-one-e2e-key"\n'
                          + world_catalog_toml(world, extra="personal_features = true"))
    learner = served.server.learner
    return list(drive(served.stub, world, n, batch_size=32, ordered_rewards=True,
                      on_batch=lambda _: learner.wait_idle(60)))


@pytest.mark.slow
def test_per_customer_features_against_per_segment_rules_on_individual_habits_deterministically(start_server):
    n = WORLD.n_customers * PER_CUSTOMER
    steps = _lockstep_run(start_server, n)
    again = _lockstep_run(start_server, REPEATED)
    assert [(s.event_id, s.arm, s.probability) for s in again] == [(s.event_id, s.arm, s.probability)
                                                                   for s in steps[:REPEATED]]
    late = steps[n - n // 6:]
    matrix = np.stack([s.expected for s in late])
    rules = per_segment_rules_rewards(matrix, np.array([s.segment for s in late])).mean()
    personal = float(np.mean([s.expected_reward for s in late]))
    mass = float(np.mean([s.best_single_reward for s in late]))
    oracle = float(matrix.max(axis=1).mean())
    # the world: per-segment rules are far from the oracle when habits are individual
    assert 0.25 < rules / oracle < 0.5
    # the served policy: well above mass marketing; with 40 customers (2,400 events to learn the shared match
    # weights from) just short of per-segment rules -- today 0.91x; 1.2-1.7x with 100 customers in the bench
    assert personal > 1.6 * mass
    assert 0.8 * rules < personal < 1.05 * rules
