"""Per-campaign runtime state: the live (serving) policy, the shadow challenger, rules and novelty.

The live policy is swapped by replacing one tuple reference, so a request sees either the old or
the new (policy, version) pair, never a mix; no request waits for a swap.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from policies import modes
from policies.contract import Policy
from policies.novelty import NoveltyConfig
from policies.factory import make_policy
from policies.rules import RulesConfig
from policies.types import ArmSet, DecisionContext, JointArm, Offer
from service.config import CampaignConfig, ServiceConfig
from decision_log import encode_offers

BOOTSTRAP_VERSION = "bootstrap"
_CACHE_SIZE = 4096  # distinct candidate lists remembered per campaign (oldest dropped first)


class LivePolicy:
    """A (policy, version) pair that can be swapped atomically."""

    def __init__(self, policy: Policy, version: str) -> None:
        self._state = (policy, version)
        self._swap_lock = threading.Lock()

    def current(self) -> tuple[Policy, str]:
        return self._state

    def swap(self, policy: Policy, version: str) -> None:
        with self._swap_lock:
            self._state = (policy, version)

    def swap_if(self, expected: Policy, policy: Policy) -> bool:
        """Replace ``expected`` by ``policy`` (same version) only if ``expected`` still serves."""
        with self._swap_lock:
            if self._state[0] is not expected:
                return False
            self._state = (policy, self._state[1])
            return True

    @property
    def version(self) -> str:
        return self._state[1]


@dataclass
class CampaignRuntime:
    config: CampaignConfig
    live: LivePolicy
    rules: RulesConfig
    novelty: NoveltyConfig
    catalog_arms: ArmSet
    challenger: LivePolicy | None = None
    mode: modes.ModeConfig = field(default_factory=modes.ModeConfig)
    apprentice: modes.ApprenticeGate | None = None
    _offer_codes: dict[tuple, tuple[str, str]] = field(default_factory=dict)
    _arm_sets: dict[tuple, ArmSet] = field(default_factory=dict)
    _categories: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serving_pmf(self, policy: Policy, context: DecisionContext, arm_set: ArmSet,
                    baseline: JointArm | None) -> np.ndarray:
        """The policy component ``p_policy`` under the campaign's learning mode."""
        learned = policy.pmf(context, arm_set)
        if self.mode.mode == "online":
            return learned
        return modes.served_pmf(self.mode, learned, baseline_index=_index_of(arm_set, baseline),
                                gate=self.apprentice)

    def candidates(self, offers: tuple[Offer, ...], formats: tuple[str, ...],
                   time_slots: tuple[str, ...]) -> ArmSet:
        """The joint arms of a candidate list, built once per distinct list and reused: callers tend
        to send the same candidates again and again, and the VW adapter's caches key on the object."""
        key = (self._offers_key(offers), formats, time_slots)
        arm_set = self._arm_sets.get(key)
        if arm_set is None:
            arm_set = ArmSet.product(offers, formats, time_slots)
            with self._lock:
                if len(self._arm_sets) >= _CACHE_SIZE:
                    self._arm_sets.pop(next(iter(self._arm_sets)))
                self._arm_sets[key] = arm_set
        return arm_set

    def offer_set_code(self, offers: tuple[Offer, ...]) -> tuple[str, str]:
        """Content id and JSON of an offer snapshot, cached per distinct offer list."""
        key = self._offers_key(offers)
        code = self._offer_codes.get(key)
        if code is None:
            code = encode_offers(offers)
            with self._lock:
                if len(self._offer_codes) >= _CACHE_SIZE:
                    self._offer_codes.pop(next(iter(self._offer_codes)))
                self._offer_codes[key] = code
                for offer in offers:
                    self._categories[offer.id] = offer.category
        return code

    @staticmethod
    def _offers_key(offers: tuple[Offer, ...]) -> tuple:
        return tuple((o.id, tuple(sorted(o.features.items()))) for o in offers)

    def category_of(self, offer_id: str) -> str:
        return self._categories.get(offer_id, "")


def _index_of(arm_set: ArmSet, arm: JointArm | None) -> int | None:
    if arm is None:
        return None
    try:
        return arm_set.arms.index(arm)
    except ValueError:
        return None


def new_policy(config: CampaignConfig) -> Policy:
    return make_policy(config.policy, **dict(config.policy_params))


def build_runtimes(config: ServiceConfig) -> dict[str, CampaignRuntime]:
    runtimes = {}
    for name, campaign in config.campaigns.items():
        catalog = campaign.catalog
        mode = modes.ModeConfig(mode=campaign.mode, epsilon=campaign.exploration_slice,
                                margin=campaign.apprentice_margin)
        runtime = CampaignRuntime(
            config=campaign,
            live=LivePolicy(new_policy(campaign), BOOTSTRAP_VERSION),
            rules=campaign.rules,
            novelty=campaign.novelty,
            catalog_arms=ArmSet.product(catalog.offers, catalog.formats, catalog.time_slots),
            mode=mode,
            apprentice=modes.ApprenticeGate(mode) if campaign.mode == "apprentice" else None,
        )
        runtime.offer_set_code(catalog.offers)
        runtimes[name] = runtime
    return runtimes
