"""The simulated catalogue: offers spread over categories, discount formats and offer types."""
from __future__ import annotations

from dataclasses import dataclass

from policies.types import ArmSet, Offer
from simulator.config import CATEGORIES, DISCOUNT_TYPES, OFFER_TYPES, WorldConfig


@dataclass(frozen=True)
class Catalog:
    """What the simulated marketer can send: offers x formats x time slots."""

    offers: tuple[Offer, ...]
    formats: tuple[str, ...]
    time_slots: tuple[str, ...]

    def arm_set(self) -> ArmSet:
        """Every (offer, format, time slot) arm, offer-major (`ArmSet.product` order)."""
        return ArmSet.product(self.offers, self.formats, self.time_slots)


def build_catalog(config: WorldConfig) -> Catalog:
    """A deterministic catalogue: offer ``i`` is in category ``i mod n_categories``; discount type and
    offer type rotate at different speeds so each category mixes dollar/percent and offer types."""
    width = len(str(max(config.n_offers - 1, 0)))
    offers = []
    for i in range(config.n_offers):
        features = {
            "category": CATEGORIES[i % config.n_categories],
            "discount_type": DISCOUNT_TYPES[(i // config.n_categories) % len(DISCOUNT_TYPES)],
            "offer_type": OFFER_TYPES[(i + i // config.n_categories) % len(OFFER_TYPES)],
        }
        offers.append(Offer(id=f"offer_{i:0{max(width, 2)}d}", features=features))
    return Catalog(offers=tuple(offers), formats=config.formats, time_slots=config.time_slots)
