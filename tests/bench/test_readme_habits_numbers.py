"""The README's segment-of-one figures are the ones bench_habits wrote in the committed `make bench` run.

The block between ``<!-- habits-numbers -->`` and ``<!-- /habits-numbers -->`` in README.md must be exactly
`render_block` of bench/results.json's ``bench_habits`` (what ``bench/bench_habits.py --json`` wrote inside
``bench/run_all.py``): a figure edited by hand, or a run committed without the text, fails. To quote a new run,
``make bench`` and paste ``render_block``'s output (``python -m tests.bench.test_readme_habits_numbers``).
"""
from __future__ import annotations

from tests.readme_blocks import committed_bench_report, goal_verdict, readme_block, readme_text

BEGIN, END = "<!-- habits-numbers -->", "<!-- /habits-numbers -->"
CONTEXT_ONLY, PERSONAL = "vw (context only)", "vw + per-customer features"


def _rows(report: dict) -> list[dict]:
    table = report["tables"][0]
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def render_block(report: dict) -> str:
    rows = _rows(report)
    by = {(r["world"], r["seed"], r["policy"]): r for r in rows}
    lines = ["| world | seed | context only | with per-customer features | × oracle | × per-segment rules | "
             "× mass marketing |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["policy"] != PERSONAL:
            continue
        base = by[(r["world"], r["seed"], CONTEXT_ONLY)]
        lines.append(f"| {r['world']} | {r['seed']} | {base['served']:.3f} | {r['served']:.3f} ± {r['+- stderr']:.3f} "
                     f"| {r['x oracle']:.2f} | {r['x per-segment rules']:.2f} | {r['served'] / r['mass marketing']:.2f} |")
    goals = {g["name"]: g for g in report["goals"]}
    oracle, rules = goals["individual_vs_oracle"], goals["individual_vs_per_segment_rules"]
    text = (f"Mean over the seeds, individual world: {oracle['measured']:.2f}× the oracle "
            f"(goal {oracle['target']:g}×: "
            f"{goal_verdict(oracle)}) and {rules['measured']:.2f}× per-segment rules (goal {rules['target']:g}×: "
            f"{goal_verdict(rules)}).")
    if "segment_world_no_loss" in goals:
        loss = goals["segment_world_no_loss"]
        text += (f" Segment world: the features give {loss['measured']:.2f}× the context-only policy (goal ≥ "
                 f"{loss['target']:g}×: {'no loss' if loss['met'] else 'a loss'}; they stay off by default there).")
    machine = report["machine"]
    text += (f" ({report['mode']} mode, {report['wall_s'] / 60:.0f} min on {machine['cores']} cores, "
             f"{machine['date']}, load average {machine['load_average'][0]:.1f}: learning runs beside serving, so a "
             f"busy machine learns a little later.)")
    return "\n".join(lines) + "\n\n" + text



def _report() -> dict:
    return committed_bench_report("bench_habits")


def _readme_block(text: str) -> str:
    return readme_block(text, BEGIN, END).strip()


def test_readme_habits_block_is_rendered_from_the_committed_report():
    report = _report()
    assert report["script"] == "bench_habits"
    assert _readme_block(readme_text()) == render_block(report).strip()


def test_the_report_is_on_held_out_seeds_only():
    from bench.bench_habits import TUNING_SEEDS

    report = _report()
    seeds = {r["seed"] for r in _rows(report)}
    assert seeds and not seeds & set(TUNING_SEEDS) and 404 not in seeds  # 404: the e2e test's world, tuned on


if __name__ == "__main__":
    print(render_block(_report()))
