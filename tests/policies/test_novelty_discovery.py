"""Direction check: at the same exploration rate, exploring outside the customer's history finds hidden
latent interests more often than ε-greedy, at no worse reward (a short, seeded version of
bench/bench_exploration.py, which holds the simulated experiment and measures the size).

Seeds and world size differ from the benchmark's. Measured on these seeds with the default
`NoveltyConfig`, β rescaled to ε-greedy's exploration rate (mean β 0.135): 115 vs 68 customers found
(x1.69), 103 vs 56 found beyond the 12 the learner finds alone (x1.84), 77 vs 20 found by a draw of the
exploration component (x3.9), reward x0.987. The thresholds below leave a margin under those figures;
the benchmark's larger worlds give the sizes quoted in bench/README.md."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from policies.novelty import NoveltyConfig

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_exploration.py"
SEEDS = (11, 12, 13)
EPSILON = 0.1


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_exploration", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_novelty_finds_hidden_interests_more_often_than_epsilon_greedy():
    bench = _bench_module()
    comparison = bench.compare(SEEDS, 200, epsilon=EPSILON, novelty=NoveltyConfig())
    for alone, baseline, novelty in zip(comparison.learner_only, comparison.epsilon_greedy, comparison.novelty):
        assert novelty.hidden_customers == baseline.hidden_customers == alone.hidden_customers > 0  # same worlds
        assert alone.exploration_share == 0.0
        # The same exploration budget: ε-greedy explores at rate ε; novelty's β was rescaled until it
        # explores as often (β = ε explores less: β is 0 for a customer with nothing outside the history).
        assert abs(baseline.exploration_share - EPSILON) < 0.01
        assert abs(novelty.exploration_share - baseline.exploration_share) <= bench.RATE_TOLERANCE
        assert novelty.rate > EPSILON
        assert novelty.report.share_outside_history == novelty.exploration_share
        assert baseline.report.share_outside_history == 0.0

    assert comparison.total("novelty", "discovered") >= 1.3 * comparison.total("epsilon_greedy", "discovered")
    assert comparison.lift_ratio("discovered") >= 1.4
    assert comparison.total("novelty", "discovered_by_component") >= 2.0 * comparison.total(
        "epsilon_greedy", "discovered_by_component")
    assert comparison.ratio("mean_reward") >= 0.95


def test_beta_equal_to_epsilon_explores_less_than_epsilon_greedy():
    """Without rate matching β = ε, and customers with nothing left outside their history are not
    explored at all: the realised rate is below ε (why the benchmark rescales β)."""
    bench = _bench_module()
    comparison = bench.compare(SEEDS[:1], 200, epsilon=EPSILON, novelty=NoveltyConfig(), match_rate=False)
    novelty, baseline = comparison.novelty[0], comparison.epsilon_greedy[0]
    assert novelty.rate == EPSILON
    assert 0.0 < novelty.exploration_share < baseline.exploration_share - 0.005
