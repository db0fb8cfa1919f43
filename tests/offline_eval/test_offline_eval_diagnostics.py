"""Weight and support diagnostics, and the plain-language warnings they raise."""
from __future__ import annotations

import numpy as np
import pytest

from offline_eval import InverseProbabilityWeighting, LoggedFeedback, evaluate
from offline_eval.synthetic import SyntheticWorld


def test_weight_statistics_on_known_weights():
    # Two actions, logger 0.5/0.5; the target plays action 0 with probability 0.9.
    action = np.array([0, 0, 1, 1, 0])
    feedback = LoggedFeedback(action, np.ones(5), np.full(5, 0.5))
    target = np.tile([0.9, 0.1], (5, 1))
    d = evaluate(feedback, target, n_bootstrap=0).diagnostics
    weights = np.array([1.8, 1.8, 0.2, 0.2, 1.8])
    assert d.effective_sample_size == pytest.approx(weights.sum() ** 2 / (weights**2).sum())
    assert d.max_importance_weight == pytest.approx(1.8)
    assert d.mean_importance_weight == pytest.approx(weights.mean())
    assert d.support_deficiency == 0.0 and d.support_source == "never_played_arms"


def test_support_deficiency_from_the_logging_pmf_and_from_never_played_arms():
    n = 1000
    rng = np.random.default_rng(0)
    action = rng.integers(0, 2, size=n)  # the logger only ever plays arms 0 and 1 of 4
    logging = np.tile([0.5, 0.5, 0.0, 0.0], (n, 1))
    target = np.tile([0.3, 0.3, 0.25, 0.15], (n, 1))
    feedback = LoggedFeedback(action, rng.random(n), np.full(n, 0.5))
    with_pmf = evaluate(feedback, target, n_bootstrap=0, logging_pmf=logging)
    assert with_pmf.diagnostics.support_deficiency == pytest.approx(0.4)
    assert with_pmf.diagnostics.support_source == "logging_pmf"
    inferred = evaluate(feedback, target, n_bootstrap=0)
    assert inferred.diagnostics.support_deficiency == pytest.approx(0.4)
    warning = [w for w in with_pmf["ipw"].warnings if "probability" in w and "40.0%" in w]
    assert warning, with_pmf["ipw"].warnings
    assert any("mean importance weight is 0.600" in w for w in with_pmf["ipw"].warnings)


def test_healthy_log_has_no_warnings():
    world = SyntheticWorld(world_seed=0)
    log = world.sample(5000, seed=1)
    result = evaluate(log.feedback, log.target_pmf, log.q_hat, n_bootstrap=0,
                      logging_pmf=log.logging_pmf, estimators=["ipw", "snipw", "dm", "dr", "sndr"])
    assert result.warnings == ()
    assert 0.2 < result.diagnostics.effective_sample_ratio < 1.0
    assert result.diagnostics.logger_is_uniform is False
    assert result.diagnostics.target_is_deterministic is False


def test_one_huge_weight_and_few_effective_events_are_reported():
    n = 2000
    pscore = np.full(n, 0.5)
    pscore[0] = 1e-4  # one event the logger almost never makes, which the target always makes
    action = np.zeros(n, dtype=int)
    target = np.tile([0.5, 0.5], (n, 1))
    target[0] = [1.0, 0.0]
    feedback = LoggedFeedback(action, np.ones(n), pscore)
    result = evaluate(feedback, target, n_bootstrap=0, estimators=["ipw", "snipw"])
    warnings = " ".join(result["ipw"].warnings)
    assert "single event carries" in warnings
    assert "effective events out of 2000" in warnings
    assert result.diagnostics.max_importance_weight == pytest.approx(1e4)


def test_clipping_share_is_reported_per_estimator():
    world = SyntheticWorld(world_seed=0)
    log = world.sample(3000, seed=2)
    result = evaluate(
        log.feedback,
        log.target_pmf,
        n_bootstrap=0,
        estimators=[InverseProbabilityWeighting(1.0, label="ipw_clip1"), "ipw"],
    )
    weights = log.target_pmf[np.arange(3000), log.feedback.action] / log.feedback.pscore
    assert result["ipw_clip1"].clipped_share == pytest.approx(np.mean(weights > 1.0))
    assert result["ipw"].clipped_share == 0.0
    assert any(w.startswith("ipw_clip1: ") for w in result["ipw_clip1"].warnings)
    assert not any("clipped" in w for w in result["ipw"].warnings)


def test_summary_names_every_estimator_and_warning():
    world = SyntheticWorld(world_seed=0)
    log = world.sample(500, seed=2)
    result = evaluate(log.feedback, log.target_pmf, log.q_hat, n_bootstrap=50, random_state=0)
    text = result.summary()
    for name in result:
        assert name in text
    for warning in result.warnings:
        assert warning in text
