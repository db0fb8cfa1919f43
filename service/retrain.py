"""A campaign's model retrained from the decision log as it is now (``offerbandit retrain --from-log``).

A model trained online keeps what it learned from every event it saw, also after the customer behind some
of them was erased (VW's weights over hashed features: no ids, but their influence stays, in the live model
and in every version published before the erasure). A retrained model learns only from the events the log
still holds, in the order the learner gave them (``learn_seq``), starting from the campaign's configured
policy: nothing of an erased customer is in it. It is published as a new lineage (no parent) whose
``learn_seq`` is the last one it includes, so a server that swaps it in catches up on exactly the events
learned after it — none twice, none missed.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from decision_log import DecisionLog
from offerbandit.errors import NotFound
from policies.contract import learn_in_batches
from policies.factory import make_policy
from policies.types import LearningEvent
from policy_registry import Lineage, PolicyArtifact, current_code_version
from service.config import CampaignConfig, ServiceConfig
from service.config_toml import campaign_policy_toml

__all__ = ["RetrainedModel", "campaign_settings", "retrain_from_log"]

_BATCH = 512


@dataclass(frozen=True)
class RetrainedModel:
    """A model learned from the log: the events it learned and the last ``learn_seq`` among them."""

    campaign: str
    policy_name: str
    model: bytes
    config_toml: str
    events: int
    learn_seq: int
    trained_at: float

    def artifact(self) -> PolicyArtifact:
        """The version to publish: a lineage of its own, including every learn_seq up to ``learn_seq``."""
        return PolicyArtifact(
            campaign=self.campaign, policy_name=self.policy_name, model=self.model, config_toml=self.config_toml,
            lineage=Lineage(None, None, self.trained_at, self.events, current_code_version(),
                            learn_seq=self.learn_seq),
            metrics={"train_events": float(self.events)})


def campaign_settings(config: ServiceConfig, campaign: str) -> CampaignConfig:
    """The configuration of ``campaign`` (NotFound when the file does not configure it)."""
    settings = config.campaigns.get(campaign)
    if settings is None:
        raise NotFound(f"campaign {campaign!r} is not configured (configured: {', '.join(sorted(config.campaigns))})")
    return settings


def retrain_from_log(log: DecisionLog, config: ServiceConfig, campaign: str) -> RetrainedModel:
    """Train ``campaign``'s configured policy afresh on every event the log holds as learned, in learn_seq
    order (quarantined and held-out events stay out, as the online learner had them)."""
    settings = campaign_settings(config, campaign)
    policy = make_policy(settings.policy, **settings.policy_params)
    last = [0]

    def events() -> Iterator[LearningEvent]:
        for item in log.learned_events_after(config.reward_defaults(), campaign, 0):
            last[0] = item.learn_seq
            yield item.event

    count = learn_in_batches(policy, events(), _BATCH)
    return RetrainedModel(campaign=campaign, policy_name=settings.policy, model=policy.save(),
                          config_toml=campaign_policy_toml(settings, policy.params), events=count,
                          learn_seq=last[0], trained_at=time.time())
