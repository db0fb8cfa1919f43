"""Everything that talks to VowpalWabbit; nothing else in the project imports ``vowpalwabbit`` or writes
VW input.

- ``features``: which namespace each piece of a decision goes into, escaping, ``cost = -reward``;
- ``workspace``: workspace bytes (save/load) and the cache of parsed arm examples;
- ``learner``: :class:`CbAdfLearner`, the ``--cb_explore_adf`` mediator (pmf, learn, save/load);
- ``regressor``: :class:`VWRewardRegressor`, a squared-loss reward model for offline estimators;
- ``dsjson``: DSJSON records built from the same features as online learning;
- ``double_buffer``: :class:`DoubleBufferedLearner`, a serving and a learning workspace (checkpoints
  never stall decisions);
- ``policy``: :class:`VWPolicy`, the learned policy over the mediator.
"""
from __future__ import annotations

from offerbandit.lazy import lazy_attributes

# Loaded on first use: `policies.vw.dsjson` and `policies.vw.features` (what the log's export needs)
# must not pull vowpalwabbit in with this package.
_LAZY = {
    "dsjson_context": "policies.vw.dsjson", "dsjson_line": "policies.vw.dsjson", "dsjson_record": "policies.vw.dsjson",
    "DEFAULT_INTERACTIONS": "policies.vw.features", "arm_line": "policies.vw.features",
    "PERSONAL_INTERACTIONS": "policies.vw.features",
    "cost_from_reward": "policies.vw.features", "escape_token": "policies.vw.features",
    "reward_from_cost": "policies.vw.features", "shared_line": "policies.vw.features",
    "EXPLORATIONS": "policies.vw.learner", "CbAdfLearner": "policies.vw.learner", "CbAdfOptions": "policies.vw.learner",
    "DoubleBuffer": "policies.vw.double_buffer", "DoubleBufferedLearner": "policies.vw.double_buffer",
    "VWPolicy": "policies.vw.policy", "VWPolicyConfig": "policies.vw.policy", "finalise_pmf": "policies.vw.policy",
    "RewardRegressorConfig": "policies.vw.regressor", "VWRewardRegressor": "policies.vw.regressor",
}

__all__ = [
    "CbAdfLearner",
    "CbAdfOptions",
    "DEFAULT_INTERACTIONS",
    "DoubleBuffer",
    "DoubleBufferedLearner",
    "EXPLORATIONS",
    "PERSONAL_INTERACTIONS",
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


__getattr__, __dir__ = lazy_attributes('policies.vw', globals(), _LAZY)
