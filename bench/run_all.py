"""Run every benchmark, collect the figures and rewrite bench/README.md with them.

    python bench/run_all.py                 # full runs of everything (about 10 minutes on 2 cores)
    python bench/run_all.py --quick         # short runs of everything (about 3 minutes)
    python bench/run_all.py --others skip   # only the scripts that emit JSON
    python bench/run_all.py --reuse         # re-render the README from the JSON in bench/out

The service, learning and scaling scripts write JSON (``--json``) that becomes the README's tables
and the goal summary. The older scripts (policies, OPE, exploration) print text only: their output
goes into the README verbatim, in the mode chosen with ``--others`` (default: the run's own mode).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, REPO, format_cell, machine_info  # noqa: E402

JSON_SCRIPTS = ("bench_service", "bench_latency", "bench_learning", "bench_habits", "bench_learner", "bench_scaling",
                "bench_pg_log", "bench_shared_log", "bench_log_size")
TEXT_SCRIPTS = ("bench_policies", "bench_ope", "bench_exploration")
TITLES = {
    "bench_service": "Service: throughput, latency, log writer, in-process ratio, MLflow down",
    "bench_latency": "Decide latency: p99 in flight, and stalls from learning, checkpoints and model swaps",
    "bench_learning": "Learning curves on the simulator (served through the real server)",
    "bench_habits": "Segment of one: per-customer features on the segment and individual-habit worlds "
                    "(bench_habits.py)",
    "bench_scaling": "Scaling with joint arms and log size",
    "bench_pg_log": "The PostgreSQL log against raw psycopg (bench_pg_log.py)",
    "bench_shared_log": "Replicas, the learner and freshness on a shared PostgreSQL log (bench_shared_log.py)",
    "bench_log_size": "Bytes per logged decision: the compact log against the old format (bench_log_size.py)",
    "bench_learner": "Learning speed at 128 joint arms (bench_learner.py)",
    "bench_policies": "Policies in-process (bench_policies.py)",
    "bench_ope": "Offline evaluation vs OBP (bench_ope.py)",
    "bench_exploration": "Exploration outside history (bench_exploration.py)",
}


def run_script(name: str, flags: list[str], json_path: Path | None, timeout: float) -> tuple[int, str, float]:
    command = [sys.executable, str(REPO / "bench" / f"{name}.py"), *flags]
    if json_path is not None:
        command += ["--json", str(json_path)]
    print(f"== {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        code, output = done.returncode, done.stdout + (f"\n[stderr]\n{done.stderr}" if done.returncode else "")
    except subprocess.TimeoutExpired as exc:
        code, output = 124, f"{exc.stdout or ''}\n[timed out after {timeout:.0f} s]"
    elapsed = time.perf_counter() - start
    print(f"   exit {code} in {elapsed:.0f} s", flush=True)
    return code, output, elapsed


def markdown_table(columns: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return format_cell(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _date_range(results: dict[str, dict]) -> str:
    dates = sorted(payload["machine"]["date"] for payload in results.values())
    if not dates:
        return ""
    return dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"


def render(results: dict[str, dict], texts: dict[str, tuple[str, int, str, float]], load_before: list[float],
           load_after: list[float], args: argparse.Namespace, total_s: float) -> str:
    machine = machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    modes = ", ".join(f"{name}: {payload['mode']}" for name, payload in results.items())
    out = [
        "# Benchmarks",
        "",
        "This file is written by `python bench/run_all.py`; edit the scripts, not the figures. Every ratio",
        "below was measured inside one run of one script (numerator and denominator on the same machine,",
        "minutes apart at most).",
        "",
        f"- date: {_date_range(results) or machine['date']} (whole run: {total_s / 60:.1f} min; each section "
        "gives its own time and load)",
        f"- machine: {machine['cores']} cores ({machine['cpu']}), {machine['platform']}",
        f"- python {machine['python']}, SQLite {machine['sqlite']}; {versions}",
        f"- load average (1, 5, 15 min) before: {', '.join(map(str, load_before))}; after: "
        f"{', '.join(map(str, load_after))} (other work shared the machine: figures are a floor, not a ceiling)",
        f"- modes: {modes}" + (f"; other scripts: {args.others}" if texts else ""),
        "",
        "## Goals",
        "",
    ]
    goal_rows = []
    for name, payload in results.items():
        for goal in payload["goals"]:
            goal_rows.append([f"`{goal['name']}` ({name})", goal["definition"], f"{goal['measured']:.3f}",
                              f">= {goal['target']}", "met" if goal["met"] else "**not met**"])
    out.append(markdown_table(["goal", "definition", "measured", "target", "status"], goal_rows))
    for name, payload in results.items():
        out += ["", f"## {TITLES.get(name, name)}", "",
                f"`python bench/{name}.py{'' if payload['mode'] == 'full' else ' --' + payload['mode']}` "
                f"(finished {payload['machine']['date']}, {payload['wall_s']:.0f} s, load average at the end "
                f"{', '.join(map(str, payload['machine']['load_average']))})"]
        if name == "bench_learning" and (REPO / "docs" / "learning_curves.png").exists():
            out += ["", "![learning curves](../docs/learning_curves.png)"]
        for table in payload["tables"]:
            out += ["", f"**{table['title']}**", "", markdown_table(table["columns"], table["rows"])]
        if payload["notes"]:
            out += [""] + [f"- {note}" for note in payload["notes"]]
    for name, (mode, code, text, elapsed) in texts.items():
        out += ["", f"## {TITLES.get(name, name)}", "",
                f"`python bench/{name}.py{'' if mode == 'full' else ' --' + mode}` ({elapsed:.0f} s, exit {code}); "
                "its own printout:", "", "```", text.strip()[-12000:], "```"]
    out += ["", "## Reproduce", "",
            "```",
            "make bench                # creates .venv on first use, then runs bench/run_all.py",
            ".venv/bin/python bench/run_all.py            # full (about 10 min on 2 cores), rewrites this file",
            ".venv/bin/python bench/run_all.py --quick    # about 3 min",
            ".venv/bin/python bench/bench_scaling.py --with-1m   # the 1M-row log (about 3 min, 4.3 GB of disk)",
            ".venv/bin/python bench/bench_service.py --quick --json out.json   # one script",
            "```",
            "",
            "Each script prints its tables and `GOAL` lines and, with `--json PATH`, writes them as JSON",
            "(`script`, `mode`, `machine`, `goals`, `tables`, `notes`). Temporary logs and stores go under",
            "`bench/out/` (git-ignored) and are removed afterwards; the learning-curve plot stays in",
            "`bench/out/learning_curves.png` and is copied to `docs/learning_curves.png`.",
            ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs of everything")
    parser.add_argument("--tiny", action="store_true", help="seconds-long runs (proves the pipeline only)")
    parser.add_argument("--others", choices=("full", "quick", "skip"), default=None,
                        help="mode for the text-only scripts (default: the run's mode; skip with --tiny)")
    parser.add_argument("--only", default="", help="comma-separated script names (default: all)")
    parser.add_argument("--with-1m", action="store_true", help="bench_scaling: extend the log series to 1M rows")
    parser.add_argument("--readme", type=Path, default=REPO / "bench" / "README.md")
    parser.add_argument("--results", type=Path, default=None,
                        help="where the JSON scripts' figures of this run go (default: results.json beside --readme; "
                             "committed: the project's README quotes them, tests/bench/test_readme_speed_numbers.py "
                             "checks that)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the JSON files go")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per script")
    parser.add_argument("--reuse", action="store_true",
                        help="do not run the JSON scripts: render the README from the JSON already in --out")
    args = parser.parse_args()
    args.others = args.others or ("skip" if args.tiny else "quick" if args.quick else "full")
    mode_flag = ["--tiny"] if args.tiny else ["--quick"] if args.quick else []
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "run_all.json"
    # --reuse re-renders everything; --only re-runs some scripts and keeps the others' last figures
    keep_previous = (args.reuse or only) and summary_path.exists()
    previous = json.loads(summary_path.read_text(encoding="utf-8")) if keep_previous else {}
    load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    results: dict[str, dict] = {}
    failures = []
    for name in JSON_SCRIPTS:
        if only and name not in only:
            kept = args.out / f"{name}.json"
            if kept.exists():
                results[name] = json.loads(kept.read_text(encoding="utf-8"))
            continue
        flags = list(mode_flag) + (["--with-1m"] if name == "bench_scaling" and args.with_1m else [])
        json_path = args.out / f"{name}.json"
        if args.reuse:
            code, output = (0, "") if json_path.exists() else (1, f"{json_path} is missing")
        else:
            json_path.unlink(missing_ok=True)
            code, output, _ = run_script(name, flags, json_path, args.timeout)
        if code != 0 or not json_path.exists():
            failures.append(name)
            print(output[-3000:], file=sys.stderr)
            continue
        results[name] = json.loads(json_path.read_text(encoding="utf-8"))
    texts: dict[str, tuple[str, int, str, float]] = {
        name: tuple(value) for name, value in previous.get("texts", {}).items()}
    if not args.reuse and args.others != "skip":
        for name in TEXT_SCRIPTS:
            if (only and name not in only) or not (REPO / "bench" / f"{name}.py").exists():
                continue
            flags = [] if args.others == "full" else ["--quick"]
            code, output, elapsed = run_script(name, flags, None, args.timeout)
            texts[name] = (args.others, code, output, elapsed)
            if code != 0:
                failures.append(name)
    total = time.perf_counter() - start
    load_after = [round(x, 2) for x in os.getloadavg()]
    if args.reuse and previous:  # the figures' own run: its duration and load, not this re-rendering's
        total, load_before, load_after = previous["total_s"], previous["load_before"], previous["load_after"]
        args.others = previous.get("others", args.others)
    summary = {"results": results, "texts": texts, "failures": failures, "total_s": round(total, 1),
               "load_before": load_before, "load_after": load_after, "others": args.others}
    summary_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    args.readme.parent.mkdir(parents=True, exist_ok=True)
    args.readme.write_text(render(results, texts, load_before, load_after, args, total), encoding="utf-8")
    if not failures:  # a partial run keeps the last whole one's figures
        committed = {"total_s": summary["total_s"], "load_before": load_before, "load_after": load_after,
                     "results": results}
        results_path = args.results or args.readme.parent / "results.json"
        results_path.write_text(json.dumps(committed, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.readme} ({total / 60:.1f} min)")
    for name, payload in results.items():
        for goal in payload["goals"]:
            print(f"  {name}: {goal['name']} = {goal['measured']:.3f} (>= {goal['target']}: "
                  f"{'met' if goal['met'] else 'NOT met'})")
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
