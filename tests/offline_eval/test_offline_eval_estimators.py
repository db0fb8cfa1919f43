"""Point estimates against an independent loop implementation of the OBP formulas, plus a
conformance battery run over every registered estimator."""
from __future__ import annotations

import dataclasses
import pickle
import re

import numpy as np
import pytest

import offline_eval
from offline_eval import (
    ESTIMATORS,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    LoggedFeedback,
    RaggedMatrix,
    SwitchDoublyRobust,
    evaluate,
)
from offline_eval.estimators import DirectMethod
from offerbandit.errors import InvalidInput


def obp_reference(name: str, lam: float, reward, action, pscore, pi, q) -> float:
    """Straight transcription of obp/ope/estimators.py's round rewards, one event at a time."""
    n = len(reward)
    rounds = []
    weights = [pi[i][action[i]] / pscore[i] for i in range(n)]
    mean_weight = sum(weights) / n
    matches = [1.0 if pi[i][action[i]] == 1 else 0.0 for i in range(n)]
    match_rate = sum(matches) / n
    for i in range(n):
        w, r = weights[i], reward[i]
        if name == "replay":
            rounds.append(matches[i] * r / match_rate if match_rate > 0 else 0.0)
            continue
        if name == "ipw":
            rounds.append(min(w, lam) * r)
            continue
        if name == "snipw":
            rounds.append(w * r / mean_weight)
            continue
        row_pi, row_q = pi[i], q[i]
        q_pi = sum(p * v for p, v in zip(row_pi, row_q)) / sum(row_pi)
        residual = r - row_q[action[i]]
        if name == "dm":
            rounds.append(q_pi)
        elif name == "dr":
            rounds.append(q_pi + min(w, lam) * residual)
        elif name == "sndr":
            rounds.append(q_pi + w * residual / mean_weight)
        elif name == "switch_dr":
            rounds.append(q_pi + (1 if w <= lam else 0) * w * residual)
        elif name == "dr_os":
            shrunk = w if lam == float("inf") else lam * w / (w**2 + lam)
            rounds.append(q_pi + shrunk * residual)
    return sum(rounds) / n


def random_log(seed: int, n: int = 300, n_actions: int = 6, deterministic: bool = False):
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.ones(n_actions), size=n)
    action = np.array([rng.choice(n_actions, p=row) for row in logging])
    pscore = logging[np.arange(n), action]
    reward = rng.normal(1.0, 1.0, size=n)
    if deterministic:
        pi = np.eye(n_actions)[rng.integers(0, n_actions, size=n)]
    else:
        pi = rng.dirichlet(np.full(n_actions, 0.3), size=n)
    q = rng.normal(1.0, 0.5, size=(n, n_actions))
    return LoggedFeedback(action, reward, pscore), pi, q, logging


CONFIGURED = [
    ("replay", None),
    ("ipw", np.inf),
    ("ipw", 2.0),
    ("ipw", 0.0),
    ("snipw", None),
    ("dm", None),
    ("dr", np.inf),
    ("dr", 1.5),
    ("sndr", None),
    ("switch_dr", np.inf),
    ("switch_dr", 2.0),
    ("switch_dr", 0.0),
    ("dr_os", 0.5),
    ("dr_os", 10.0),
    ("dr_os", np.inf),
]


def build(name: str, lam: float | None):
    return ESTIMATORS[name]() if lam is None else ESTIMATORS[name](lam)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("name,lam", CONFIGURED)
def test_point_estimates_equal_obp_formulas(name, lam, deterministic):
    feedback, pi, q, _ = random_log(seed=7, deterministic=deterministic)
    estimator = build(name, lam)
    result = evaluate(feedback, pi, q, estimators=[estimator], n_bootstrap=0)
    expected = obp_reference(
        name,
        np.inf if lam is None else lam,
        feedback.reward.tolist(),
        feedback.action.tolist(),
        feedback.pscore.tolist(),
        pi.tolist(),
        q.tolist(),
    )
    assert result[name].value == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_degenerate_hyperparameters_reduce_to_known_estimators():
    feedback, pi, q, _ = random_log(seed=3)
    estimates = evaluate(
        feedback,
        pi,
        q,
        estimators=[
            DirectMethod(),
            DoublyRobust(),
            SwitchDoublyRobust(np.inf, label="switch_inf"),
            SwitchDoublyRobust(0.0, label="switch_zero"),
            DoublyRobustWithShrinkage(np.inf, label="dros_inf"),
            DoublyRobustWithShrinkage(0.0, label="dros_zero"),
        ],
        n_bootstrap=0,
    )
    assert estimates["switch_inf"].value == pytest.approx(estimates["dr"].value, rel=1e-12)
    assert estimates["dros_inf"].value == pytest.approx(estimates["dr"].value, rel=1e-12)
    assert estimates["switch_zero"].value == pytest.approx(estimates["dm"].value, rel=1e-12)
    assert estimates["dros_zero"].value == pytest.approx(estimates["dm"].value, rel=1e-12)


def test_dros_with_zero_lambda_guards_zero_over_zero():
    feedback, pi, q, _ = random_log(seed=4)
    pi = pi.copy()
    pi[:50] = 0.0  # the target never takes the logged action on these rows: w = 0 there
    for i in range(50):
        pi[i, (feedback.action[i] + 1) % pi.shape[1]] = 1.0
    result = evaluate(feedback, pi, q, estimators=["dr_os", "dm"], n_bootstrap=50, random_state=0)
    assert np.isfinite([result["dr_os"].value, result["dr_os"].ci_low, result["dr_os"].ci_high]).all()
    assert result["dr_os"].value == pytest.approx(result["dm"].value, rel=1e-12)


def test_self_normalised_estimators_guard_zero_total_weight():
    feedback, _, q, _ = random_log(seed=5)
    n, n_actions = q.shape
    pi = np.eye(n_actions)[(feedback.action + 1) % n_actions]  # never the logged action
    result = evaluate(feedback, pi, q, estimators=["snipw", "sndr", "replay", "dm"], n_bootstrap=20)
    assert result["snipw"].value == 0.0
    assert result["replay"].value == 0.0
    assert result["sndr"].value == pytest.approx(result["dm"].value, rel=1e-12)
    assert any("never chooses any logged action" in w for w in result["snipw"].warnings)
    assert any("no event where the target agrees" in w for w in result["replay"].warnings)


def ragged_log(seed: int, n: int = 400, max_candidates: int = 9):
    """Random candidate sets per event; returns ragged inputs and their zero-padded dense twins."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_candidates + 1, size=n)
    rows_pi, rows_q, rows_log, actions, pscores = [], [], [], [], []
    for size in sizes:
        logging = rng.dirichlet(np.ones(size))
        a = int(rng.choice(size, p=logging))
        rows_log.append(logging)
        rows_pi.append(rng.dirichlet(np.full(size, 0.5)))
        rows_q.append(rng.normal(size=size))
        actions.append(a)
        pscores.append(logging[a])
    feedback = LoggedFeedback(np.array(actions), rng.normal(size=n), np.array(pscores))
    ragged = [RaggedMatrix.from_rows(rows) for rows in (rows_pi, rows_q, rows_log)]
    dense = [matrix.to_dense(max_candidates) for matrix in ragged]
    return feedback, ragged, dense


def test_ragged_and_dense_inputs_give_the_same_estimates_and_intervals():
    feedback, (pi, q, logging), (pi_d, q_d, logging_d) = ragged_log(seed=11)
    ragged = evaluate(feedback, pi, q, logging_pmf=logging, n_bootstrap=200, random_state=5)
    dense = evaluate(feedback, pi_d, q_d, logging_pmf=logging_d, n_bootstrap=200, random_state=5)
    assert list(ragged) == list(dense)
    for name in ragged:
        assert ragged[name].value == pytest.approx(dense[name].value, rel=1e-10, abs=1e-12)
        assert ragged[name].ci_low == pytest.approx(dense[name].ci_low, rel=1e-10, abs=1e-12)
        assert ragged[name].ci_high == pytest.approx(dense[name].ci_high, rel=1e-10, abs=1e-12)
    assert ragged.diagnostics.effective_sample_size == pytest.approx(
        dense.diagnostics.effective_sample_size, rel=1e-12
    )
    assert ragged.diagnostics.support_deficiency == pytest.approx(
        dense.diagnostics.support_deficiency, abs=1e-12
    )


def test_default_selection_depends_on_q_hat_and_determinism():
    feedback, pi, q, _ = random_log(seed=1)
    assert list(evaluate(feedback, pi, n_bootstrap=0)) == ["ipw", "snipw"]
    assert list(evaluate(feedback, pi, q, n_bootstrap=0)) == [
        "ipw", "snipw", "dm", "dr", "sndr", "switch_dr", "dr_os"
    ]
    feedback, pi, q, _ = random_log(seed=1, deterministic=True)
    assert list(evaluate(feedback, pi, n_bootstrap=0)) == ["replay", "ipw", "snipw"]


def test_same_seed_same_intervals_and_another_seed_differs():
    feedback, pi, q, _ = random_log(seed=2)
    first = evaluate(feedback, pi, q, n_bootstrap=100, random_state=42)
    again = evaluate(feedback, pi, q, n_bootstrap=100, random_state=42)
    other = evaluate(feedback, pi, q, n_bootstrap=100, random_state=43)
    for name in first:
        assert (first[name].ci_low, first[name].ci_high) == (again[name].ci_low, again[name].ci_high)
    assert any(first[name].ci_low != other[name].ci_low for name in first)


def test_inputs_are_left_unchanged():
    feedback, pi, q, logging = random_log(seed=6)
    before = [pi.copy(), q.copy(), logging.copy()]
    evaluate(feedback, pi, q, logging_pmf=logging, n_bootstrap=10)
    for original, after in zip(before, (pi, q, logging)):
        np.testing.assert_array_equal(original, after)


# ---- conformance battery over the registry --------------------------------------------------


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_registered_estimator_is_frozen_documented_and_picklable(name):
    cls = ESTIMATORS[name]
    estimator = cls()
    assert estimator.name == name and estimator.key == name
    assert re.search(r"V_\w+ =", cls.__doc__), "docstring states the formula"
    assert "(n, n_actions)" in cls.__doc__, "docstring states the array shapes"
    assert re.search(r"(19|20)\d\d", cls.__doc__), "docstring cites the paper"
    field_names = [f.name for f in dataclasses.fields(estimator)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(estimator, field_names[0], 1.0)
    assert pickle.loads(pickle.dumps(estimator)) == estimator
    assert getattr(offline_eval, cls.__name__) is cls


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_registered_estimator_gives_value_inside_its_interval(name):
    feedback, pi, q, _ = random_log(seed=9, deterministic=(name == "replay"))
    result = evaluate(feedback, pi, q, estimators=[name], n_bootstrap=200, random_state=0)[name]
    assert result.ci_low <= result.value <= result.ci_high
    assert result.normal_low <= result.value <= result.normal_high
    assert result.standard_error > 0


LAMBDA_ESTIMATORS = [InverseProbabilityWeighting, DoublyRobust, SwitchDoublyRobust, DoublyRobustWithShrinkage]


@pytest.mark.parametrize("cls", LAMBDA_ESTIMATORS)
@pytest.mark.parametrize(
    "bad,pattern",
    [(-1.0, r"lambda_ must be a finite number >= 0, got -1"), (float("nan"), r"lambda_ must be a finite number >= 0, got nan"),
     ("3", r"lambda_ must be a finite number"), (True, r"lambda_ must be a finite number"),
     (None, r"lambda_ must be a finite number")],
)
def test_hyperparameters_are_validated(cls, bad, pattern):
    with pytest.raises(InvalidInput, match=pattern) as info:
        cls(bad)
    assert info.value.field == "lambda_"
