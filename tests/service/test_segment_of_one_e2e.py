"""Segment of one through the real server (issue 16): on the individual-habit world (seeded), the served VW
policy with per-customer features beats per-segment rules picked in hindsight on the same requests, by a
margin, in the last sixth of 60 decisions per customer -- and the run is deterministic.

Deterministic: the world and its request stream are seeded, event ids derive from the world's seed (so the
server's draws do too), each Reward waits for the one before (the learner sees them in decision order) and
every DecideBatch waits until the learner has learned -- and published to decisions -- everything rewarded
before it. One run serves both checks: its first ``REPEATED`` decisions are run again on a fresh server and
compared decision by decision, and its last sixth is measured against the margin.

The world: seed 606 is not one of the learning bench's report seeds (202, 303, 505). It was not used to choose
the match features (tuned on 101 and 404); it was one of the four seeds (101, 404, 111, 606) the per-customer
posterior's defaults were tuned on in process, so this test checks the product works, not how well it does on
unseen customers (the bench's report seeds say that). 100 customers. The pinned values are
in one place below, with how they were produced, so they can be re-pinned after a change of VW defaults.
"""
from __future__ import annotations

import numpy as np
import pytest

from offerbandit.demo.traffic import Step, drive, world_catalog_toml
from simulator import CustomerWorld, WorldConfig, per_segment_rules_rewards

WORLD = WorldConfig(seed=606, n_customers=100, fatigue=False, drift=False, habits="individual")
PER_CUSTOMER = 60
REPEATED = 640  # decisions run a second time on a fresh server to show the run is deterministic
CAMPAIGN_LINES = "personal_features = true"

# --- pinned (2026-12-03) --------------------------------------------------------------------------------------
# Produced by this test's own run: `.venv/bin/python -m pytest -q -s -p no:cacheprovider
# tests/service/test_segment_of_one_e2e.py` prints the measured ratios (MEASURED ... below). With the
# per-customer posterior (the default `personal_model`, policies/personal.py) it measured served / per-segment
# rules = 1.636 (served 0.2991, rules 0.1828, oracle 0.5521, mass marketing 0.0882: 0.542x oracle, 3.39x mass
# marketing; rules at 0.331x oracle). Before it (2026-12-02), VW's match features measured 1.146 (0.380x oracle,
# 2.38x mass marketing), and with CAMPAIGN_LINES = "personal_features = false" (VW on the context alone) 0.746
# (1.55x mass marketing): both under MARGIN_OVER_RULES and OVER_MASS, so either regression fails.
# Re-pin: run as above, keep MARGIN_OVER_RULES at least 0.05 under the measured ratio and above the context-only
# one, and UPPER_OVER_RULES about 0.15 over the measured ratio.
MARGIN_OVER_RULES = 1.45
UPPER_OVER_RULES = 1.8
RULES_OVER_ORACLE = (0.25, 0.45)  # the world: per-segment rules far from the oracle when habits are individual
OVER_MASS = (2.6, 4.0)


def _lockstep_run(start_server, n: int) -> list[Step]:
    world = CustomerWorld(WORLD)
    served = start_server('[privacy]\nuser_hash_key = "segment-of-one-e2e-key"\n'
                          + world_catalog_toml(world, extra=CAMPAIGN_LINES))
    learner = served.server.learner
    return list(drive(served.stub, world, n, batch_size=32, ordered_rewards=True,
                      on_batch=lambda _: learner.wait_idle(60)))


@pytest.mark.slow
@pytest.mark.timeout(600)  # about 2.5 min at load 6 (the default is 300 s)
def test_per_customer_features_beat_per_segment_rules_on_individual_habits_deterministically(start_server):
    n = WORLD.n_customers * PER_CUSTOMER
    steps = _lockstep_run(start_server, n)
    again = _lockstep_run(start_server, REPEATED)
    assert [(s.event_id, s.arm, s.probability) for s in again] == [(s.event_id, s.arm, s.probability)
                                                                   for s in steps[:REPEATED]]
    late = steps[n - n // 6:]
    matrix = np.stack([s.expected for s in late])
    rules = float(per_segment_rules_rewards(matrix, np.array([s.segment for s in late])).mean())
    personal = float(np.mean([s.expected_reward for s in late]))
    mass = float(np.mean([s.best_single_reward for s in late]))
    oracle = float(matrix.max(axis=1).mean())
    print(f"\nMEASURED served {personal:.4f} rules {rules:.4f} oracle {oracle:.4f} mass {mass:.4f}: "
          f"{personal / rules:.3f}x rules, {personal / oracle:.3f}x oracle, {personal / mass:.2f}x mass, "
          f"rules {rules / oracle:.3f}x oracle")
    # the claim: the product beats a marketer's segment table picked in hindsight, by a margin
    assert MARGIN_OVER_RULES * rules <= personal < UPPER_OVER_RULES * rules
    assert OVER_MASS[0] * mass < personal < OVER_MASS[1] * mass
    assert RULES_OVER_ORACLE[0] < rules / oracle < RULES_OVER_ORACLE[1]
