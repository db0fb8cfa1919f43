"""The served exploration measurement (bench/exploration_served.py): its goal line's arithmetic, and one
small run through two real servers (novelty β = 0.1 against β = 0)."""
from __future__ import annotations

from bench.exploration_served import ServedRun, served_comparison, served_lines


def _run(seed: int, beta: float, discovered: int, reward: float) -> ServedRun:
    return ServedRun(seed=seed, beta=beta, decisions=1000, mean_true_reward=reward, stderr=0.01, hidden_customers=50,
                     discovered=discovered, discovered_by_novelty=discovered // 2 if beta else 0,
                     novelty_share=0.08 if beta else 0.0)


def test_goal_line_is_the_ratio_of_totals_and_says_not_met_below_target():
    pairs = [(_run(1, 0.1, 12, 0.13), _run(1, 0.0, 10, 0.12)), (_run(2, 0.1, 18, 0.11), _run(2, 0.0, 10, 0.12))]
    lines = served_lines(pairs)
    assert "found x1.50 (30 vs 20 of 100; per seed 1.20-1.80)" in lines[-2]
    assert "true reward x1.000" in lines[-2]
    assert lines[-1].startswith("GOAL discovery_served:") and lines[-1].endswith("-> NOT met")
    met = served_lines([(_run(1, 0.1, 25, 0.13), _run(1, 0.0, 10, 0.12))])
    assert "x2.50" in met[-1] and met[-1].endswith("-> met")
    worse_reward = served_lines([(_run(1, 0.1, 25, 0.11), _run(1, 0.0, 10, 0.12))])
    assert worse_reward[-1].endswith("-> NOT met")


def test_a_small_served_run_explores_outside_history_only_with_beta():
    (with_novelty, without), = served_comparison((1,), 60, 5, registry_wait_s=0.0)
    assert with_novelty.decisions == without.decisions == 300
    assert with_novelty.hidden_customers == without.hidden_customers > 0
    assert without.novelty_share == 0.0 and without.discovered_by_novelty == 0
    # β = 0.1 of the draws (every arm is novel to a new customer): Binomial(300, 0.1) is 30 +- 5.2
    assert 10 / 300 <= with_novelty.novelty_share <= 55 / 300, with_novelty.novelty_share
    assert 0.0 < with_novelty.mean_true_reward < 1.0 and 0.0 < without.mean_true_reward < 1.0
