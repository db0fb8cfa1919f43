"""Logged bandit feedback: what the logging policy did, what it observed, with which probability."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offline_eval import _validation as check


@dataclass(frozen=True, eq=False)
class LoggedFeedback:
    """n logged events as three aligned 1-D arrays (copied, read-only).

    ``action[i]``: index of the chosen action (int, >= 0; for ragged logs the position in event i's
    candidate set); ``reward[i]``: observed reward (finite); ``pscore[i]``: the logging policy's
    probability of that action, in (0, 1].
    """

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray

    def __post_init__(self) -> None:
        action = check.as_1d_array("action", self.action, integer=True)
        reward = check.as_1d_array("reward", self.reward)
        pscore = check.as_1d_array("pscore", self.pscore)
        check.check_same_length(action=action, reward=reward, pscore=pscore)
        check.check_pscore(pscore)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "reward", reward)
        object.__setattr__(self, "pscore", pscore)

    @property
    def n_events(self) -> int:
        return int(self.action.shape[0])

    def __len__(self) -> int:
        return self.n_events
