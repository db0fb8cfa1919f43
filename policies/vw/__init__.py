"""Everything that talks to VowpalWabbit; nothing else in the project imports ``vowpalwabbit`` or writes
VW input.

- ``features``: which namespace each piece of a decision goes into, escaping, ``cost = -reward``;
- ``workspace``: workspace bytes (save/load) and the cache of parsed arm examples;
- ``learner``: :class:`CbAdfLearner`, the ``--cb_explore_adf`` mediator (pmf, learn, save/load);
- ``regressor``: :class:`VWRewardRegressor`, a squared-loss reward model for offline estimators;
- ``dsjson``: DSJSON records built from the same features as online learning;
- ``policy``: :class:`VWPolicy`, the learned policy over the mediator.
"""
from policies.vw.dsjson import dsjson_context, dsjson_line, dsjson_record
from policies.vw.features import (
    DEFAULT_INTERACTIONS,
    arm_line,
    cost_from_reward,
    escape_token,
    reward_from_cost,
    shared_line,
)
from policies.vw.learner import EXPLORATIONS, CbAdfLearner, CbAdfOptions
from policies.vw.policy import VWPolicy, VWPolicyConfig, finalise_pmf
from policies.vw.regressor import RewardRegressorConfig, VWRewardRegressor

__all__ = [
    "CbAdfLearner",
    "CbAdfOptions",
    "DEFAULT_INTERACTIONS",
    "EXPLORATIONS",
    "RewardRegressorConfig",
    "VWPolicy",
    "VWPolicyConfig",
    "VWRewardRegressor",
    "arm_line",
    "cost_from_reward",
    "dsjson_context",
    "dsjson_line",
    "dsjson_record",
    "escape_token",
    "finalise_pmf",
    "reward_from_cost",
    "shared_line",
]
