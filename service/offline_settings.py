"""The service config as offline evaluation takes it: default rewards and each campaign's policy."""
from __future__ import annotations

from offline_eval.settings import CampaignPolicy, OfflineSettings
from service.config import ServiceConfig, default_campaign

__all__ = ["offline_settings"]


def offline_settings(config: ServiceConfig) -> OfflineSettings:
    """What ``offline_eval`` needs of ``config``. A campaign the config does not name is evaluated
    as the server would serve it: with the built-in default campaign's policy."""
    fallback = default_campaign()
    return OfflineSettings(
        rewards=config.reward_defaults(),
        policies={name: CampaignPolicy(c.policy, c.policy_params) for name, c in config.campaigns.items()},
        fallback_policy=CampaignPolicy(fallback.policy, fallback.policy_params),
    )
