"""Direction check: at the same exploration rate, exploring outside the customer's history finds hidden
latent interests more often than ε-greedy, at no worse reward (a short, seeded version of
bench/bench_exploration.py, which holds the simulated experiment)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from simulator import WorldConfig

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_exploration.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_exploration", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_novelty_finds_hidden_interests_more_often_than_epsilon_greedy():
    bench = _bench_module()
    n_customers = 150
    totals = {"epsilon_greedy": [0, 0, 0.0], "novelty": [0, 0, 0.0]}
    for seed in (1, 2):
        config = WorldConfig(seed=seed, n_customers=n_customers, base_rate=0.03, latent_share=0.5)
        warm = bench.legacy_warm_start(config, 10 * n_customers, prior_weight=5.0)
        assert warm.hidden  # the world does hold interests the legacy system never showed
        for explorer, total in totals.items():
            result = bench.run(explorer, warm, n_requests=20 * n_customers, epsilon=0.1, horizon_days=90.0)
            total[0] += result.discovered
            total[1] += result.discovered_by_exploration
            total[2] += result.mean_reward * result.decisions
            if explorer == "novelty":
                assert 0.0 < result.report.share_outside_history <= 0.1 + 0.02
            else:
                assert result.report.share_outside_history == 0.0

    novelty, baseline = totals["novelty"], totals["epsilon_greedy"]
    assert novelty[0] > 1.1 * baseline[0], totals
    assert novelty[1] > 1.2 * baseline[1], totals
    assert novelty[2] >= 0.95 * baseline[2], totals
