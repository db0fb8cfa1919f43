"""The README's segment-of-one figures are the ones in the committed bench_habits output.

The block between ``<!-- habits-numbers -->`` and ``<!-- /habits-numbers -->`` in README.md must be exactly
`render_block` of docs/bench_habits_report.json (what ``bench/bench_habits.py --json`` wrote): a figure edited
by hand, or an output replaced without the text, fails. To quote a new run, commit its JSON there and paste
``render_block``'s output.
"""
from __future__ import annotations

import json
from pathlib import Path

from tests.readme_blocks import readme_block

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "docs" / "bench_habits_report.json"
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
    text = (f"Mean over the seeds, individual world: {goals['individual_vs_oracle']['measured']:.2f}× the oracle "
            f"(goal {goals['individual_vs_oracle']['target']:g}×) and "
            f"{goals['individual_vs_per_segment_rules']['measured']:.2f}× per-segment rules (goal "
            f"{goals['individual_vs_per_segment_rules']['target']:g}×): above the segment table, short of both goals.")
    if "segment_world_no_loss" in goals:
        text += (f" Segment world: the features give {goals['segment_world_no_loss']['measured']:.2f}× the "
                 f"context-only policy (no loss).")
    machine = report["machine"]
    text += (f" ({report['mode']} mode, {report['wall_s'] / 60:.0f} min on {machine['cores']} cores, "
             f"{machine['date']}, load average {machine['load_average'][0]:.1f}: learning runs beside serving, so a "
             f"busy machine learns a little later.)")
    return "\n".join(lines) + "\n\n" + text


def _readme_block(text: str) -> str:
    return readme_block(text, BEGIN, END).strip()


def test_readme_habits_block_is_rendered_from_the_committed_report():
    report = json.loads(REPORT.read_text())
    assert report["script"] == "bench_habits"
    assert _readme_block((REPO / "README.md").read_text(encoding="utf-8")) == render_block(report).strip()


def test_the_report_is_on_held_out_seeds_only():
    from bench.bench_habits import TUNING_SEEDS

    report = json.loads(REPORT.read_text())
    seeds = {r["seed"] for r in _rows(report)}
    assert seeds and not seeds & set(TUNING_SEEDS) and 404 not in seeds  # 404: the e2e test's world, tuned on
