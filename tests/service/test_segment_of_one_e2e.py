"""Segment of one through the real server (issue 16): on the individual-habit world (seeded), the served VW
policy with per-customer features against per-segment rules in hindsight and mass marketing on the same
requests (the last sixth of 60 decisions per customer).

Where it stands, measured (bench/bench_habits.py): BELOW the issue's goal of 1.5x per-segment rules — about
0.8-1.0x on this world — so the bounds pin today's level on both sides (a broken feature path falls under the
lower one; passing the upper one means the goal is in reach and the bounds should move up), not the goal.
The world and its request stream are seeded; the server's draws are seeded per event id (fresh ids here)
and learning runs beside serving, so the figures vary a little from run to run, inside the bounds.
"""
from __future__ import annotations

import numpy as np
import pytest

from offerbandit.demo.traffic import drive, world_catalog_toml
from simulator import CustomerWorld, WorldConfig

WORLD = WorldConfig(seed=404, n_customers=40, fatigue=False, drift=False, habits="individual")
PER_CUSTOMER = 60


@pytest.mark.slow
def test_per_customer_features_against_per_segment_rules_on_individual_habits(start_server):
    world = CustomerWorld(WORLD)
    served = start_server('[privacy]\nuser_hash_key = "segment-of-one-e2e-key"\n'
                          + world_catalog_toml(world, extra="personal_features = true"))
    n = WORLD.n_customers * PER_CUSTOMER
    steps = list(drive(served.stub, world, n, batch_size=32))[n - n // 6:]
    matrix = np.stack([s.expected for s in steps])
    segments = np.array([s.segment for s in steps])
    rules = np.empty(len(steps))
    for segment in np.unique(segments):
        rows = segments == segment
        rules[rows] = matrix[rows, int(np.argmax(matrix[rows].mean(axis=0)))]  # best arm per segment, hindsight
    personal = float(np.mean([s.expected_reward for s in steps]))
    mass = float(np.mean([s.best_single_reward for s in steps]))
    oracle = float(matrix.max(axis=1).mean())
    # the world: per-segment rules are far from the oracle when habits are individual
    assert 0.25 < rules.mean() / oracle < 0.5
    # the served policy: well above mass marketing, near per-segment rules (today: short of the 1.5x goal)
    assert personal > 1.3 * mass
    assert 0.55 * rules.mean() < personal < 1.5 * rules.mean()
