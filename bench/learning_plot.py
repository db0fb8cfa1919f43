"""The learning bench's figure: one panel per simulated world, each policy's curve next to the reference
levels on the same requests (bench_learning.py)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

REFERENCE_STYLES = {"oracle": "--", "per-segment rules in hindsight": (0, (5, 1, 1, 1)),
                    "mass marketing: best single arm": ":", "uniform": "-."}


def plot_worlds(curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
                references: Mapping[str, Mapping[str, float]], titles: Mapping[str, str],
                x_labels: Mapping[str, str], labels: Mapping[str, str], path: Path) -> None:
    """``curves[world][policy]`` = (x, window means); ``references[world][label]`` = a level drawn as a
    horizontal line (labels from ``REFERENCE_STYLES``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.4), dpi=90)
    panels = figure.subplots(1, len(curves), squeeze=False)[0]
    for axes, (world, world_curves) in zip(panels, curves.items()):
        right = max(float(x[-1]) for x, _ in world_curves.values())
        for policy, (x, y) in world_curves.items():
            axes.plot(x, y, marker="o", markersize=3, linewidth=2 if policy == "vw" else 1.2, label=labels[policy])
        for label, value in references[world].items():
            axes.axhline(value, color="grey", linestyle=REFERENCE_STYLES[label], linewidth=1)
            axes.text(right, value, f" {label}", va="center", ha="right", fontsize=7, color="dimgrey",
                      bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
        axes.set_xlabel(x_labels[world])
        axes.set_ylabel("mean true response probability (window)")
        axes.set_title(titles[world], fontsize=8)
        axes.legend(fontsize=7, loc="upper left")
        axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
