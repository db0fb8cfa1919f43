"""Reward-model cross-fitting, target policies and the runner, on logs produced by the real server."""
from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from offers.v1 import decision_pb2 as pb
from offline_eval.reward_model import RewardModelConfig, cross_fit_q_hat, time_folds
from offerbandit.errors import InvalidInput, NotFound
from offerbandit.reports.evaluation_runs import run_eval_command
from offline_eval.runner import evaluate_policies
from offline_eval.log_dataset import load_dataset
from offline_eval.targets import build_target, parse_target, target_pmf
from service.config import ServiceConfig
from service.offline_settings import offline_settings
from tests.conftest import make_request

UNIFORM_LOGGER = """
[privacy]
user_hash_key = "runner-test-hash-key"
[mlflow]
enabled = false
[campaigns.default]
policy = "uniform"
[campaigns.default.novelty]
beta = 0.0
"""
SEGMENTS = ("young", "old")


def drive_log(start_server, n: int, reward_of: Callable[[int, str], float], *, batch: int = 50,
              data_dir: Path | None = None) -> Path:
    """``n`` decisions by a uniform logger, rewarded with ``reward_of(index, offer_id)``; server stopped."""
    server = start_server(UNIFORM_LOGGER, data_dir=data_dir)
    for first in range(0, n, batch):
        indices = range(first, min(n, first + batch))
        response = server.stub.DecideBatch(pb.DecideBatchRequest(requests=[
            make_request(user=f"u{i % 11}", context={"segment": SEGMENTS[i % 2]}, event_id=f"ev{i:05d}")
            for i in indices]), timeout=30)
        futures = [server.stub.Reward.future(pb.RewardRequest(event_id=d.event_id, value=reward_of(i, d.offer_id)),
                                             timeout=30) for i, d in zip(indices, response.decisions)]
        for future in futures:
            future.result()
    server.server.stop(grace=1)
    return server.data_dir


def offer_of(dataset, row: int, position: int) -> str:
    (decision,) = next(dataset.decisions(row, row + 1))
    return decision.arm_set.arms[position].offer_id


# --------------------------------------------------------------------------- reward model


@pytest.mark.parametrize(("n", "start", "stop", "k"), [(10, 0, 10, 2), (100, 40, 100, 3), (7, 2, 7, 5), (50, 0, 1, 1)])
def test_time_folds_are_contiguous_blocks_trained_on_everything_else(n, start, stop, k):
    if stop - start < k or k < 2:
        with pytest.raises(InvalidInput):
            RewardModelConfig(n_folds=k)
            time_folds(n, start, stop, k)
        return
    folds = time_folds(n, start, stop, k)
    assert len(folds) == k
    assert folds[0].predict_start == start and folds[-1].predict_stop == stop
    for before, after in zip(folds, folds[1:]):
        assert before.predict_stop == after.predict_start
    for fold in folds:
        assert fold.predict_stop > fold.predict_start
        trained = {i for lo, hi in fold.training_ranges for i in range(lo, hi)}
        predicted = set(range(fold.predict_start, fold.predict_stop))
        assert not trained & predicted
        assert trained | predicted == set(range(n))


@pytest.mark.parametrize(("kwargs", "field"), [({"n_folds": 1}, "n_folds"), ({"n_folds": 2.0}, "n_folds"),
                                               ({"n_folds": True}, "n_folds"), ({"regressor": {}}, "regressor")])
def test_invalid_reward_model_config(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        RewardModelConfig(**kwargs)
    assert err.value.field == field


def test_cross_fit_scores_each_block_with_a_model_that_never_saw_it(start_server):
    # Rewards are 1 for the first half of the log and 0 for the second, whatever was sent. With two
    # folds the first half is scored by a model fit on the second (all zeros) and vice versa; a model
    # that had seen the block it scores would predict the block's own rewards instead.
    n = 200
    data_dir = drive_log(start_server, n, lambda i, offer: 1.0 if i < n // 2 else 0.0)
    dataset = load_dataset(data_dir)
    q_hat = cross_fit_q_hat(dataset, 0, n, RewardModelConfig(n_folds=2))
    assert q_hat.same_layout(dataset.logging_pmf)
    per_event = q_hat.row_sums() / q_hat.row_lengths
    first, second = per_event[: n // 2].mean(), per_event[n // 2:].mean()
    assert first < 0.35 and second > 0.65, (first, second)


# --------------------------------------------------------------------------- targets


def shifting_rewards(switch: int) -> Callable[[int, str], float]:
    """o1 pays before event ``switch``, o2 from then on (the evaluation window)."""
    return lambda i, offer: float(offer == ("o1" if i < switch else "o2"))


@pytest.fixture
def shifting_log(start_server) -> tuple[Path, int, int]:
    n, switch = 300, 90
    return drive_log(start_server, n, shifting_rewards(switch)), n, switch


def test_log_trained_targets_learn_only_from_the_training_window(shifting_log):
    data_dir, n, switch = shifting_log
    dataset = load_dataset(data_dir)
    own_policy = offline_settings(ServiceConfig()).policy_of(dataset.campaign)
    for name in ("best_single_arm", "per_segment_greedy", "counterfactual:vw"):
        target = build_target(parse_target(name), dataset, train_stop=switch, own_policy=own_policy)
        try:
            assert target.train_window == (0, switch)
            assert target.trained_until == dataset.decided_at[switch - 1] <= dataset.decided_at[switch]
            pmf = target_pmf(target, dataset, switch, n)
        finally:
            target.close()
        (decision,) = next(dataset.decisions(switch, switch + 1))
        row = pmf.values[pmf.indptr[0]:pmf.indptr[1]]
        mass = {o: sum(p for a, p in zip(decision.arm_set.arms, row) if a.offer_id == o) for o in ("o1", "o2")}
        # learned from the training window only: o1 pays there; the evaluation window pays o2
        assert mass["o1"] > mass["o2"] + 0.3, (name, mass)
    whole = build_target(parse_target("best_single_arm"), dataset, train_stop=n, own_policy=own_policy)
    whole_pmf = target_pmf(whole, dataset, switch, switch + 1)
    best = int(np.argmax(whole_pmf.values))
    assert offer_of(dataset, switch, best) == "o2"  # so the check above could have failed


def test_uniform_target_is_uniform_over_the_logged_arms(shifting_log):
    data_dir, n, switch = shifting_log
    dataset = load_dataset(data_dir)
    target = build_target(parse_target("uniform"), dataset, train_stop=switch,
                          own_policy=offline_settings(ServiceConfig()).policy_of("default"))
    pmf = target_pmf(target, dataset, 0, n)
    assert pmf.same_layout(dataset.logging_pmf)
    np.testing.assert_allclose(pmf.values, 1.0 / np.repeat(pmf.row_lengths, pmf.row_lengths))
    assert target.train_window is None and target.trained_until is None


@pytest.mark.parametrize(("text", "kind", "name"), [
    ("champion", "alias", "champion"), ("challenger", "alias", "challenger"), ("3", "version", "3"),
    ("v12", "version", "12"), ("uniform", "baseline", "uniform"),
    ("per_segment_greedy", "baseline", "per_segment_greedy"),
    ("counterfactual:vw", "counterfactual", "vw"), (" best_single_arm ", "baseline", "best_single_arm"),
])
def test_parse_target(text, kind, name):
    spec = parse_target(text)
    assert (spec.kind, spec.name) == (kind, name)


@pytest.mark.parametrize("text", ["", "  ", "counterfactual:nope", "counterfactual:", "bad name!", "latest", 3, None])
def test_parse_target_rejects(text):
    with pytest.raises(InvalidInput) as err:
        parse_target(text)
    assert err.value.field == "policy"


# --------------------------------------------------------------------------- runner


def test_report_estimates_each_policy_on_the_evaluation_window(shifting_log):
    data_dir, n, switch = shifting_log
    calls: list[tuple[str, int, int]] = []
    report = evaluate_policies(data_dir, ["uniform", "best_single_arm"], estimators=["ipw", "dr"],
                               n_bootstrap=50, train_fraction=switch / n, seed=3,
                               progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert (report.training.n_events, report.evaluation.n_events) == (switch, n - switch)
    assert report.estimators == ("ipw", "dr") and report.reward_model_folds == 3
    uniform = report.result("uniform")
    # uniform logger, uniform target: every weight is 1, so IPW is the logged mean reward exactly
    assert uniform.evaluation["ipw"].value == pytest.approx(report.logged_value, abs=1e-12)
    assert uniform.evaluation.diagnostics.max_importance_weight == pytest.approx(1.0)
    best = report.result("best_single_arm")
    assert best.trained_on.stop == switch and best.window.start == switch
    # it bets on o1, which pays nothing in the evaluation window
    assert best.evaluation["ipw"].value < report.logged_value
    stages = {stage for stage, _, _ in calls}
    assert {"loading log", "reward model", "uniform", "best_single_arm"} <= stages
    for stage in stages:
        last = [c for c in calls if c[0] == stage][-1]
        assert last[1] == last[2]


def test_same_seed_same_report(shifting_log):
    data_dir, _, _ = shifting_log
    first, second = (evaluate_policies(data_dir, ["per_segment_greedy"], estimators=["snipw"], n_bootstrap=30,
                                       seed=9, reward_model=None) for _ in range(2))
    a = first.result("per_segment_greedy").evaluation["snipw"]
    b = second.result("per_segment_greedy").evaluation["snipw"]
    assert (a.value, a.ci_low, a.ci_high) == (b.value, b.ci_low, b.ci_high)


@pytest.mark.parametrize(("policies", "kwargs", "error", "pattern"), [
    ([], {}, InvalidInput, "at least one policy"),
    ("uniform", {}, InvalidInput, "at least one policy"),
    (["uniform", "uniform"], {}, InvalidInput, "named twice"),
    (["bad name!"], {}, InvalidInput, "not a policy name"),
    (["counterfactual:nope"], {}, InvalidInput, "unknown policy 'nope'"),
    (["uniform"], {"train_fraction": 0.0}, InvalidInput, "train_fraction"),
    (["uniform"], {"train_fraction": 1.0}, InvalidInput, "train_fraction"),
    (["uniform"], {"train_fraction": -0.5}, InvalidInput, "train_fraction"),
    (["uniform"], {"train_fraction": math.nan}, InvalidInput, "train_fraction"),
    (["uniform"], {"train_fraction": "half"}, InvalidInput, "train_fraction"),
    (["uniform"], {"estimators": ["ipw", "bogus"]}, InvalidInput, "unknown estimator"),
    (["uniform"], {"estimators": ["dr"], "reward_model": None}, InvalidInput, "reward model"),
    (["uniform"], {"seed": -1}, InvalidInput, "seed"),
    (["uniform"], {"alpha": 1.5}, InvalidInput, "alpha"),
    (["uniform"], {"n_bootstrap": -3}, InvalidInput, "n_bootstrap"),
])
def test_invalid_requests_are_refused_before_reading_the_log(tmp_path, policies, kwargs, error, pattern):
    (tmp_path / "decisions.db").write_bytes(b"never read")
    with pytest.raises(error, match=pattern):
        evaluate_policies(tmp_path, policies, **kwargs)


@pytest.mark.parametrize(("policies", "kwargs", "error", "pattern"), [
    (["unifrom"], {}, NotFound, "no policy registry"),
    (["champion"], {}, NotFound, "no policy registry"),
    (["uniform"], {"train_fraction": 0.001}, InvalidInput, "cannot be split"),
    (["uniform"], {"campaign": "elsewhere"}, InvalidInput, "no decisions for campaign"),
])
def test_invalid_requests_for_this_log(shifting_log, policies, kwargs, error, pattern):
    data_dir, _, _ = shifting_log
    with pytest.raises(error, match=pattern):
        evaluate_policies(data_dir, policies, **kwargs)


def test_run_eval_command_prints_json_with_stable_keys(shifting_log):
    data_dir, n, _ = shifting_log
    out = io.StringIO()
    code = run_eval_command(data_dir, ["uniform", "per_segment_greedy"], json_out=True, estimators=["ipw", "snipw"],
                            n_bootstrap=20, seed=1, log_to_mlflow=False, out=out)
    assert code == 0
    document = json.loads(out.getvalue())
    assert list(document) == ["format", "campaign", "data_dir", "filter", "n_events", "excluded", "training_window",
                              "evaluation_window", "logged_value", "alpha", "n_bootstrap", "seed", "train_fraction",
                              "reward_model_folds", "mlflow_runs", "policies"]
    assert document["n_events"] == n and document["campaign"] == "default" and document["reward_model_folds"] is None
    assert [p["policy"] for p in document["policies"]] == ["uniform", "per_segment_greedy"]
    policy = document["policies"][1]
    assert list(policy) == ["policy", "label", "kind", "version", "window", "trained_on", "n_events", "estimates",
                            "diagnostics", "warnings"]
    assert list(policy["estimates"]) == ["ipw", "snipw"]
    ipw = policy["estimates"]["ipw"]
    assert ipw["ci_low"] <= ipw["value"] <= ipw["ci_high"]
    assert policy["diagnostics"]["logger_is_uniform"] is True


def test_run_eval_command_prints_a_readable_table(shifting_log):
    data_dir, _, _ = shifting_log
    out = io.StringIO()
    assert run_eval_command(data_dir, ["best_single_arm"], estimators=["ipw"], n_bootstrap=0,
                            log_to_mlflow=False, out=out) == 0
    text = out.getvalue()
    assert "best_single_arm" in text and "ipw" in text and "evaluation window" in text
    assert "95% low" in text
