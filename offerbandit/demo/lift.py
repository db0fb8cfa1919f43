"""The demo's lift: offerbandit against its control group, read from the log once every window closed.

The demo's campaign keeps ``HOLDOUT_SHARE`` of the simulated customers as a randomised control group served
the mass-marketing arm (the request's ``baseline``); the lift is the treated minus the holdout mean reward
per decision with its 95% interval (customer as unit), over the whole run and per serving version (the
holdout of the same version). The same numbers go on each version's MLflow run (``service.lift_runs``).
"""
from __future__ import annotations

from dataclasses import dataclass

from offerbandit.reports.lift import LiftReport, log_lifts
from service.config import ServiceConfig
from service.lift_runs import lift_settings
from service.server import DecisionServer

__all__ = ["DemoLift", "VersionLift", "demo_lift"]


@dataclass(frozen=True)
class VersionLift:
    """The lift of the decisions one version served, against the holdout decided while it served."""

    policy_version: str
    treated_decisions: int
    holdout_decisions: int
    treated_mean_reward: float | None
    holdout_mean_reward: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class DemoLift:
    """The contract's lift fields over the whole run, the holdout's set-up, and the lift per version."""

    holdout_share: float
    holdout_treatment: str
    treated_decisions: int
    treated_mean_reward: float | None
    holdout_decisions: int
    holdout_mean_reward: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    by_version: tuple[VersionLift, ...]


def _version(version: str, r: LiftReport) -> VersionLift:
    return VersionLift(version, r.treated_decisions, r.holdout_decisions, r.treated_mean_reward,
                       r.holdout_mean_reward, r.lift, r.ci_low, r.ci_high)


def demo_lift(server: DecisionServer, config: ServiceConfig, campaign: str = "default") -> DemoLift:
    """Lift of ``campaign`` now (call it once the last decision's window closed); also records it on the
    versions' MLflow runs when the server has a registry."""
    if server.registry is not None:
        server.registry.record_lift(campaign)
    (lift,) = log_lifts(server.engine.log, lift_settings(config), [campaign], by_version=True)
    r = lift.report
    settings = config.campaigns[campaign]
    return DemoLift(settings.holdout, settings.holdout_treatment, r.treated_decisions, r.treated_mean_reward,
                    r.holdout_decisions, r.holdout_mean_reward, r.lift, r.ci_low, r.ci_high,
                    tuple(_version(g.policy_version or "", g.report) for g in lift.groups))
