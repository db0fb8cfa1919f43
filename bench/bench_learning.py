"""Learning curves on two simulated worlds, every policy served through the real server.

    python bench/bench_learning.py [--quick | --tiny] [--json PATH] [--decisions N] [--customers N] [--seeds S,S]

Two worlds (fatigue and drift off, so every decision has the same yardsticks):

- the **segment world** (``habits="segment"``: preferences mostly follow the context a marketer sees), seed
  ``WORLD.seed`` = 23, 2,000 customers, 12,000 decisions per policy (about 6 per customer); the VW
  policy with its defaults (context only);
- the **individual-habit world** (``habits="individual"``: each customer's favourite category, format and
  slot drawn per customer, the segment only weakly informative), seeds ``INDIVIDUAL_REPORT_SEEDS``, 100
  customers, 60 decisions per customer on average; the VW policy with ``personal_features = true``.

For each world, seed and policy (the learned VW policy and the served baselines ``per_segment_greedy``,
``best_single_arm``, ``uniform``) a fresh ``offerbandit serve --port 0`` subprocess serves the world's
catalogue; ``offerbandit.demo.traffic.drive`` sends the same seeded request stream through DecideBatch and
each response through Reward, so each policy learns online exactly as in production. Every figure is the
mean TRUE response probability of the served arms (no sampling noise); the tables' figures are over the
LAST SIXTH of each run, next to, on the same requests, the oracle (each request's best arm), per-segment
rules picked in hindsight (``simulator.per_segment_rules_rewards``), mass marketing (the world's best single
arm) and uniform. Standard errors: over the report seeds where there are several (the individual world),
over the last sixth's customers where there is one seed (the segment world; each customer's mean counts
once). The curves are window means (the individual world's: mean over its seeds).

Tuning and reporting seeds: the VW defaults (``service/config.py``) were chosen in-process on the segment
simulator without the seeds being recorded; treat ``TUNING_SEEDS`` (0, the simulator's default; 7,
the demo's; 11, this bench's world until issue 16) as the worlds they were tuned on; this bench reports on
seed 23. The per-customer designs (the match features of policies/vw/features.py, then the posterior of
policies/personal.py, the default) were chosen on the individual-habit seeds ``INDIVIDUAL_TUNING_SEEDS``
(101 and 404) through the server, the posterior's defaults also on ``INDIVIDUAL_IN_PROCESS_TUNING_SEEDS``
(111 and 606) in process; this bench reports on others. Writes bench/out/learning_curves.png (and docs/learning_curves.png when it is under 200 KB,
except in --tiny runs).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, REPO, Report, parse_flags  # noqa: E402
from bench.learning_plot import plot_worlds  # noqa: E402
from bench.served_runs import WindowValues, last_sixth, seed_mean_se, serve_world, window_means  # noqa: E402
from bench.served_runs import window_values  # noqa: E402
from simulator import CustomerWorld, WorldConfig  # noqa: E402

POLICIES = ("vw", "per_segment_greedy", "best_single_arm", "uniform")
LABELS = {"vw": "learned (VW, served)", "per_segment_greedy": "per-segment greedy", "best_single_arm":
          "best single arm (learned)", "uniform": "uniform"}
WORLDS = ("segment", "individual")
#: the campaign lines of each world's learned policy (the baselines add ``policy = "<name>"``)
VW_EXTRA = {"segment": "", "individual": "personal_features = true"}
SEGMENT_DECISIONS = {"full": 12000, "quick": 3000, "tiny": 128}
INDIVIDUAL_CUSTOMERS = {"full": 100, "quick": 40, "tiny": 2}
DECISIONS_PER_CUSTOMER = 60
#: the segment worlds the VW defaults may have been tuned on (see the module docstring)
TUNING_SEEDS = (0, 7, 11)
WORLD = WorldConfig(seed=23, n_customers=2000, fatigue=False, drift=False)
#: the individual-habit worlds the per-customer designs were chosen on through the server (bench/tune_individual.py)
INDIVIDUAL_TUNING_SEEDS = (101, 404)
#: and the ones the posterior's defaults (policies/personal.py) were also tuned on in process
INDIVIDUAL_IN_PROCESS_TUNING_SEEDS = (111, 606)
INDIVIDUAL_REPORT_SEEDS = {"full": (202, 303, 505), "quick": (202, 303), "tiny": (202,)}
DOCS_PNG_LIMIT = 200 * 1024
#: the levels every policy is measured against, on the same requests
REFERENCES = {"oracle": lambda v: v.oracle, "per-segment rules in hindsight": lambda v: v.per_segment,
              "mass marketing: best single arm": lambda v: v.mass, "uniform": lambda v: v.uniform}


@dataclass(frozen=True)
class Run:
    """One served policy on one world: its curve and its window figures."""

    world: str
    seed: int
    policy: str
    customers: int
    decisions: int
    served_all: float
    served_last_quarter: float  # the window this bench reported until issue 16
    last: WindowValues
    curve: tuple[np.ndarray, np.ndarray]


def world_configs(world: str, args) -> list[WorldConfig]:
    if world == "segment":
        return [WORLD]
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else INDIVIDUAL_REPORT_SEEDS[args.mode]
    customers = args.customers or INDIVIDUAL_CUSTOMERS[args.mode]
    return [WorldConfig(seed=seed, n_customers=customers, fatigue=False, drift=False, habits="individual")
            for seed in seeds]


def serve_policy(world: str, config: WorldConfig, policy: str, n: int, workdir: Path, registry_wait_s: float,
                 *, vw_extra: str = "") -> Run:
    """``vw_extra``: campaign TOML lines added to the VW policy's (bench/tune_individual.py tries settings)."""
    extra = "\n".join(filter(None, (VW_EXTRA[world], vw_extra))) if policy == "vw" else f'policy = "{policy}"'
    steps = serve_world(config, extra, workdir / f"{world}-{config.seed}-{policy}", registry_wait_s,
                        "bench-learning-hash-key", n)
    served = np.array([s.expected_reward for s in steps])
    return Run(world, config.seed, policy, config.n_customers, n, float(served.mean()),
               float(served[n - n // 4:].mean()), window_values(last_sixth(steps)),
               window_means(served, 12 if n >= 1200 else 4))


def summary_rows(world: str, runs: list[Run]) -> list[list]:
    """Per policy: mean over seeds of the last sixth, its standard error, x oracle and x per-segment rules;
    then the references on the same requests (the learned policy's runs)."""
    by_policy = {p: [r for r in runs if r.policy == p] for p in POLICIES}
    several = len(by_policy["vw"]) > 1
    se_over = f"seeds ({len(by_policy['vw'])})" if several else f"customers (seed {by_policy['vw'][0].seed})"
    rows = []
    for policy, group in by_policy.items():
        mean, se = seed_mean_se([r.last.served for r in group])
        rows.append([world, LABELS[policy], float(np.mean([r.served_all for r in group])), mean,
                     se if several else group[0].last.customer_se, se_over,
                     float(np.mean([r.last.served / r.last.oracle for r in group])),
                     float(np.mean([r.last.served / r.last.per_segment for r in group]))])
    references = by_policy["vw"]
    for label, value in REFERENCES.items():
        mean, se = seed_mean_se([value(r.last) for r in references])
        rows.append([world, f"{label} (reference)", "", mean, se if several else 0.0, se_over if several else "",
                     float(np.mean([value(r.last) / r.last.oracle for r in references])),
                     float(np.mean([value(r.last) / r.last.per_segment for r in references]))])
    return rows


def seed_rows(runs: list[Run]) -> list[list]:
    return [[r.world, r.seed, r.customers, r.decisions, LABELS[r.policy], r.last.served, r.last.customer_se,
             r.last.oracle, r.last.per_segment, r.last.mass, r.last.served / r.last.oracle,
             r.last.served / r.last.per_segment] for r in runs]


def curve_table(world: str, runs: list[Run], per_customer: bool) -> tuple[str, list[str], list[list]]:
    """Window means per policy (mean over seeds); x in decisions, or decisions per customer."""
    curves = mean_curves(runs)
    x = curves["vw"][0]
    unit = "decisions per customer" if per_customer else "decisions"
    rows = [[float(x[i]) if per_customer else int(x[i]), *[float(curves[p][1][i]) for p in POLICIES]]
            for i in range(len(x))]
    seeds = sorted({r.seed for r in runs})
    return (f"Learning curves, {world} world (window means, mean over seeds {seeds})",
            [unit, *map(LABELS.get, POLICIES)], rows)


def mean_curves(runs: list[Run]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per policy: (window centres, mean of the window means over seeds); centres per customer in the
    individual world (its seeds share one size)."""
    out = {}
    for policy in POLICIES:
        group = [r for r in runs if r.policy == policy]
        scale = group[0].customers if group[0].world == "individual" else 1
        out[policy] = (group[0].curve[0] / scale, np.mean([r.curve[1] for r in group], axis=0))
    return out


def reference_levels(runs: list[Run]) -> dict[str, float]:
    """The last sixth's reference levels (mean over seeds), on the learned policy's requests."""
    learned = [r.last for r in runs if r.policy == "vw"]
    return {label: float(np.mean([value(v) for v in learned])) for label, value in REFERENCES.items()}


def plot_title(world: str, configs: list[WorldConfig]) -> str:
    seeds = ", ".join(str(c.seed) for c in configs)
    policy = "VW + per-customer features" if world == "individual" else "VW, context only"
    return (f"{world} world, seed{'s' if len(configs) > 1 else ''} {seeds} ({configs[0].n_customers:,} customers, "
            f"{len(CustomerWorld(configs[0]).arm_set)} arms)\n"
            f"learned: {policy}; lines: last sixth on the same requests")


def ratio(runs: list[Run], policy: str, of) -> float:
    return float(np.mean([of(r) for r in runs if r.policy == policy]))


def add_goals(report: Report, runs: dict[str, list[Run]]) -> None:
    def baseline_ratio(world_runs: list[Run]) -> float:
        learned = ratio(world_runs, "vw", lambda r: r.last.served)
        return learned / max(ratio(world_runs, p, lambda r: r.last.served) for p in POLICIES if p != "vw")

    if "segment" in runs:
        report.goal("learned_vs_best_baseline", "segment world: learned policy's last-sixth mean true response / "
                    "the best served baseline's (uniform, best_single_arm, per_segment_greedy, each learning the "
                    "same way)", baseline_ratio(runs["segment"]), 1.0)
        report.goal("learned_vs_mass_marketing", "segment world: learned policy's last-sixth mean true response / "
                    "the world's best single arm on the same requests",
                    ratio(runs["segment"], "vw", lambda r: r.last.served / r.last.mass), 1.0)
    if "individual" in runs:
        individual = runs["individual"]
        report.goal("individual_learned_vs_best_baseline", "individual-habit world: learned policy (per-customer "
                    "features) / the best served baseline, last sixth, mean over the report seeds",
                    baseline_ratio(individual), 1.0)
        report.goal("individual_learned_vs_oracle", "individual-habit world: learned policy / oracle, last sixth, "
                    "mean over the report seeds", ratio(individual, "vw", lambda r: r.last.served / r.last.oracle),
                    0.6)
        report.goal("individual_learned_vs_per_segment_rules", "individual-habit world: learned policy / "
                    "per-segment rules in hindsight on the same requests, last sixth, mean over the report seeds",
                    ratio(individual, "vw", lambda r: r.last.served / r.last.per_segment), 1.5)


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0],
                       [("--decisions", {"type": int, "default": None, "help": "segment world: decisions per policy"}),
                        ("--customers", {"type": int, "default": None, "help": "individual world: customers"}),
                        ("--seeds", {"default": "", "help": "individual world: comma-separated report seeds"}),
                        ("--worlds", {"default": ",".join(WORLDS), "help": "comma-separated: segment,individual"}),
                        ("--plot", {"type": Path, "default": OUT_DIR / "learning_curves.png",
                                    "help": "where the PNG goes (copied to docs/ unless --tiny)"})])
    report = Report("bench_learning", args.mode)
    worlds = tuple(w for w in args.worlds.split(",") if w)
    configs = {world: world_configs(world, args) for world in worlds}
    assert WORLD.seed not in TUNING_SEEDS, "report on a world the defaults were not tuned on"
    assert not {c.seed for c in configs.get("individual", [])} & set(INDIVIDUAL_TUNING_SEEDS), \
        "report on individual worlds the feature design was not chosen on"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-learning-", dir=OUT_DIR))
    runs: dict[str, list[Run]] = {w: [] for w in worlds}
    try:
        for world in worlds:
            for config in configs[world]:
                n = (args.decisions or SEGMENT_DECISIONS[args.mode] if world == "segment"
                     else config.n_customers * DECISIONS_PER_CUSTOMER)
                for policy in POLICIES:
                    run = serve_policy(world, config, policy, n, workdir, args.registry_wait_s)
                    runs[world].append(run)
                    print(f"{world} seed {config.seed} {policy}: last sixth {run.last.served:.4f} "
                          f"(oracle {run.last.oracle:.4f}, per-segment rules {run.last.per_segment:.4f}, "
                          f"mass {run.last.mass:.4f})", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.table("Last sixth of each run: mean true response probability per decision through the server "
                 "(learned policy: VW, with per-customer features in the individual world); mean over seeds, "
                 "standard error over the seeds or, with one seed, over the customers",
                 ["world", "policy", "all decisions", "last sixth", "+- stderr", "stderr over", "x oracle",
                  "x per-segment rules"], [row for world in worlds for row in summary_rows(world, runs[world])])
    report.table("Per world and seed (last sixth; stderr over the customers)",
                 ["world", "seed", "customers", "decisions", "policy", "last sixth", "+- stderr", "oracle",
                  "per-segment rules", "mass marketing", "x oracle", "x per-segment rules"],
                 [row for world in worlds for row in seed_rows(runs[world])])
    for world in worlds:
        report.table(*curve_table(world, runs[world], per_customer=world == "individual"))
    add_goals(report, runs)
    for world in worlds:
        seeds = sorted({r.seed for r in runs[world]})
        tuned = TUNING_SEEDS if world == "segment" else INDIVIDUAL_TUNING_SEEDS + INDIVIDUAL_IN_PROCESS_TUNING_SEEDS
        report.note(f"{world} world: learned policy at "
                    f"{ratio(runs[world], 'vw', lambda r: r.last.served / r.last.oracle):.1%} of the oracle and "
                    f"{ratio(runs[world], 'vw', lambda r: r.last.served / r.last.per_segment):.2f}x per-segment "
                    f"rules in hindsight over the last sixth; report seeds {seeds}, tuning seeds {list(tuned)} "
                    "not reported")
    if "segment" in runs:
        report.note("segment world, learned policy, last quarter (the window this bench reported until issue 16): "
                    f"{ratio(runs['segment'], 'vw', lambda r: r.served_last_quarter):.4f}")
    png = args.plot
    plot_worlds({w: mean_curves(runs[w]) for w in worlds}, {w: reference_levels(runs[w]) for w in worlds},
                {w: plot_title(w, configs[w]) for w in worlds},
                {w: "decisions per customer" if w == "individual" else "decisions served" for w in worlds}, LABELS, png)
    print(f"plot: {png} ({png.stat().st_size / 1024:.0f} KB)")
    if args.mode != "tiny" and png.stat().st_size < DOCS_PNG_LIMIT:
        docs = REPO / "docs" / "learning_curves.png"
        shutil.copyfile(png, docs)
        print(f"copied to {docs}")
    report.write(args.json)


if __name__ == "__main__":
    main()
