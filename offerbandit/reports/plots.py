"""Charts for product owners, written as PNG files (matplotlib's Agg canvas, no pyplot state).

- ``plot_reward_over_time``: mean reward per time bin for each policy version, with a 95% band.
- ``plot_format_slot_heatmap``: mean reward for every format x time-slot cell (``reward_grid``), with n.
- ``plot_estimates``: offline estimates with confidence intervals, estimators x policies.

Inputs are plain arrays and small frozen records; bad input raises ``InvalidInput`` naming the
field before anything is drawn. matplotlib is imported on first use, so importing this module is cheap.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "EstimateInterval",
    "RewardGrid",
    "RewardSeries",
    "binned_mean",
    "plot_estimates",
    "plot_format_slot_heatmap",
    "plot_reward_over_time",
    "reward_grid",
]

_Z95 = 1.959963984540054


def _finite_vector(values: object, name: str) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numbers: {exc}", field=name) from exc
    if array.ndim != 1 or array.size == 0:
        raise InvalidInput(f"{name} must be a non-empty 1-D array, got shape {array.shape}", field=name)
    if not np.all(np.isfinite(array)):
        raise InvalidInput(f"{name} must be finite (no NaN or inf)", field=name)
    array.setflags(write=False)
    return array


def _label(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string, got {value!r}", field=name)
    return value


def _png_path(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise InvalidInput(f"path must end in .png, got {str(target)!r}", field="path")
    return target


@dataclass(frozen=True, slots=True)
class RewardSeries:
    """Rewards observed under one policy version: event times (epoch seconds) and reward values."""

    label: str
    times: np.ndarray
    rewards: np.ndarray

    def __post_init__(self) -> None:
        _label(self.label, "label")
        times = _finite_vector(self.times, "times")
        rewards = _finite_vector(self.rewards, "rewards")
        if times.shape != rewards.shape:
            raise InvalidInput(
                f"times and rewards differ in length ({times.size} vs {rewards.size})", field="rewards"
            )
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "rewards", rewards)


@dataclass(frozen=True, slots=True)
class EstimateInterval:
    """One estimator's value for one policy with its confidence interval (ci_low <= value <= ci_high)."""

    policy: str
    estimator: str
    value: float
    ci_low: float
    ci_high: float

    def __post_init__(self) -> None:
        _label(self.policy, "policy")
        _label(self.estimator, "estimator")
        for name in ("value", "ci_low", "ci_high"):
            check_scalar(getattr(self, name), name)
        if not self.ci_low <= self.value <= self.ci_high:
            raise InvalidInput(
                f"{self.policy}/{self.estimator}: need ci_low <= value <= ci_high, "
                f"got {self.ci_low} <= {self.value} <= {self.ci_high}",
                field="ci_low",
            )


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: "Figure", path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def binned_mean(
    times: np.ndarray, rewards: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean reward, 95% half-width (normal approximation) and count per bin of ``edges``.

    Bins are ``[edges[k], edges[k+1])`` with the last one closed; times outside go to the end bins.
    Empty bins have NaN mean; bins with fewer than two events NaN half-width.
    """
    times = _finite_vector(times, "times")
    rewards = _finite_vector(rewards, "rewards")
    edges = _finite_vector(edges, "edges")
    if times.shape != rewards.shape:
        raise InvalidInput("times and rewards differ in length", field="rewards")
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise InvalidInput("edges must be at least two strictly increasing numbers", field="edges")
    bins = len(edges) - 1
    index = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=rewards, minlength=bins)
    squares = np.bincount(index, weights=np.square(rewards), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / counts, np.nan)
        sample_variance = np.maximum(squares - counts * np.square(mean), 0.0) / (counts - 1)
        half_width = np.where(counts >= 2, _Z95 * np.sqrt(sample_variance / counts), np.nan)
    return mean, half_width, counts


def plot_reward_over_time(
    series: Sequence[RewardSeries],
    path: str | os.PathLike[str],
    *,
    bins: int = 24,
    title: str = "Reward over time by policy version",
) -> Path:
    """Mean reward per time bin (shared bins across versions) with a normal-approximation 95% band."""
    target = _png_path(path)
    if isinstance(series, RewardSeries) or not series:
        raise InvalidInput("series must be a non-empty sequence of RewardSeries", field="series")
    if not all(isinstance(s, RewardSeries) for s in series):
        raise InvalidInput("series must contain RewardSeries records", field="series")
    labels = [s.label for s in series]
    if len(set(labels)) != len(labels):
        raise InvalidInput("series labels must be distinct", field="series")
    check_scalar(bins, "bins", int, low=1, high=10_000)

    start = min(float(s.times.min()) for s in series)
    end = max(float(s.times.max()) for s in series)
    edges = np.linspace(start, end if end > start else start + 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    centre_dates = (centres * 1000).astype("datetime64[ms]")

    figure = _figure(9, 4.5)
    axes = figure.add_subplot()
    for one in series:
        mean, half_width, _ = binned_mean(one.times, one.rewards, edges)
        (line,) = axes.plot(centre_dates, mean, marker="o", markersize=3, label=f"{one.label} (n={one.rewards.size})")
        axes.fill_between(centre_dates, mean - half_width, mean + half_width, color=line.get_color(), alpha=0.2)
    axes.set_title(title)
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("mean reward per bin")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.autofmt_xdate()
    return _save(figure, target)


@dataclass(frozen=True, slots=True)
class RewardGrid:
    """Mean reward and event count per (format, time slot); ``mean`` is NaN where ``counts`` is 0."""

    formats: tuple[str, ...]
    time_slots: tuple[str, ...]
    mean: np.ndarray
    counts: np.ndarray


def reward_grid(
    formats: Sequence[str],
    time_slots: Sequence[str],
    rewards: Sequence[float] | np.ndarray,
    *,
    format_order: Sequence[str] | None = None,
    slot_order: Sequence[str] | None = None,
) -> RewardGrid:
    """Aggregate per-event (format, time slot, reward) into a grid.

    Rows and columns follow ``format_order``/``slot_order`` when given (every observed value must be
    listed; listed values without events give empty cells), else sorted order.
    """
    values = _finite_vector(rewards, "rewards")
    if isinstance(formats, str) or isinstance(time_slots, str):
        raise InvalidInput("formats and time_slots must be sequences, one entry per event", field="formats")
    format_labels = [_label(f, "formats") for f in formats]
    slot_labels = [_label(s, "time_slots") for s in time_slots]
    if len(format_labels) != values.size:
        raise InvalidInput(f"formats has {len(format_labels)} entries, rewards {values.size}", field="formats")
    if len(slot_labels) != values.size:
        raise InvalidInput(f"time_slots has {len(slot_labels)} entries, rewards {values.size}", field="time_slots")
    rows = _axis_order(format_labels, format_order, "format_order")
    columns = _axis_order(slot_labels, slot_order, "slot_order")
    row_of = {name: i for i, name in enumerate(rows)}
    column_of = {name: j for j, name in enumerate(columns)}
    cell = np.array([row_of[f] * len(columns) + column_of[s] for f, s in zip(format_labels, slot_labels)])
    size = len(rows) * len(columns)
    counts = np.bincount(cell, minlength=size).reshape(len(rows), len(columns))
    sums = np.bincount(cell, weights=values, minlength=size).reshape(counts.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / counts, np.nan)
    mean.setflags(write=False)
    counts.setflags(write=False)
    return RewardGrid(tuple(rows), tuple(columns), mean, counts)


def plot_format_slot_heatmap(
    grid: RewardGrid,
    path: str | os.PathLike[str],
    *,
    title: str = "Mean reward by format and time slot",
) -> Path:
    """A heatmap of ``reward_grid(...)``: mean reward and n in each cell, empty cells blank."""
    target = _png_path(path)
    if not isinstance(grid, RewardGrid):
        raise InvalidInput("grid must be a RewardGrid (see reward_grid)", field="grid")
    rows, columns, counts = grid.formats, grid.time_slots, grid.counts
    mean = np.ma.masked_invalid(grid.mean)

    figure = _figure(1.6 + 1.3 * len(columns), 1.2 + 0.7 * len(rows))
    axes = figure.add_subplot()
    image = axes.imshow(mean, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=axes, label="mean reward")
    axes.set_xticks(range(len(columns)), labels=list(columns))
    axes.set_yticks(range(len(rows)), labels=list(rows))
    axes.set_xlabel("time slot")
    axes.set_ylabel("format")
    axes.set_title(title)
    low, high = (float(mean.min()), float(mean.max())) if mean.count() else (0.0, 0.0)
    for i in range(len(rows)):
        for j in range(len(columns)):
            if counts[i, j] == 0:
                axes.text(j, i, "n=0", ha="center", va="center", fontsize="small", color="grey")
                continue
            bright = high > low and (mean[i, j] - low) / (high - low) > 0.6
            axes.text(
                j, i, f"{mean[i, j]:.3f}\nn={counts[i, j]}", ha="center", va="center",
                fontsize="small", color="black" if bright else "white",
            )
    return _save(figure, target)


def _axis_order(observed: list[str], order: Sequence[str] | None, name: str) -> list[str]:
    if order is None:
        return sorted(set(observed))
    if isinstance(order, str):
        raise InvalidInput(f"{name} must be a sequence of names", field=name)
    chosen = [_label(o, name) for o in order]
    if len(set(chosen)) != len(chosen):
        raise InvalidInput(f"{name} has duplicates", field=name)
    missing = sorted(set(observed) - set(chosen))
    if missing:
        raise InvalidInput(f"{name} does not list {missing}", field=name)
    return chosen


def plot_estimates(
    estimates: Sequence[EstimateInterval],
    path: str | os.PathLike[str],
    *,
    reference: float | None = None,
    reference_label: str = "logged policy (on-policy mean)",
    title: str = "Offline estimates with confidence intervals",
    xlabel: str = "estimator",
    ylabel: str = "estimated policy value",
) -> Path:
    """Estimators on the x axis, one marker with an interval bar per policy, optional reference line."""
    target = _png_path(path)
    if isinstance(estimates, EstimateInterval) or not estimates:
        raise InvalidInput("estimates must be a non-empty sequence of EstimateInterval", field="estimates")
    if not all(isinstance(e, EstimateInterval) for e in estimates):
        raise InvalidInput("estimates must contain EstimateInterval records", field="estimates")
    keys = [(e.policy, e.estimator) for e in estimates]
    if len(set(keys)) != len(keys):
        raise InvalidInput("each (policy, estimator) pair may appear once", field="estimates")
    if reference is not None:
        check_scalar(reference, "reference")
    estimators = list(dict.fromkeys(e.estimator for e in estimates))
    policies = list(dict.fromkeys(e.policy for e in estimates))
    width = 0.8 / len(policies)

    figure = _figure(max(6.0, 1.2 * len(estimators) + 3), 4.5)
    axes = figure.add_subplot()
    for p, policy in enumerate(policies):
        mine = [e for e in estimates if e.policy == policy]
        x = np.array([estimators.index(e.estimator) for e in mine]) - 0.4 + width * (p + 0.5)
        value = np.array([e.value for e in mine])
        errors = np.array([[e.value - e.ci_low for e in mine], [e.ci_high - e.value for e in mine]])
        axes.errorbar(x, value, yerr=errors, fmt="o", capsize=4, label=policy)
    if reference is not None:
        axes.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_label)
    axes.set_xticks(range(len(estimators)), labels=estimators)
    axes.set_xlim(-0.6, len(estimators) - 0.4)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _save(figure, target)
