"""The compact log keeps the policy's pmf as the novelty mixture that made the served pmf (~40 bytes instead
of 4 per arm) wherever that gives it back within MIXTURE_TOLERANCE, else as float32."""
from __future__ import annotations

import numpy as np
import pytest

from decision_log.codec import MIXTURE_MAGIC, MIXTURE_TOLERANCE, as_stored, pmf32_to_blob, policy_pmf_blob, \
    policy_pmf_of
from policies.novelty import novelty_mixture, policy_of_mixture


def _case(rng: np.random.Generator, n: int, outside_share: float, grouped: bool):
    policy = rng.dirichlet(np.full(n, 0.3))
    outside = rng.random(n) < outside_share
    groups = rng.integers(0, 5, n) if grouped else None
    return policy, outside, groups


@pytest.mark.parametrize("outside_share", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("beta, floor", [(0.05, 0.1), (0.1, 0.0), (0.5, 1.0), (0.1, 0.1)])
@pytest.mark.parametrize("grouped", [False, True])
def test_the_mixture_inverts_exactly_in_float64(outside_share, beta, floor, grouped):
    rng = np.random.default_rng(int(beta * 100 + floor * 10 + outside_share * 3 + grouped))
    for _ in range(20):
        policy, outside, groups = _case(rng, 128, outside_share, grouped)
        mixture = novelty_mixture(policy, outside, beta, floor, groups=groups)
        back = policy_of_mixture(mixture.p, outside, mixture.beta, floor, groups)
        assert np.max(np.abs(back - policy)) <= 1e-12


@pytest.mark.parametrize("grouped", [False, True])
def test_a_stored_row_keeps_the_mixture_and_gives_the_policy_back_within_the_tolerance(grouped):
    rng = np.random.default_rng(7 + grouped)
    kept = 0
    for _ in range(200):
        policy, outside, groups = _case(rng, 128, 1.0 if rng.random() < 0.3 else float(rng.random()), grouped)
        mixture = novelty_mixture(policy, outside, 0.1, 0.1, groups=groups)
        if mixture.beta == 0.0:
            continue
        chosen = int(rng.choice(128, p=mixture.p))
        stored = as_stored(mixture.p, chosen, float(mixture.p[chosen]))
        blob = policy_pmf_blob(policy, mixture.p, mixture, stored, groups)
        back = policy_pmf_of(blob, stored, True, mixture.beta, lambda: groups)
        assert np.max(np.abs(back - policy)) <= MIXTURE_TOLERANCE
        if blob[:len(MIXTURE_MAGIC)] == MIXTURE_MAGIC:
            kept += 1
            assert len(blob) == (11 if outside.all() else 11 + 16)  # the head, and 128 bits unless all outside
        else:
            assert blob == pmf32_to_blob(policy)
    assert kept >= 180  # the mixture is the rule, float32 the exception


def test_a_mixture_that_cannot_give_the_policy_back_falls_back_to_float32():
    rng = np.random.default_rng(3)
    policy, outside, groups = _case(rng, 64, 0.5, False)
    mixture = novelty_mixture(policy, outside, 1.0, 0.1)  # beta 1: the served pmf forgets the policy inside
    stored = as_stored(mixture.p, 0, float(mixture.p[0]))
    blob = policy_pmf_blob(policy, mixture.p, mixture, stored)
    assert blob == pmf32_to_blob(policy)
    np.testing.assert_array_equal(policy_pmf_of(blob, stored, True, 1.0, lambda: groups), policy.astype(np.float32))
    assert policy_pmf_blob(mixture.p, mixture.p, mixture, stored) is None  # equal: nothing stored
