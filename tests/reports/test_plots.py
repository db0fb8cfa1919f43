"""Product-owner charts: the numbers behind them, valid PNG files, and refused input."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from offerbandit.reports.plots import (
    EstimateInterval,
    RewardSeries,
    binned_mean,
    plot_estimates,
    plot_format_slot_heatmap,
    plot_reward_over_time,
    reward_grid,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png_with_content(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 10  # not a blank canvas


def test_binned_mean_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(7)
    times = rng.uniform(0, 100, size=500)
    rewards = rng.binomial(1, 0.3, size=500).astype(float)
    edges = np.array([0.0, 25.0, 50.0, 75.0, 100.0])
    mean, half_width, counts = binned_mean(times, rewards, edges)
    for k in range(4):
        inside = (times >= edges[k]) & (times < edges[k + 1])
        assert counts[k] == inside.sum()
        assert mean[k] == pytest.approx(rewards[inside].mean())
        assert half_width[k] == pytest.approx(1.959963984540054 * rewards[inside].std(ddof=1) / np.sqrt(inside.sum()))
    empty_mean, empty_width, empty_counts = binned_mean([1.0, 1.5], [1.0, 0.0], [0.0, 2.0, 4.0])
    assert list(empty_counts) == [2, 0] and np.isnan(empty_mean[1]) and np.isnan(empty_width[1])


def test_reward_grid_aggregates_cells_and_follows_the_given_order() -> None:
    formats = ["sms", "email", "sms", "sms", "push"]
    slots = ["morning", "evening", "morning", "evening", "morning"]
    rewards = [1.0, 0.0, 0.0, 1.0, 0.5]
    grid = reward_grid(formats, slots, rewards, format_order=["push", "sms", "email", "in_app"])
    assert grid.formats == ("push", "sms", "email", "in_app") and grid.time_slots == ("evening", "morning")
    assert grid.counts.tolist() == [[0, 1], [1, 2], [1, 0], [0, 0]]
    assert grid.mean[1].tolist() == [1.0, 0.5] and grid.mean[0, 1] == 0.5
    assert np.isnan(grid.mean[3]).all()


def test_plots_write_valid_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    start = 1_750_000_000.0
    series = [
        RewardSeries("v1", start + np.sort(rng.uniform(0, 86_400, 300)), rng.binomial(1, 0.1, 300)),
        RewardSeries("v2", start + 43_200 + np.sort(rng.uniform(0, 86_400, 300)), rng.binomial(1, 0.2, 300)),
    ]
    over_time = plot_reward_over_time(series, tmp_path / "charts" / "reward.png", bins=12)
    formats = rng.choice(["sms", "email", "push"], 400).tolist()
    slots = rng.choice(["morning", "lunch", "evening"], 400).tolist()
    heatmap = plot_format_slot_heatmap(
        reward_grid(formats, slots, rng.binomial(1, 0.2, 400), slot_order=["morning", "lunch", "evening", "night"]),
        tmp_path / "heatmap.png",
    )
    estimates = plot_estimates(
        [
            EstimateInterval(policy, estimator, value, value - 0.01, value + 0.02)
            for policy, base in (("champion v3", 0.12), ("challenger v4", 0.14))
            for estimator, value in (("ipw", base), ("snipw", base + 0.002), ("dr", base - 0.003))
        ],
        tmp_path / "estimates.png",
        reference=0.11,
    )
    for path in (over_time, heatmap, estimates):
        assert path.parent.is_dir()
        assert_png_with_content(path)


def test_module_import_is_cheap_and_plotting_never_touches_pyplot(tmp_path: Path) -> None:
    code = (
        "import sys, offerbandit.reports.plots\n"
        "print('matplotlib' in sys.modules)\n"
        "offerbandit.reports.plots.plot_estimates([offerbandit.reports.plots.EstimateInterval('p', 'ipw', 1, 0, 2)], sys.argv[1])\n"
        "print('matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    )
    target = tmp_path / "one.png"
    result = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True", "False"]
    assert_png_with_content(target)


GOOD_SERIES = RewardSeries("v1", [1.0, 2.0], [0.0, 1.0])


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: RewardSeries("", [1.0], [1.0]), "label"),
        (lambda: RewardSeries("v", [], []), "times"),
        (lambda: RewardSeries("v", [1.0, float("nan")], [1.0, 1.0]), "times"),
        (lambda: RewardSeries("v", [1.0, 2.0], [1.0, float("inf")]), "rewards"),
        (lambda: RewardSeries("v", [1.0, 2.0], [1.0]), "rewards"),
        (lambda: RewardSeries("v", [[1.0]], [[1.0]]), "times"),
        (lambda: RewardSeries("v", ["a"], [1.0]), "times"),
        (lambda: EstimateInterval("p", "ipw", 0.5, 0.6, 0.7), "ci_low"),
        (lambda: EstimateInterval("p", "ipw", 0.5, 0.4, float("nan")), "ci_high"),
        (lambda: EstimateInterval("p", "", 0.5, 0.4, 0.6), "estimator"),
        (lambda: EstimateInterval("p", "ipw", True, 0.4, 0.6), "value"),
        (lambda: plot_reward_over_time([], "x.png"), "series"),
        (lambda: plot_reward_over_time(GOOD_SERIES, "x.png"), "series"),
        (lambda: plot_reward_over_time([GOOD_SERIES, GOOD_SERIES], "x.png"), "series"),
        (lambda: plot_reward_over_time([GOOD_SERIES], "x.png", bins=0), "bins"),
        (lambda: plot_reward_over_time([GOOD_SERIES], "x.jpg"), "path"),
        (lambda: reward_grid(["sms"], ["morning", "evening"], [1.0]), "time_slots"),
        (lambda: reward_grid(["sms", "email"], ["morning"], [1.0]), "formats"),
        (lambda: reward_grid(["sms"], ["morning"], [float("nan")]), "rewards"),
        (lambda: reward_grid(["sms"], [""], [1.0]), "time_slots"),
        (lambda: reward_grid(["sms", "push"], ["a", "a"], [1.0, 0.0], format_order=["sms"]), "format_order"),
        (lambda: reward_grid(["sms"], ["a"], [1.0], slot_order=["a", "a"]), "slot_order"),
        (lambda: reward_grid("sms", "a", [1.0]), "formats"),
        (lambda: plot_format_slot_heatmap({"sms": 1.0}, "x.png"), "grid"),
        (lambda: plot_estimates([], "x.png"), "estimates"),
        (lambda: plot_estimates([("p", "ipw", 1, 0, 2)], "x.png"), "estimates"),
        (
            lambda: plot_estimates([EstimateInterval("p", "ipw", 1, 0, 2)] * 2, "x.png"),
            "estimates",
        ),
        (lambda: plot_estimates([EstimateInterval("p", "ipw", 1, 0, 2)], "x.png", reference=float("inf")), "reference"),
        (lambda: binned_mean([1.0], [1.0], [2.0, 1.0]), "edges"),
        (lambda: binned_mean([1.0, 2.0], [1.0], [0.0, 1.0]), "rewards"),
    ],
)
def test_bad_input_is_refused_naming_the_field(make, field: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        make()
    assert caught.value.field == field
    assert list(tmp_path.iterdir()) == []  # nothing was written
