"""Is a confidence interval calibrated over repeated seeded logs? Not too narrow *and* not too wide.

Coverage alone has no useful upper bound at 100 repetitions (a correct 95% interval covers all 100 with
probability 0.6%, an interval as wide as the reward range covers them always), so an interval is also
held to its width: the mean width over the repetitions against the width a normal interval at the same
level would need given the estimates' observed spread, ``2·z·sd(values)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Calibration", "calibration"]


@dataclass(frozen=True, slots=True)
class Calibration:
    covered: int
    repetitions: int
    width_ratio: float  # mean interval width / (2·z·sd of the point estimates)

    def problems(self, *, min_coverage: float = 0.85, max_coverage: float = 0.995, min_width: float = 0.7,
                 max_width: float = 1.4) -> list[str]:
        """What is wrong with these intervals; empty when calibrated within the bounds given."""
        found = []
        share = self.covered / self.repetitions
        if share < min_coverage:
            found.append(f"too narrow: covers {self.covered}/{self.repetitions}")
        if share > max_coverage:
            found.append(f"covers {self.covered}/{self.repetitions}, more than a {max_coverage:.1%} interval should")
        if self.width_ratio < min_width:
            found.append(f"too narrow: {self.width_ratio:.2f}x the width the estimates' spread needs")
        if self.width_ratio > max_width:
            found.append(f"too wide: {self.width_ratio:.2f}x the width the estimates' spread needs")
        return found


def calibration(values: np.ndarray, lows: np.ndarray, highs: np.ndarray, truth: float, level: float = 0.95) -> Calibration:
    """Coverage of ``truth`` by the intervals [lows, highs] and their width against the estimates' spread."""
    values, lows, highs = (np.asarray(a, dtype=np.float64) for a in (values, lows, highs))
    z = stats.norm.ppf(0.5 + level / 2)
    needed = 2 * z * values.std(ddof=1)
    return Calibration(covered=int(np.sum((lows <= truth) & (truth <= highs))), repetitions=len(values),
                       width_ratio=float(np.mean(highs - lows) / needed))
