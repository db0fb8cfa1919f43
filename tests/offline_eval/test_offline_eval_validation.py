"""Every rejected input in one place: (bad input, exception, message pattern), OBP style."""
from __future__ import annotations

import numpy as np
import pytest

from offline_eval import LoggedFeedback, RaggedMatrix, evaluate
from offerbandit.errors import InvalidInput

N, A = 4, 3
ACTION = np.array([0, 1, 2, 1])
REWARD = np.array([1.0, 0.0, 1.0, 0.5])
PSCORE = np.array([0.5, 0.25, 0.25, 0.25])
PI = np.full((N, A), 1.0 / A)
Q = np.zeros((N, A))


def feedback():
    return LoggedFeedback(ACTION, REWARD, PSCORE)


def with_value(array, index, value):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


FEEDBACK_CASES = [
    # (action, reward, pscore, field, message pattern)
    (ACTION[:3], REWARD, PSCORE, "action", r"same length n \(action: 3, reward: 4, pscore: 4\)"),
    (ACTION, REWARD[:2], PSCORE, "action", r"same length n"),
    (ACTION, REWARD, PSCORE[:1], "action", r"same length n"),
    (np.array([], dtype=int), [], [], "action", r"`action` must not be empty"),
    (ACTION.reshape(2, 2), REWARD, PSCORE, "action", r"`action` must be 1-dimensional"),
    (ACTION.astype(float), REWARD, PSCORE, "action", r"`action` must hold integers"),
    (np.array([True, False, True, True]), REWARD, PSCORE, "action", r"`action` must hold integers"),
    (np.array([0, -1, 2, 1]), REWARD, PSCORE, "action", r"`action` must be non-negative; action\[1\] = -1"),
    (ACTION, with_value(REWARD, 2, np.nan), PSCORE, "reward", r"`reward` must be finite .*reward\[2\] = nan"),
    (ACTION, with_value(REWARD, 0, np.inf), PSCORE, "reward", r"`reward` must be finite"),
    (ACTION, ["a", "b", "c", "d"], PSCORE, "reward", r"`reward` must be numeric"),
    (ACTION, REWARD, with_value(PSCORE, 3, 0.0), "pscore", r"`pscore` must be in \(0, 1\]; pscore\[3\] = 0\.0"),
    (ACTION, REWARD, with_value(PSCORE, 0, -0.2), "pscore", r"`pscore` must be in \(0, 1\]"),
    (ACTION, REWARD, with_value(PSCORE, 1, 1.5), "pscore", r"`pscore` must be in \(0, 1\]; pscore\[1\] = 1\.5"),
    (ACTION, REWARD, with_value(PSCORE, 1, np.nan), "pscore", r"`pscore` must be finite"),
    (ACTION, REWARD, np.ones((4, 1)), "pscore", r"`pscore` must be 1-dimensional"),
]


@pytest.mark.parametrize("action,reward,pscore,field,pattern", FEEDBACK_CASES)
def test_logged_feedback_rejects(action, reward, pscore, field, pattern):
    with pytest.raises(InvalidInput, match=pattern) as info:
        LoggedFeedback(action, reward, pscore)
    assert info.value.field == field


EVALUATE_CASES = [
    # (keyword overrides of evaluate, field, message pattern)
    ({"target_pmf": PI[:3]}, "target_pmf", r"expected 4 rows, got 3"),
    ({"target_pmf": PI[0]}, "target_pmf", r"must have shape \(n, n_actions\)"),
    ({"target_pmf": PI[:, :2] * 1.5}, "action", r"action\[2\] = 2 but event 2 has 2 actions"),
    ({"target_pmf": np.full((N, A), 0.3)}, "target_pmf", r"rows must sum to 1; row 0 sums to 0\.9"),
    ({"target_pmf": with_value(PI, (2, 1), np.nan)}, "target_pmf", r"must be finite .*target_pmf\[2, 1\]"),
    ({"target_pmf": np.tile([1.5, -0.5, 0.0], (N, 1))}, "target_pmf", r"must be non-negative"),
    ({"target_pmf": [["x"] * A] * N}, "target_pmf", r"must be a numeric array"),
    ({"q_hat": Q[:, :2]}, "q_hat", r"`q_hat` must have the shape of `target_pmf` \(4, 3\)"),
    ({"q_hat": Q[:2]}, "q_hat", r"expected 4 rows, got 2"),
    ({"q_hat": with_value(Q, (1, 1), np.inf)}, "q_hat", r"`q_hat` must be finite"),
    ({"estimators": ["dr"]}, "q_hat", r"estimator `dr` needs `q_hat`"),
    ({"estimators": ["dm", "ipw"]}, "q_hat", r"estimator `dm` needs `q_hat`"),
    ({"estimators": ["nope"]}, "estimators", r"unknown estimator 'nope'; known: replay, ipw"),
    ({"estimators": []}, "estimators", r"at least one estimator"),
    ({"estimators": ["ipw", "ipw"]}, "estimators", r"keys must be unique, \['ipw'\] repeated"),
    ({"alpha": 0.0}, "alpha", r"alpha must be a finite number in \(0, 1\)"),
    ({"alpha": 1.0}, "alpha", r"alpha must be a finite number in \(0, 1\)"),
    ({"alpha": "0.05"}, "alpha", r"alpha must be a finite number"),
    ({"n_bootstrap": -1}, "n_bootstrap", r"n_bootstrap must be an integer >= 0"),
    ({"n_bootstrap": 10.5}, "n_bootstrap", r"n_bootstrap must be an integer"),
    ({"random_state": "seed"}, "random_state", r"`random_state` must be None, an int"),
    ({"random_state": -3}, "random_state", r"`random_state` must be None, an int >= 0"),
    ({"logging_pmf": PI[:, :2]}, "logging_pmf", r"`logging_pmf` must have the shape"),
    ({"logging_pmf": np.full((N, A), 0.5)}, "logging_pmf", r"`logging_pmf` rows must sum to 1"),
    (
        {"logging_pmf": np.tile([0.25, 0.5, 0.25], (N, 1))},
        "logging_pmf",
        r"disagrees with `pscore` at the logged action: event 0 has .* = 0\.25 but pscore = 0\.5",
    ),
    ({"feedback": (ACTION, REWARD, PSCORE)}, "feedback", r"`feedback` must be a LoggedFeedback"),
    (
        {"q_hat": RaggedMatrix.from_dense(Q)},
        "q_hat",
        r"`q_hat` is ragged but `target_pmf` is dense",
    ),
]


@pytest.mark.parametrize("overrides,field,pattern", EVALUATE_CASES)
def test_evaluate_rejects(overrides, field, pattern):
    arguments = {"feedback": feedback(), "target_pmf": PI, "q_hat": None, "n_bootstrap": 0}
    arguments.update(overrides)
    with pytest.raises(InvalidInput, match=pattern) as info:
        evaluate(**arguments)
    assert info.value.field == field


RAGGED_PI = RaggedMatrix(np.array([0, 1, 3, 6, 8]), [1.0, 0.5, 0.5, 0.2, 0.3, 0.5, 0.5, 0.5])


def ragged(indptr, values):
    return lambda: RaggedMatrix(np.array(indptr), values)


RAGGED_CASES = [
    (ragged([1, 2], [1.0, 1.0]), "indptr", r"`indptr` must start at 0"),
    (ragged([0, 2], [1.0]), "indptr", r"must end at len\(values\) = 1, got 2"),
    (ragged([0, 1, 1, 2], [1.0, 1.0]), "indptr", r"strictly increasing .*row 1 has 0 entries"),
    (ragged([0], []), "indptr", r"at least 2 entries"),
    (ragged([0.0, 1.0], [1.0]), "indptr", r"`indptr` must hold integers"),
    (ragged([0, 2], [[1.0, 2.0]]), "values", r"`values` must be 1-D"),
]


@pytest.mark.parametrize("make,field,pattern", RAGGED_CASES)
def test_ragged_matrix_rejects(make, field, pattern):
    with pytest.raises(InvalidInput, match=pattern) as info:
        make()
    assert info.value.field == field


RAGGED_EVALUATE_CASES = [
    ({"target_pmf": RaggedMatrix(np.array([0, 1, 2]), [1.0, 1.0])}, "target_pmf", r"expected 4 rows, got 2"),
    (
        {"target_pmf": RaggedMatrix(RAGGED_PI.indptr, np.r_[RAGGED_PI.values[:-1], 0.9])},
        "target_pmf",
        r"rows must sum to 1; row 3 sums to 1\.4",
    ),
    ({"q_hat": np.zeros((4, 3))}, "q_hat", r"`q_hat` must be a RaggedMatrix"),
    ({"q_hat": RaggedMatrix.from_dense(np.zeros((4, 2)))}, "q_hat", r"same candidate sets"),
    (
        {"q_hat": RaggedMatrix(RAGGED_PI.indptr, np.r_[np.zeros(7), np.nan])},
        "q_hat",
        r"`q_hat` must be finite",
    ),
    ({"feedback": LoggedFeedback([1, 0, 0, 0], [1.0] * 4, [0.5] * 4)}, "action", r"event 0 has 1 actions"),
]


@pytest.mark.parametrize("overrides,field,pattern", RAGGED_EVALUATE_CASES)
def test_ragged_evaluate_rejects(overrides, field, pattern):
    arguments = {
        "feedback": LoggedFeedback([0, 1, 2, 0], [1.0, 0.0, 1.0, 0.5], [1.0, 0.5, 0.5, 0.5]),
        "target_pmf": RAGGED_PI,
        "q_hat": RaggedMatrix(RAGGED_PI.indptr, np.zeros(8)),
        "n_bootstrap": 0,
    }
    arguments.update(overrides)
    with pytest.raises(InvalidInput, match=pattern) as info:
        evaluate(**arguments)
    assert info.value.field == field


def test_valid_ragged_input_is_accepted():
    result = evaluate(
        LoggedFeedback([0, 1, 2, 0], [1.0, 2.0, 1.0, 0.5], [1.0, 0.25, 0.5, 0.5]),
        RAGGED_PI,
        RaggedMatrix(RAGGED_PI.indptr, np.zeros(8)),
        n_bootstrap=0,
    )
    # w = [1, 2, 1, 1] -> ipw = (1 + 4 + 1 + 0.5) / 4
    assert result["ipw"].value == pytest.approx(1.625)
    assert result["dm"].value == 0.0


def test_feedback_arrays_are_read_only_copies():
    action = ACTION.copy()
    fb = LoggedFeedback(action, REWARD, PSCORE)
    action[0] = 2
    assert fb.action[0] == 0
    with pytest.raises(ValueError):
        fb.reward[0] = 3.0
