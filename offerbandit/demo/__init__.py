"""``offerbandit demo`` and the simulated traffic it drives through a real server over gRPC."""
from offerbandit.demo.run import DemoOptions, DemoSummary, OpeCheck, PolicyValue, run_demo
from offerbandit.demo.summary import print_summary
from offerbandit.demo.traffic import Step, catalog_request, channel_for, drive, world_catalog_toml

__all__ = [
    "DemoOptions",
    "DemoSummary",
    "OpeCheck",
    "PolicyValue",
    "Step",
    "catalog_request",
    "channel_for",
    "drive",
    "print_summary",
    "run_demo",
    "world_catalog_toml",
]
