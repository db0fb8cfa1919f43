"""Seeded synthetic bandit logs whose target policy value is known exactly (tests and benches).

A :class:`SyntheticWorld` has finitely many context types, so the true value of the target policy,
sum_m P(m) sum_a pi_e(a|m) q(m, a), is exact rather than a Monte-Carlo guess. The world is fixed by
``world_seed``; each :meth:`SyntheticWorld.sample` draws a fresh log from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offline_eval.feedback import LoggedFeedback


@dataclass(frozen=True, eq=False)
class SyntheticLog:
    feedback: LoggedFeedback
    context: np.ndarray  # (n,) context type of each event
    target_pmf: np.ndarray  # (n, n_actions)
    logging_pmf: np.ndarray  # (n, n_actions)
    q_true: np.ndarray  # (n, n_actions) expected reward
    q_hat: np.ndarray  # (n, n_actions) a deliberately imperfect reward model
    true_value: float


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """``logger``: "softmax" (non-uniform, full support) or "uniform"; ``target``: "softmax"
    (stochastic) or "greedy" (deterministic argmax of the expected reward); ``model_error``: standard
    deviation of the fixed error of ``q_hat`` around the true expected reward, ``model_bias`` its
    systematic offset."""

    n_actions: int = 5
    n_context_types: int = 8
    logger: str = "softmax"
    target: str = "softmax"
    model_error: float = 0.15
    model_bias: float = 0.0
    world_seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.world_seed)
        shape = (self.n_context_types, self.n_actions)
        object.__setattr__(self, "context_prob", rng.dirichlet(np.full(self.n_context_types, 2.0)))
        q = rng.uniform(0.1, 0.9, size=shape)
        object.__setattr__(self, "q_table", q)
        object.__setattr__(
            self, "q_hat_table", np.clip(q + self.model_bias + rng.normal(0.0, self.model_error, size=shape), 0, 1)
        )
        if self.logger == "uniform":
            logging = np.full(shape, 1.0 / self.n_actions)
        elif self.logger == "softmax":
            logging = 0.7 * _softmax(rng.normal(0.0, 1.5, size=shape)) + 0.3 / self.n_actions
        else:
            raise ValueError(f"unknown logger {self.logger!r}")
        object.__setattr__(self, "logging_table", logging)
        if self.target == "greedy":
            target = np.eye(self.n_actions)[q.argmax(axis=1)]
        elif self.target == "softmax":
            target = _softmax(6.0 * q)
        else:
            raise ValueError(f"unknown target {self.target!r}")
        object.__setattr__(self, "target_table", target)

    @property
    def true_value(self) -> float:
        per_context = (self.target_table * self.q_table).sum(axis=1)
        return float(self.context_prob @ per_context)

    def sample(self, n_events: int, seed: int) -> SyntheticLog:
        rng = np.random.default_rng(seed)
        context = rng.choice(self.n_context_types, size=n_events, p=self.context_prob)
        logging = self.logging_table[context]
        cumulative = logging.cumsum(axis=1)
        draws = rng.random(n_events)[:, None]
        action = np.minimum((cumulative < draws).sum(axis=1), self.n_actions - 1)
        rows = np.arange(n_events)
        q_true = self.q_table[context]
        reward = (rng.random(n_events) < q_true[rows, action]).astype(np.float64)
        feedback = LoggedFeedback(action, reward, logging[rows, action])
        return SyntheticLog(
            feedback=feedback,
            context=context,
            target_pmf=self.target_table[context],
            logging_pmf=logging,
            q_true=q_true,
            q_hat=self.q_hat_table[context],
            true_value=self.true_value,
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
