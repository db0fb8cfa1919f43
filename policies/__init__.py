"""Decision logic: the Policy contract, the policies behind it and the pipeline that shapes a pmf
before sampling (contact rules, novelty exploration, learning modes, the seeded draw).

The VW-backed names (``VWPolicy``, ``VWPolicyConfig``, the factory and the conformance battery) load
``vowpalwabbit`` on first use, so importing the records here stays cheap for the log and the
offline evaluation.
"""
from __future__ import annotations

from offerbandit.lazy import lazy_attributes

from policies.baselines import (
    BestSingleArmConfig,
    BestSingleArmPolicy,
    PerSegmentGreedyConfig,
    PerSegmentGreedyPolicy,
    UniformPolicy,
)
from policies.contract import Policy
from policies.history import HistoryConfig, HistoryRecord, UserHistory, UserHistoryStore
from policies.modes import MODES, ApprenticeGate, ModeConfig
from policies.novelty import Mixture, NoveltyConfig, mix_for_history
from policies.rules import Eligibility, FrequencyCap, QuietHours, RulesConfig, SuppressionRule, apply_rules
from policies.sampler import Draw, event_seed, exploration_label, two_stage_draw
from policies.types import ArmSet, DecisionContext, JointArm, LearningEvent, Offer

# name -> module, for the names that import vowpalwabbit
_LAZY = {
    "VWPolicy": "policies.vw.policy",
    "VWPolicyConfig": "policies.vw.policy",
    "check_policy": "policies.conformance",
    "load_policy": "policies.factory",
    "make_policy": "policies.factory",
    "policy_names": "policies.factory",
}

__all__ = [
    "ApprenticeGate",
    "ArmSet",
    "BestSingleArmConfig",
    "BestSingleArmPolicy",
    "DecisionContext",
    "Draw",
    "Eligibility",
    "FrequencyCap",
    "HistoryConfig",
    "HistoryRecord",
    "JointArm",
    "LearningEvent",
    "MODES",
    "Mixture",
    "ModeConfig",
    "NoveltyConfig",
    "Offer",
    "PerSegmentGreedyConfig",
    "PerSegmentGreedyPolicy",
    "Policy",
    "QuietHours",
    "RulesConfig",
    "SuppressionRule",
    "UniformPolicy",
    "UserHistory",
    "UserHistoryStore",
    "VWPolicy",
    "VWPolicyConfig",
    "apply_rules",
    "check_policy",
    "event_seed",
    "exploration_label",
    "load_policy",
    "make_policy",
    "mix_for_history",
    "policy_names",
    "two_stage_draw",
]


__getattr__, __dir__ = lazy_attributes('policies', globals(), _LAZY)
