"""The README's speed table is the one `make bench` measured: bench/results.json, written by bench/run_all.py.

The block between ``<!-- speed-numbers -->`` and ``<!-- /speed-numbers -->`` in README.md must be exactly
`render_table` of bench/results.json (committed with bench/README.md by the same run): a figure typed by hand, or
a run committed without the text, fails. To quote a new run: ``make bench``, then paste ``render_table``'s output
(``python -m tests.bench.test_readme_speed_numbers`` prints it).
"""
from __future__ import annotations

import json

from tests.readme_blocks import REPO, RESULTS, goal_verdict, readme_block
BEGIN, END = "<!-- speed-numbers -->", "<!-- /speed-numbers -->"
SCALING_BEGIN, SCALING_END = "<!-- scaling-numbers -->", "<!-- /scaling-numbers -->"


def _table(payload: dict, title: str) -> list[dict]:
    """The rows (column -> value) of the payload's table whose title starts with ``title``."""
    (table,) = [t for t in payload["tables"] if t["title"].startswith(title)]
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def _row(rows: list[dict], label: str) -> dict:
    (row,) = [r for r in rows if str(next(iter(r.values()))).startswith(label)]
    return row


def _goal(payload: dict, name: str) -> dict:
    (goal,) = [g for g in payload["goals"] if g["name"] == name]
    return goal



def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _per_s(value: float) -> str:
    return f"{value:,.0f}"


def render_table(results: dict) -> str:
    service, latency = results["results"]["bench_service"], results["results"]["bench_latency"]
    learner, sizes = results["results"]["bench_learner"], results["results"]["bench_log_size"]
    served = _table(service, "(a)(b) Served decisions")
    batch = max((r for r in served if r["call"].startswith("DecideBatch of 64, ") and "ranking_limit" not in r["call"]),
                key=lambda r: r["decisions/s"])
    in_process = _table(service, "(d) In-process VW pmf")
    naive, cached = _row(in_process, "naive"), _row(in_process, "pmf_batch")
    vs_naive, vs_cached = _goal(service, "served_vs_naive_vw_text"), _goal(service, "served_vs_in_process_vw")
    rows = [("`DecideBatch` of 64, through gRPC",
             f"**{_per_s(batch['decisions/s'])} decisions/s** ({batch['call'].split(', ', 1)[1]}); an in-process loop "
             f"building VW text lines and calling `predict` does {_per_s(naive['decisions/s'])}/s "
             f"({vs_naive['measured']:.2f}×, goal ≥ {vs_naive['target']:g}×: {goal_verdict(vs_naive)}), the cached "
             f"in-process `pmf_batch` {_per_s(cached['decisions/s'])}/s ({vs_cached['measured']:.2f}×, goal ≥ "
             f"{vs_cached['target']:g}×: {goal_verdict(vs_cached)})")]
    fresh = _table(latency, "(a) Decide latency")
    one, eight = _row(fresh, "Decide, 1 in flight, defaults"), _row(fresh, "Decide, 8 in flight, defaults")
    one_off = _row(fresh, "Decide, 1 in flight, registry link off")
    p99_one, p99_eight = (_goal(latency, "decide_p99_within_10ms_1_in_flight"),
                          _goal(latency, "decide_p99_within_25ms_8_in_flight"))
    rows.append(("`Decide`, 1 call in flight",
                 f"p50 {_ms(one['p50 ms'])}, **p99 {_ms(one['p99 ms'])}** with the MLflow registry link on (the "
                 f"default; goal ≤ 10 ms: {goal_verdict(p99_one)}); p99 {_ms(one_off['p99 ms'])} with it off"))
    rows.append(("`Decide`, 8 calls in flight",
                 f"{_per_s(eight['calls/s'])} decisions/s, p99 {_ms(eight['p99 ms'])} (goal ≤ 25 ms: "
                 f"{goal_verdict(p99_eight)})"))
    stalls = _table(latency, "(b) Decide latency (1 in flight) while")
    stall = _goal(latency, "stall_within_10ms")
    worst = max(stalls, key=lambda r: r["max - overall median ms"])
    rows.append(("slowest `Decide` while learning every decision, checkpointing every 2 s and swapping a model in",
                 f"{_ms(worst['max - overall median ms'])} over the median (under: {worst['while']}; goal: no stall "
                 f"over 10 ms, {goal_verdict(stall)}); p99 "
                 + ", ".join(f"{r['while']} {_ms(r['p99 ms'])}" for r in stalls)))
    (floor,) = _table(latency, "Durable commit floor")
    rows.append(("a durable commit on the bench's disk (WAL, `synchronous=FULL`)",
                 f"p50 {floor['p50 ms']:.2f} ms, p99 {floor['p99 ms']:.2f} ms"))
    learning = _table(learner, "Online learning")
    policy, before = _row(learning, "VWPolicy.learn, one ArmSet"), _row(learning, "before")
    learn_goal = _goal(learner, "learner_events_per_s_128_arms")
    rows.append(("online learning at 128 arms (`VWPolicy.learn`)",
                 f"{_per_s(policy['events/s'])} events/s (goal {learn_goal['target']:,.0f}: "
                 f"{goal_verdict(learn_goal)}); "
                 f"the old way {_per_s(before['events/s'])}/s in the same run, VW's own `learn_multi` "
                 f"{_per_s(_row(learning, 'VW learn_multi')['events/s'])}/s"))
    per_decision = _table(sizes, "Bytes on disk per logged")
    sqlite, postgres = _row(per_decision, "sqlite, default settings ("), _row(per_decision, "postgres, default")
    small_pages = _row(per_decision, "sqlite, default settings, the log file created")
    big = _row(_table(sizes, f"{2000:,}-offer offer sets"), "one distinct offer set")
    size_goal = _goal(sizes, "log_bytes_per_decision")
    rows.append((f"bytes on disk per logged 128-arm decision, default settings ({sqlite['decisions']:,} decisions)",
                 f"SQLite **{sqlite['compact B/decision']:,}** (the same decisions the old way: "
                 f"{sqlite['old format B/decision']:,}; with SQLite's 4 KB pages "
                 f"{small_pages['compact B/decision']:,}; "
                 f"goal ≤ 1,024: {goal_verdict(size_goal)}); PostgreSQL {postgres['compact B/decision']:,} "
                 f"({postgres['old format B/decision']:,} the old way); a 2,000-offer offer set is stored once "
                 f"({big['bytes'] / 1000:,.0f} kB), not per decision"))
    lines = ["| what (128 joint arms: 8 offers × 4 formats × 4 slots, full ranking, every decision durably logged "
             "first) | measured |", "| --- | --- |"] + [f"| {what} | {measured} |" for what, measured in rows]
    when = service["machine"]["date"][:10]
    return (f"From `make bench` of {when} ({results['total_s'] / 60:.0f} min; load average "
            f"{results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after; 2 cores shared by "
            "client and server):\n\n" + "\n".join(lines))


def render_scaling_table(results: dict) -> str:
    shared, pg = results["results"]["bench_shared_log"], results["results"]["bench_pg_log"]
    replicas = _table(shared, "(a) Replicas on one PostgreSQL log")
    one, two = _row(replicas, "1 replica"), _row(replicas, "2 replica")
    ratio = _goal(shared, "two_replicas_vs_one")
    writers = _table(pg, "PostgreSQL decision-log rows/s")
    raw, copy = _row(writers, "raw psycopg executemany"), _row(writers, "raw binary COPY")
    single = _row(writers, "DecisionLog.insert_decisions, 8 threads")
    batched = _row(writers, "DecisionLog.insert_decisions, 4 threads")
    pg_goal = _goal(pg, "pg_log_vs_raw_executemany")
    (learned,) = _table(shared, "(b) The learner")
    probes = _table(shared, "(c) Freshness")
    fresh = _goal(shared, "freshness_within_30s")
    served = [p["served after s"] for p in probes]
    rows = [("decisions/s, DecideBatch of 16 × 128 arms, same client (4 channels × 4 calls in flight)",
             f"one replica {one['decisions/s']:,}; two replica processes on one log {two['decisions/s']:,} "
             f"(**×{ratio['measured']:.1f}**, goal ≥ {ratio['target']:g}: {goal_verdict(ratio)})"),
            ("PostgreSQL log rows/s (compact 128-arm rows), `synchronous_commit = on`",
             f"one-row calls from 8 threads {_per_s(single['rows/s'])} = **{single['x raw executemany']:.2f}×** raw "
             f"psycopg `executemany` ({_per_s(raw['rows/s'])}; goal ≥ {pg_goal['target']:g}: "
             f"{goal_verdict(pg_goal)}); "
             f"16-row calls {_per_s(batched['rows/s'])} = "
             f"{batched['x raw executemany']:.2f}×; raw binary `COPY` {_per_s(copy['rows/s'])}"),
            ("the learner (`offerbandit learn`), 128-arm events",
             f"{_per_s(learned['events/s'])} events/s ({learned['final events']:,} final events, from its ready line)"),
            ("freshness, default settings",
             f"**{min(served):.1f}–{max(served):.1f} s** from a `Reward` to a replica serving a checkpoint that "
             f"includes it ({len(probes)} probes; goal ≤ 30 s: {goal_verdict(fresh)})")]
    when = shared["machine"]["date"][:10]
    return (f"From `make bench` of {when} (`bench/bench_shared_log.py` and `bench/bench_pg_log.py`; client, servers "
            "and PostgreSQL on the same 2 cores):\n\n| what | measured |\n| --- | --- |\n"
            + "\n".join(f"| {what} | {measured} |" for what, measured in rows))


def test_readme_speed_table_is_rendered_from_the_committed_bench_run():
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_block(text, BEGIN, END).strip() == render_table(results).strip()
    assert readme_block(text, SCALING_BEGIN, SCALING_END).strip() == render_scaling_table(results).strip()


def test_the_committed_run_is_the_one_bench_readme_shows():
    """bench/README.md and bench/results.json come from one run: every goal's figure agrees."""
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    text = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    for name, payload in results["results"].items():
        for goal in payload["goals"]:
            assert f"| `{goal['name']}` ({name}) | {goal['definition']} | {goal['measured']:.3f} |" in text


if __name__ == "__main__":
    committed = json.loads(RESULTS.read_text(encoding="utf-8"))
    print(BEGIN, render_table(committed), END, "", SCALING_BEGIN, render_scaling_table(committed), SCALING_END,
          sep="\n")
