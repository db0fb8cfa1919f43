"""Seeded simulated customers for the demo, the tests and the benchmarks."""
from simulator.catalog import Catalog, build_catalog
from simulator.config import CATEGORIES, KNOWN_FORMATS, KNOWN_TIME_SLOTS, WorldConfig
from simulator.world import CustomerWorld, ReferenceValues, SimRequest, per_segment_rules_rewards

__all__ = [
    "CATEGORIES",
    "Catalog",
    "CustomerWorld",
    "KNOWN_FORMATS",
    "KNOWN_TIME_SLOTS",
    "ReferenceValues",
    "SimRequest",
    "WorldConfig",
    "build_catalog",
    "per_segment_rules_rewards",
]
