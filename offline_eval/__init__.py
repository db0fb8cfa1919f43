"""Offline (off-policy) evaluation of bandit policies from logged decisions.

Pure numpy core: :class:`LoggedFeedback` + :func:`evaluate` with the Open Bandit Pipeline estimators
(``replay``, ``ipw``, ``snipw``, ``dm``, ``dr``, ``sndr``, ``switch_dr``, ``dr_os``), bootstrap and
analytic intervals, weight/support diagnostics, a ragged (CSR-like) path for large candidate sets
and a streaming DSJSON loader. The decision-log loader, targets, the VW reward model and the runner
live in sibling modules, imported on their own (they are not pure numpy).
"""
from offline_eval.diagnostics import Diagnostics
from offline_eval.dsjson import DsjsonDecision, DsjsonLog, iter_dsjson, load_dsjson
from offline_eval.estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    OffPolicyEstimator,
    ReplayMethod,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
)
from offline_eval.evaluation import DEFAULT_N_BOOTSTRAP, EstimateResult, Evaluation, evaluate
from offline_eval.feedback import LoggedFeedback
from offline_eval.ragged import RaggedMatrix

__all__ = [
    "DEFAULT_N_BOOTSTRAP",
    "Diagnostics",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "DsjsonDecision",
    "DsjsonLog",
    "ESTIMATORS",
    "EstimateResult",
    "Evaluation",
    "InverseProbabilityWeighting",
    "LoggedFeedback",
    "OffPolicyEstimator",
    "RaggedMatrix",
    "ReplayMethod",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedInverseProbabilityWeighting",
    "SwitchDoublyRobust",
    "evaluate",
    "iter_dsjson",
    "load_dsjson",
]
