"""The promotion gate: a candidate version becomes champion only if its offline estimate on the
recent log beats the current champion's (by ``min_gain``), both estimated on the same events."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from offerbandit.errors import InvalidInput
from policy_registry.registry import GateResult

GateFn = Callable[[str | None, str], GateResult]


def offline_gate(data_dir: Path, campaign: str, *, estimator: str = "snipw", min_gain: float = 0.0,
                 n_bootstrap: int = 200, seed: int = 0) -> GateFn:
    """A gate for ``PolicyRegistry.promote`` that runs ``offline_eval`` on the log under ``data_dir``."""
    from offline_eval.estimators import ESTIMATORS

    if estimator not in ESTIMATORS:
        raise InvalidInput(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}", field="estimator")

    def gate(champion: str | None, candidate: str) -> GateResult:
        from offline_eval.runner import evaluate_policies

        if champion is None:
            return GateResult(True, "no current champion: nothing to beat")
        report = evaluate_policies(data_dir, [candidate, champion], campaign=campaign, estimators=[estimator],
                                   n_bootstrap=n_bootstrap, seed=seed)
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
