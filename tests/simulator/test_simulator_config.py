"""simulator.config and simulator.catalog: validation tables and the catalogue's shape."""
from __future__ import annotations

import pytest

from offerbandit.errors import InvalidInput
from simulator import CustomerWorld, WorldConfig, build_catalog
from simulator.config import CATEGORIES, DISCOUNT_TYPES, KNOWN_FORMATS, KNOWN_TIME_SLOTS, OFFER_TYPES

INVALID_CONFIGS = [
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"seed": True}, "seed"),
    ({"seed": "0"}, "seed"),
    ({"n_customers": 0}, "n_customers"),
    ({"n_customers": 10**9}, "n_customers"),
    ({"n_customers": 2000.0}, "n_customers"),
    ({"n_offers": 0}, "n_offers"),
    ({"n_offers": None}, "n_offers"),
    ({"n_categories": 0}, "n_categories"),
    ({"n_categories": len(CATEGORIES) + 1}, "n_categories"),
    ({"formats": ()}, "formats"),
    ({"formats": "sms"}, "formats"),
    ({"formats": ("sms", "fax")}, "formats"),
    ({"formats": ("sms", "sms")}, "formats"),
    ({"time_slots": ()}, "time_slots"),
    ({"time_slots": ("midnight",)}, "time_slots"),
    ({"time_slots": ("lunch", "lunch")}, "time_slots"),
    ({"time_slots": 3}, "time_slots"),
    ({"fatigue": 1}, "fatigue"),
    ({"drift": "no"}, "drift"),
    ({"latent_interests": None}, "latent_interests"),
    ({"base_rate": 0.0}, "base_rate"),
    ({"base_rate": -0.1}, "base_rate"),
    ({"base_rate": 0.9}, "base_rate"),
    ({"base_rate": float("nan")}, "base_rate"),
    ({"base_rate": "0.01"}, "base_rate"),
    ({"latent_share": 1.5}, "latent_share"),
    ({"latent_share": -0.01}, "latent_share"),
    ({"fatigue_half_life_hours": 0.0}, "fatigue_half_life_hours"),
    ({"fatigue_half_life_hours": float("inf")}, "fatigue_half_life_hours"),
    ({"drift_period_days": -3.0}, "drift_period_days"),
    ({"requests_per_customer_per_day": 0.0}, "requests_per_customer_per_day"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_CONFIGS)
def test_invalid_config_names_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        WorldConfig(**overrides)
    assert excinfo.value.field == field
    assert field in str(excinfo.value)


def test_valid_config_normalises_sequences_to_tuples() -> None:
    config = WorldConfig(formats=["email", "sms"], time_slots=["evening"])
    assert config.formats == ("email", "sms")
    assert config.time_slots == ("evening",)
    assert hash(config) == hash(WorldConfig(formats=("email", "sms"), time_slots=("evening",)))


def test_world_refuses_anything_but_a_config() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        CustomerWorld({"seed": 0})  # type: ignore[arg-type]
    assert excinfo.value.field == "config"


@pytest.mark.parametrize(("n_offers", "n_categories"), [(1, 6), (12, 6), (30, 4), (7, 1)])
def test_catalog_shape(n_offers: int, n_categories: int) -> None:
    catalog = build_catalog(WorldConfig(n_offers=n_offers, n_categories=n_categories))
    ids = [offer.id for offer in catalog.offers]
    assert len(ids) == n_offers == len(set(ids))
    categories = {offer.category for offer in catalog.offers}
    assert categories == set(CATEGORIES[: min(n_offers, n_categories)])
    for offer in catalog.offers:
        assert offer.features["discount_type"] in DISCOUNT_TYPES
        assert offer.features["offer_type"] in OFFER_TYPES
    assert catalog.formats == KNOWN_FORMATS and catalog.time_slots == KNOWN_TIME_SLOTS
    assert len(catalog.arm_set()) == n_offers * len(KNOWN_FORMATS) * len(KNOWN_TIME_SLOTS)


def test_default_catalog_mixes_discounts_and_offer_types_within_categories() -> None:
    catalog = build_catalog(WorldConfig())
    assert len(catalog.offers) == 12
    for category in CATEGORIES:
        in_category = [o for o in catalog.offers if o.category == category]
        assert {o.features["discount_type"] for o in in_category} == set(DISCOUNT_TYPES)
    assert {o.features["offer_type"] for o in catalog.offers} == set(OFFER_TYPES)


def test_exported_members_match_all() -> None:
    import simulator

    exported = {name for name in dir(simulator) if not name.startswith("_")}
    modules = {"catalog", "config", "habits", "population", "world"}
    assert exported - modules == set(simulator.__all__)
