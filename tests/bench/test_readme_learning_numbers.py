"""The README's learning-curve figures are the ones bench_learning wrote in the committed `make bench` run.

The block between ``<!-- learning-numbers -->`` and ``<!-- /learning-numbers -->`` in README.md must be exactly
`render_block` of bench/results.json's ``bench_learning`` (what ``bench/bench_learning.py --json`` wrote inside
``bench/run_all.py``): a figure edited by hand, or a run committed without the text, fails. To quote a new run,
``make bench`` and paste ``render_block``'s output (``python -m tests.bench.test_readme_learning_numbers``).
"""
from __future__ import annotations

from tests.readme_blocks import committed_bench_report, goal_verdict, readme_block, readme_text

BEGIN, END = "<!-- learning-numbers -->", "<!-- /learning-numbers -->"


def _summary(report: dict) -> list[dict]:
    table = report["tables"][0]
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def _seeds(report: dict) -> dict[str, list[int]]:
    table = next(t for t in report["tables"] if t["title"].startswith("Per world and seed"))
    seeds: dict[str, list[int]] = {}
    for row in (dict(zip(table["columns"], r)) for r in table["rows"]):
        if row["seed"] not in seeds.setdefault(row["world"], []):
            seeds[row["world"]].append(row["seed"])
    return seeds


def render_block(report: dict) -> str:
    lines = ["| world | policy (last sixth of the run) | mean true response | ± stderr | × oracle | "
             "× per-segment rules |", "|---|---|---|---|---|---|"]
    for r in _summary(report):
        stderr = f"{r['+- stderr']:.3f}" if r["+- stderr"] else ""
        lines.append(f"| {r['world']} | {r['policy']} | {r['last sixth']:.3f} | {stderr} | {r['x oracle']:.2f} | "
                     f"{r['x per-segment rules']:.2f} |")
    seeds = _seeds(report)
    goals = "\n".join(f"- {g['definition']}: **{g['measured']:.2f}** (goal ≥ {g['target']:g}: {goal_verdict(g)})"
                      for g in report["goals"])
    machine = report["machine"]
    run = ("Seeds: " + "; ".join(f"{world} world {', '.join(str(s) for s in found)}" for world, found in seeds.items())
           + f". ({report['mode']} mode, {report['wall_s'] / 60:.0f} min on {machine['cores']} cores, "
           f"{machine['date']}, load average {machine['load_average'][0]:.1f}.)")
    return "\n".join(lines) + "\n\n" + goals + "\n\n" + run


def _report() -> dict:
    return committed_bench_report("bench_learning")


def test_readme_learning_block_is_rendered_from_the_committed_report():
    report = _report()
    assert report["script"] == "bench_learning"
    block = readme_block(readme_text(), BEGIN, END).strip()
    assert block == render_block(report).strip()


def test_the_report_holds_both_worlds_on_held_out_seeds():
    from bench.bench_learning import INDIVIDUAL_TUNING_SEEDS, TUNING_SEEDS

    seeds = _seeds(_report())
    assert set(seeds) == {"segment", "individual"}
    assert not set(seeds["segment"]) & set(TUNING_SEEDS)
    assert not set(seeds["individual"]) & set(INDIVIDUAL_TUNING_SEEDS)


if __name__ == "__main__":
    print(render_block(_report()))
