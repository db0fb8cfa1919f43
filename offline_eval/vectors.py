"""Reduce dense or ragged inputs to the per-event vectors every estimator needs.

All estimators here depend on the target policy and reward model only through
``pi_e(a_i|x_i)``, ``q_hat(x_i, a_i)`` and ``q_hat(x_i, pi_e)``; computing those once (in row chunks
for dense input) is what keeps the evaluation linear in n and light on memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offline_eval import _validation as check
from offline_eval.feedback import LoggedFeedback
from offline_eval.ragged import RaggedMatrix
from offerbandit.errors import InvalidInput

_ROW_CHUNK_ELEMENTS = 1 << 22  # dense rows are validated and reduced ~32 MB at a time


@dataclass(frozen=True, eq=False)
class EventVectors:
    """Per-event vectors, all shape (n,).

    ``weight`` = pi_e(a_i|x_i) / pi_b(a_i|x_i) (unclipped); ``target_prob`` = pi_e(a_i|x_i);
    ``q_logged`` = q_hat(x_i, a_i) and ``q_target`` = sum_a pi_e(a|x_i) q_hat(x_i, a) /
    sum_a pi_e(a|x_i) (OBP's ``np.average`` with pi_e as weights), both None without a reward model.
    """

    reward: np.ndarray
    pscore: np.ndarray
    target_prob: np.ndarray
    weight: np.ndarray
    q_logged: np.ndarray | None = None
    q_target: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return int(self.reward.shape[0])

    @property
    def has_reward_model(self) -> bool:
        return self.q_target is not None


@dataclass(frozen=True, eq=False)
class PolicyFacts:
    """What diagnostics and replay checks need besides the vectors (computed in the same pass)."""

    target_is_deterministic: bool
    support_deficiency: float | None  # mean target mass where the logger's probability is 0
    support_source: str  # "logging_pmf", "never_played_arms" or "unknown"
    logger_is_uniform: bool | None  # None: cannot tell


def from_dense(
    feedback: LoggedFeedback,
    target_pmf: object,
    q_hat: object | None = None,
    logging_pmf: object | None = None,
) -> tuple[EventVectors, PolicyFacts]:
    """Validate dense (n, n_actions) inputs and reduce them, in row chunks."""
    n = feedback.n_events
    action = feedback.action
    target = check.as_matrix("target_pmf", target_pmf, n)
    n_actions = target.shape[1]
    check.check_actions_below(action, n_actions)
    q = None if q_hat is None else check.as_matrix("q_hat", q_hat, n)
    if q is not None and q.shape != target.shape:
        raise InvalidInput(
            f"`q_hat` must have the shape of `target_pmf` {target.shape}, got {q.shape}",
            field="q_hat",
        )
    logging = None if logging_pmf is None else check.as_matrix("logging_pmf", logging_pmf, n)
    if logging is not None and logging.shape != target.shape:
        raise InvalidInput(
            f"`logging_pmf` must have the shape of `target_pmf` {target.shape}, got {logging.shape}",
            field="logging_pmf",
        )

    q_target = None if q is None else np.empty(n)
    deterministic = True
    uniform = True
    deficiency_mass = 0.0
    never_played = np.bincount(action, minlength=n_actions) == 0
    chunk = max(1, _ROW_CHUNK_ELEMENTS // n_actions)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = target[start:stop]
        sums = block.sum(axis=1)
        check.check_pmf_rows("target_pmf", block, sums, row_offset=start)
        deterministic = deterministic and bool(((block == 0.0) | (block == 1.0)).all())
        if q is not None:
            q_block = q[start:stop]
            check.check_finite("q_hat", q_block)
            q_target[start:stop] = np.multiply(q_block, block).sum(axis=1) / sums
        if logging is not None:
            log_block = logging[start:stop]
            check.check_pmf_rows("logging_pmf", log_block, log_block.sum(axis=1), row_offset=start)
            deficiency_mass += float(block[log_block == 0.0].sum())
            uniform = uniform and _rows_uniform_on_support(log_block)
        else:
            deficiency_mass += float(block[:, never_played].sum())

    rows = np.arange(n)
    target_prob = target[rows, action]
    if logging is not None:
        _check_pscore_matches("logging_pmf", logging[rows, action], feedback.pscore)
        logger_uniform: bool | None = uniform
    else:
        logger_uniform = _uniform_from_pscore(feedback.pscore, np.full(n, n_actions))
    vectors = _vectors(feedback, target_prob, None if q is None else q[rows, action], q_target)
    facts = PolicyFacts(
        target_is_deterministic=deterministic,
        support_deficiency=deficiency_mass / n,
        support_source="logging_pmf" if logging is not None else "never_played_arms",
        logger_is_uniform=logger_uniform,
    )
    return vectors, facts


def from_ragged(
    feedback: LoggedFeedback,
    target_pmf: RaggedMatrix,
    q_hat: RaggedMatrix | None = None,
    logging_pmf: RaggedMatrix | None = None,
) -> tuple[EventVectors, PolicyFacts]:
    """Validate ragged inputs (same layout, one row per event) and reduce them."""
    n = feedback.n_events
    _check_ragged("target_pmf", target_pmf, n, None)
    lengths = target_pmf.row_lengths
    check.check_actions_below(feedback.action, lengths)
    sums = target_pmf.row_sums()
    check.check_pmf_rows("target_pmf", target_pmf.values, sums)
    values = target_pmf.values
    deterministic = bool(((values == 0.0) | (values == 1.0)).all())

    q_logged = q_target = None
    if q_hat is not None:
        _check_ragged("q_hat", q_hat, n, target_pmf)
        check.check_finite("q_hat", q_hat.values)
        q_logged = q_hat.at_positions(feedback.action)
        q_target = target_pmf.row_dot(q_hat) / sums

    deficiency: float | None = None
    source = "unknown"
    uniform: bool | None = _uniform_from_pscore(feedback.pscore, lengths)
    if logging_pmf is not None:
        _check_ragged("logging_pmf", logging_pmf, n, target_pmf)
        check.check_pmf_rows("logging_pmf", logging_pmf.values, logging_pmf.row_sums())
        _check_pscore_matches("logging_pmf", logging_pmf.at_positions(feedback.action), feedback.pscore)
        deficiency = float(values[logging_pmf.values == 0.0].sum()) / n
        source = "logging_pmf"
        uniform = _ragged_rows_uniform_on_support(logging_pmf)

    vectors = _vectors(feedback, target_pmf.at_positions(feedback.action), q_logged, q_target)
    return vectors, PolicyFacts(deterministic, deficiency, source, uniform)


def _vectors(
    feedback: LoggedFeedback,
    target_prob: np.ndarray,
    q_logged: np.ndarray | None,
    q_target: np.ndarray | None,
) -> EventVectors:
    return EventVectors(
        reward=feedback.reward,
        pscore=feedback.pscore,
        target_prob=target_prob,
        weight=target_prob / feedback.pscore,
        q_logged=q_logged,
        q_target=q_target,
    )


def _check_ragged(name: str, matrix: object, n: int, layout: RaggedMatrix | None) -> None:
    if not isinstance(matrix, RaggedMatrix):
        raise InvalidInput(
            f"`{name}` must be a RaggedMatrix when `target_pmf` is one, got {type(matrix).__name__}",
            field=name,
        )
    if matrix.n_rows != n:
        raise InvalidInput(
            f"`{name}` must have one row per logged event: expected {n} rows, got {matrix.n_rows}",
            field=name,
        )
    if layout is not None and not matrix.same_layout(layout):
        raise InvalidInput(
            f"`{name}` must have the same candidate sets (indptr) as `target_pmf`", field=name
        )
    check.check_finite(name, matrix.values)


def _check_pscore_matches(name: str, logged: np.ndarray, pscore: np.ndarray) -> None:
    # Tolerance allows float32 pmfs (the decision log stores float32 blobs).
    off = np.abs(logged - pscore) > 1e-5 + 1e-4 * pscore
    if off.any():
        i = int(np.argmax(off))
        raise InvalidInput(
            f"`{name}` disagrees with `pscore` at the logged action: event {i} has "
            f"{name}[{i}, action] = {logged[i]:.8g} but pscore = {pscore[i]:.8g}",
            field=name,
        )


def _rows_uniform_on_support(block: np.ndarray) -> bool:
    positive = block > 0.0
    highest = block.max(axis=1)
    lowest = np.where(positive, block, np.inf).min(axis=1)
    return bool(np.allclose(highest, lowest, rtol=1e-6, atol=0.0))


def _ragged_rows_uniform_on_support(matrix: RaggedMatrix) -> bool:
    starts = matrix.indptr[:-1]
    values = matrix.values
    highest = np.maximum.reduceat(values, starts)
    lowest = np.minimum.reduceat(np.where(values > 0.0, values, np.inf), starts)
    return bool(np.allclose(highest, lowest, rtol=1e-6, atol=0.0))


def _uniform_from_pscore(pscore: np.ndarray, n_candidates: np.ndarray) -> bool | None:
    """Without the logging pmf: True if pscore is 1/k for every event's k candidates; None when
    every pscore is 1/m for some whole m (uniform over an unknown eligible subset is possible);
    False otherwise."""
    if np.allclose(pscore, 1.0 / n_candidates, rtol=1e-6, atol=0.0):
        return True
    inverse = 1.0 / pscore
    if np.allclose(inverse, np.round(inverse), rtol=1e-6, atol=0.0):
        return None
    return False
