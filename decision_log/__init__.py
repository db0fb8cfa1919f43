"""TEMPORARY BRIDGE (layout-registry): revert this commit once layout-log lands its RewardDefaults."""
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["RewardDefaults"]


@dataclass(frozen=True, slots=True)
class RewardDefaults:
    """The reward an event without one counts as: per campaign, else ``fallback``."""

    by_campaign: Mapping[str, float] = field(default_factory=dict)
    fallback: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_campaign", MappingProxyType(dict(self.by_campaign)))

    def of(self, campaign: str) -> float:
        return float(self.by_campaign.get(campaign, self.fallback))
