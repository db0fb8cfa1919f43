"""Segment of one: the served VW policy with and without per-customer features, on today's segment world and
on the individual-habit world, against the oracle, mass marketing and per-segment rules in hindsight.

    python bench/bench_habits.py [--quick | --tiny] [--json PATH] [--seeds 202,303] [--customers N]

Every policy is served by a fresh ``offerbandit serve --port 0`` subprocess (``policy = "vw"`` with
``personal_features = false`` / ``true``, and the served ``per_segment_greedy`` baseline); the same seeded
request stream goes through DecideBatch and each response through Reward
(``offerbandit.demo.traffic.drive``). Each run lasts 60 decisions per customer on average; the figures
are the mean TRUE response probability of the served arm over the LAST SIXTH of the run, next to, on the
same requests: the oracle (each customer's best arm), mass marketing (the best single arm of the world's
reference sample) and per-segment rules in hindsight (the best arm of each segment on those requests).
Fatigue and drift are off. Seeds: ``TUNING_SEEDS`` (and 404) were used to choose the per-customer designs
(first VW's match features, see policies/vw/features.py for what lost; then the per-customer posterior over
VW's population model, policies/personal.py, the default, also tuned in process on 111 and 606); the
figures reported come from ``--seeds`` (default ``REPORT_SEEDS``), never tuned on.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, Report, parse_flags  # noqa: E402
from bench.served_runs import WindowValues, last_sixth, serve_world, window_values  # noqa: E402
from simulator import WorldConfig  # noqa: E402

TUNING_SEEDS = (101,)
REPORT_SEEDS = (202, 303)
WORLDS = ("segment", "individual")
POLICIES = {"vw (context only)": "", "vw + per-customer features": "personal_features = true",
            "per-segment greedy (served)": 'policy = "per_segment_greedy"'}
DECISIONS_PER_CUSTOMER = 60
CUSTOMERS = {"full": 100, "quick": 60, "tiny": 2}


def world_config(seed: int, habits: str, customers: int) -> WorldConfig:
    return WorldConfig(seed=seed, n_customers=customers, fatigue=False, drift=False, habits=habits)


def run(config: WorldConfig, extra: str, workdir: Path, registry_wait_s: float) -> WindowValues:
    steps = serve_world(config, extra, workdir, registry_wait_s, "bench-habits-hash-key-01",
                        config.n_customers * DECISIONS_PER_CUSTOMER)
    return window_values(last_sixth(steps))


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0],
                       [("--seeds", {"default": ",".join(map(str, REPORT_SEEDS)),
                                     "help": "comma-separated world seeds to report on"}),
                        ("--customers", {"type": int, "default": None, "help": "customers per world"}),
                        ("--worlds", {"default": ",".join(WORLDS), "help": "comma-separated: segment,individual"}),
                        ("--no-greedy", {"action": "store_true", "help": "skip the served per-segment greedy"})])
    seeds = tuple(int(s) for s in args.seeds.split(","))[:1 if args.mode == "tiny" else None]
    worlds = tuple(w for w in args.worlds.split(",") if w)
    skip_greedy = args.no_greedy or args.mode == "tiny"  # --tiny only proves the script works: 4 servers
    policies = {k: v for k, v in POLICIES.items() if not (skip_greedy and "greedy" in k)}
    customers = args.customers or CUSTOMERS[args.mode]
    report = Report("bench_habits", args.mode)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-habits-", dir=OUT_DIR))
    rows, results = [], {}
    try:
        for habits in worlds:
            for seed in seeds:
                config = world_config(seed, habits, customers)
                for label, extra in policies.items():
                    values = run(config, extra, workdir / f"{habits}-{seed}-{len(results)}", args.registry_wait_s)
                    results[(habits, seed, label)] = values
                    rows.append([habits, seed, label, values.served, values.served_se, values.oracle, values.mass,
                                 values.per_segment, values.served / values.oracle,
                                 values.served / values.per_segment])
                    print(f"{habits} seed {seed} {label}: {values.served:.4f} +- {values.served_se:.4f} "
                          f"(oracle {values.oracle:.4f}, mass {values.mass:.4f}, per-segment {values.per_segment:.4f})",
                          flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.table(f"Last sixth of {DECISIONS_PER_CUSTOMER} decisions per customer ({customers} customers), "
                 f"mean true response probability, served through the server; report seeds {list(seeds)} "
                 f"(tuning seeds {list(TUNING_SEEDS)} not reported)",
                 ["world", "seed", "policy", "served", "+- stderr", "oracle", "mass marketing",
                  "per-segment rules (hindsight)", "x oracle", "x per-segment rules"], rows)
    personal = "vw + per-customer features"
    for habits in worlds:
        mean = lambda f: float(np.mean([f(results[(habits, s, personal)]) for s in seeds]))  # noqa: E731
        report.note(f"{habits} world, per-customer features: {mean(lambda v: v.served / v.oracle):.3f}x oracle, "
                    f"{mean(lambda v: v.served / v.per_segment):.3f}x per-segment rules, "
                    f"{mean(lambda v: v.served / v.mass):.3f}x mass marketing (mean over seeds {list(seeds)})")
    ratio = lambda habits, f: float(np.mean([f(results[(habits, s, personal)]) for s in seeds]))  # noqa: E731
    if "individual" in worlds:
        report.goal("individual_vs_oracle", "individual world, vw + per-customer features, last sixth / oracle "
                    "(mean over the report seeds)", ratio("individual", lambda v: v.served / v.oracle), 0.6)
        report.goal("individual_vs_per_segment_rules", "individual world, vw + per-customer features, last sixth / "
                    "per-segment rules in hindsight", ratio("individual", lambda v: v.served / v.per_segment), 1.5)
    if "segment" in worlds:
        report.goal("segment_world_no_loss", "segment world, vw + per-customer features / vw context only, last "
                    "sixth", float(np.mean([results[("segment", s, personal)].served
                                            / results[("segment", s, "vw (context only)")].served for s in seeds])),
                    0.95)
    for note in report.notes:
        print(note)
    report.write(args.json)


if __name__ == "__main__":
    main()
