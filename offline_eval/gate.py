"""The offline promotion gate: a candidate version becomes champion only if its offline estimate on
the recent log beats the current champion's (by ``min_gain``), both estimated on the same events.

It answers with the registry's :class:`~policy_registry.GateResult`, so ``PolicyRegistry.promote``
takes it as its ``gate`` without the registry knowing about offline evaluation.
"""
from __future__ import annotations

from pathlib import Path

from offerbandit.errors import InvalidInput
from offline_eval.estimators import ESTIMATORS
from offline_eval.runner import evaluate_policies
from offline_eval.settings import OfflineSettings
from policy_registry import Gate, GateResult

__all__ = ["offline_gate"]


def offline_gate(data_dir: Path, campaign: str, *, estimator: str = "snipw", min_gain: float = 0.0,
                 n_bootstrap: int = 200, seed: int = 0, settings: OfflineSettings | None = None) -> Gate:
    """A gate for ``PolicyRegistry.promote`` that runs the offline evaluation on the log under ``data_dir``."""
    if estimator not in ESTIMATORS:
        raise InvalidInput(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}", field="estimator")

    def gate(champion: str | None, candidate: str) -> GateResult:
        if champion is None:
            return GateResult(True, "no current champion: nothing to beat")
        report = evaluate_policies(data_dir, [candidate, champion], campaign=campaign, estimators=[estimator],
                                   n_bootstrap=n_bootstrap, seed=seed, settings=settings)
        results = {}
        for version in (candidate, champion):
            evaluation = report.result(version).evaluation
            if evaluation is None:
                return GateResult(False, f"no logged events left to evaluate version {version}")
            results[version] = evaluation[estimator]
        cand, champ = results[candidate], results[champion]
        gain = cand.value - champ.value
        passed = gain > min_gain
        verdict = "beats" if passed else "does not beat"
        return GateResult(passed, f"{estimator}: candidate {cand.value:.4f} {verdict} champion {champ.value:.4f} "
                                  f"by more than {min_gain} on {report.evaluation.n_events} logged events",
                          candidate_estimate=cand.value, champion_estimate=champ.value,
                          ci_low=cand.ci_low - champ.ci_high, ci_high=cand.ci_high - champ.ci_low)

    return gate
