"""Per-campaign runtime state: the live (serving) policy, the shadow challenger, rules and novelty.

The live policy is swapped by replacing one tuple reference, so a request sees either the old or
the new (policy, version) pair, never a mix; no request waits for a swap.

The per-campaign caches (joint arms of a candidate list, offer-snapshot codes, offer categories) are
bounded in bytes (``[server] candidate_cache_bytes`` per campaign), least recently used dropped first.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from policies import modes
from policies.contract import Policy
from policies.bounded import ByteLRU, text_bytes
from policies.novelty import NoveltyConfig
from policies.factory import make_policy
from policies.vw.double_buffer import DoubleBuffer
from policies.rules import RulesConfig
from policies.types import ArmSet, DecisionContext, JointArm, Offer
from service.config import CampaignConfig, ServiceConfig
from decision_log import encode_offers
from service.outcomes import arm_set_bytes

BOOTSTRAP_VERSION = "bootstrap"
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


def _key_bytes(key: tuple | bytes) -> int:
    """Estimated bytes of an offers key: a wire digest, or ((id, ((feature, value), ...)), ...)."""
    if isinstance(key, bytes):
        return 64 + len(key)
    return 64 + sum(120 + text_bytes(oid) + sum(80 + text_bytes(k, v) for k, v in feats) for oid, feats in key)


def _arm_set_entry_bytes(key: tuple, arm_set: ArmSet) -> int:
    return _key_bytes(key[0]) + arm_set_bytes(arm_set)


def _code_entry_bytes(key: tuple, code: tuple[str, str]) -> int:
    return _key_bytes(key) + text_bytes(*code)


def _category_bytes(offer_id: str, category: str) -> int:
    return 100 + text_bytes(offer_id, category)


@dataclass(frozen=True)
class CampaignCaches:
    """The byte-bounded caches of one campaign (each gets a third of the budget)."""

    arm_sets: ByteLRU
    offer_codes: ByteLRU
    categories: ByteLRU

    @classmethod
    def with_budget(cls, max_bytes: int = DEFAULT_CACHE_BYTES) -> "CampaignCaches":
        share = max_bytes // 3
        return cls(ByteLRU(share, _arm_set_entry_bytes), ByteLRU(share, _code_entry_bytes),
                   ByteLRU(share, _category_bytes))

    @property
    def nbytes(self) -> int:
        return self.arm_sets.nbytes + self.offer_codes.nbytes + self.categories.nbytes


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
    caches: CampaignCaches = field(default_factory=CampaignCaches.with_budget)
    #: how a learning process's VW models are double-buffered (None: one workspace serves and learns)
    double_buffer: DoubleBuffer | None = None

    def serving_pmf(self, policy: Policy, context: DecisionContext, arm_set: ArmSet,
                    baseline: JointArm | None) -> np.ndarray:
        """The policy component ``p_policy`` under the campaign's learning mode."""
        return self.shaped_pmf(policy.pmf(context, arm_set), arm_set, baseline)

    def shaped_pmf(self, learned: np.ndarray, arm_set: ArmSet, baseline: JointArm | None) -> np.ndarray:
        """``p_policy`` from the learned policy's pmf over ``arm_set`` under the campaign's learning mode."""
        if self.mode.mode == "online":
            return learned
        return modes.served_pmf(self.mode, learned, baseline_index=_index_of(arm_set, baseline),
                                gate=self.apprentice)

    def candidates(self, offers: tuple[Offer, ...], formats: tuple[str, ...], time_slots: tuple[str, ...],
                   offers_key: bytes = b"") -> ArmSet:
        """The joint arms of a candidate list, built once per distinct list and reused: callers tend
        to send the same candidates again and again, and the VW adapter's caches key on the object.
        ``offers_key`` (the validated offers' wire digest) saves building the content key."""
        key = (offers_key or self._offers_key(offers), formats, time_slots)
        arm_set = self.caches.arm_sets.get(key)
        if arm_set is None:
            arm_set = ArmSet.product(offers, formats, time_slots)
            self.caches.arm_sets.put(key, arm_set)
        return arm_set

    def offer_set_code(self, offers: tuple[Offer, ...], offers_key: bytes = b"") -> tuple[str, str]:
        """Content id and JSON of an offer snapshot, cached per distinct offer list."""
        key = offers_key or self._offers_key(offers)
        code = self.caches.offer_codes.get(key)
        if code is None:
            code = encode_offers(offers)
            self.caches.offer_codes.put(key, code)
            for offer in offers:
                self.caches.categories.put(offer.id, offer.category)
        return code

    @staticmethod
    def _offers_key(offers: tuple[Offer, ...]) -> tuple:
        return tuple((o.id, tuple(sorted(o.features.items()))) for o in offers)

    def category_of(self, offer_id: str) -> str | None:
        """The category of an offer seen recently (None once it fell out of the cache)."""
        return self.caches.categories.get(offer_id)


def _index_of(arm_set: ArmSet, arm: JointArm | None) -> int | None:
    if arm is None:
        return None
    try:
        return arm_set.arms.index(arm)
    except ValueError:
        return None


def new_policy(config: CampaignConfig, double_buffer: DoubleBuffer | None = None) -> Policy:
    return make_policy(config.policy, double_buffer=double_buffer, **dict(config.policy_params))


def serving_buffer(config: ServiceConfig) -> DoubleBuffer | None:
    """The double buffer of a process that serves and learns (``[learning] publish_every_seconds``): the
    model guard publishes each checked update when due; None when set to 0."""
    every = config.learning.publish_every_seconds
    return None if every <= 0 else DoubleBuffer(publish_every_seconds=every, publish_on_learn=False)


def build_runtimes(config: ServiceConfig, double_buffer: DoubleBuffer | None = None) -> dict[str, CampaignRuntime]:
    cache_bytes = config.server.candidate_cache_bytes
    runtimes = {}
    for name, campaign in config.campaigns.items():
        catalog = campaign.catalog
        mode = modes.ModeConfig(mode=campaign.mode, epsilon=campaign.exploration_slice,
                                margin=campaign.apprentice_margin)
        runtime = CampaignRuntime(
            config=campaign,
            live=LivePolicy(new_policy(campaign, double_buffer), BOOTSTRAP_VERSION),
            rules=campaign.rules,
            novelty=campaign.novelty,
            catalog_arms=ArmSet.product(catalog.offers, catalog.formats, catalog.time_slots),
            mode=mode,
            apprentice=modes.ApprenticeGate(mode) if campaign.mode == "apprentice" else None,
            caches=CampaignCaches.with_budget(cache_bytes),
            double_buffer=double_buffer,
        )
        runtime.offer_set_code(catalog.offers)
        runtimes[name] = runtime
    return runtimes
