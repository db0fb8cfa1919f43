"""Seeded simulated customers for the demo, the tests and the benchmarks."""
from simulator.catalog import Catalog, build_catalog
from simulator.config import WorldConfig
from simulator.world import CustomerWorld, ReferenceValues, SimRequest

__all__ = ["Catalog", "CustomerWorld", "ReferenceValues", "SimRequest", "WorldConfig", "build_catalog"]
