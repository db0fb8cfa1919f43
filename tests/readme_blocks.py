"""The text between two marker comments of README.md (the blocks a test renders from a committed run), the
committed run's reports they are rendered from, and the words those blocks use for a bench goal."""
from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: what bench/run_all.py wrote beside bench/README.md in the committed `make bench` run
RESULTS = REPO / "bench" / "results.json"


def committed_bench_report(script: str) -> dict:
    """The committed run's report of one bench script (its ``--json`` output), from bench/results.json."""
    return json.loads(RESULTS.read_text(encoding="utf-8"))["results"][script]


def readme_text() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def readme_block(text: str, begin: str, end: str) -> str:
    """What stands between the lines ``begin`` and ``end`` (an AssertionError naming them when absent)."""
    match = re.search(re.escape(begin) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    assert match, f"README.md has no {begin} ... {end} block"
    return match.group(1)


def goal_verdict(goal: dict) -> str:
    """How a rendered block states a bench goal of bench/results.json: ``met`` or ``not met``."""
    return "met" if goal["met"] else "not met"
