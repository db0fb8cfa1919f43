"""The demo's lift: offerbandit against its control group, read from the log once every window closed.

The demo's campaign keeps ``HOLDOUT_SHARE`` of the simulated customers as a randomised control group served
the mass-marketing arm (the request's ``baseline``); the lift is the treated minus the holdout mean reward
per decision with its 95% interval (customer as unit), over the whole run (``overall``, the fields of
``offerbandit lift``) and per serving version against the holdout of the same version (``by_version``). The
same numbers go on each version's MLflow run (``service.lift_runs``).
"""
from __future__ import annotations

from dataclasses import dataclass

from offerbandit.reports.lift import LiftGroup, LiftReport, log_lifts
from service.config import ServiceConfig
from service.lift_runs import lift_settings
from service.server import DecisionServer

__all__ = ["DemoLift", "demo_lift"]


@dataclass(frozen=True)
class DemoLift:
    """The holdout's set-up, the lift over the whole run and per serving version."""

    holdout_share: float
    holdout_treatment: str
    overall: LiftReport
    by_version: tuple[LiftGroup, ...]


def demo_lift(server: DecisionServer, config: ServiceConfig, campaign: str = "default") -> DemoLift:
    """Lift of ``campaign`` now (call it once the last decision's window closed); also records it on the
    versions' MLflow runs when the server has a registry."""
    if server.registry is not None:
        server.registry.record_lift(campaign)
    (lift,) = log_lifts(server.engine.log, lift_settings(config), [campaign], by_version=True)
    settings = config.campaigns[campaign]
    return DemoLift(settings.holdout, settings.holdout_treatment, lift.report, lift.groups)
