"""What offline evaluation needs to know of the service's configuration, as one small record.

offline_eval never reads the service config itself (it sits below the service): the caller builds
:class:`OfflineSettings` from it (``service.offline_settings.offline_settings``) and passes it in.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from decision_log import RewardDefaults
from offerbandit.errors import InvalidInput

__all__ = ["CampaignPolicy", "OfflineSettings"]


@dataclass(frozen=True, slots=True)
class CampaignPolicy:
    """A campaign's own policy: the parameters ``counterfactual:<policy>`` trains with when it names it."""

    policy: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.policy, str) or not self.policy:
            raise InvalidInput("policy must name a policy", field="policy")
        if not isinstance(self.params, Mapping):
            raise InvalidInput("params must be a mapping of parameter name to value", field="params")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True, slots=True)
class OfflineSettings:
    """Default rewards of events without one, and each campaign's own policy.

    ``fallback_policy`` applies to a campaign not in ``policies`` (None: such a campaign has no
    policy of its own, so a counterfactual policy trains with its own defaults). The empty record
    (the default) counts missing rewards as 0.
    """

    rewards: RewardDefaults = field(default_factory=lambda: RewardDefaults(by_campaign={}))
    policies: Mapping[str, CampaignPolicy] = field(default_factory=dict)
    fallback_policy: CampaignPolicy | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rewards, RewardDefaults):
            raise InvalidInput("rewards must be a RewardDefaults", field="rewards")
        if not isinstance(self.policies, Mapping) or not all(
                isinstance(p, CampaignPolicy) for p in self.policies.values()):
            raise InvalidInput("policies must map campaign names to CampaignPolicy", field="policies")
        if self.fallback_policy is not None and not isinstance(self.fallback_policy, CampaignPolicy):
            raise InvalidInput("fallback_policy must be a CampaignPolicy or None", field="fallback_policy")
        object.__setattr__(self, "policies", MappingProxyType(dict(self.policies)))

    def policy_of(self, campaign: str) -> CampaignPolicy | None:
        return self.policies.get(campaign, self.fallback_policy)
