"""The text between two marker comments of README.md (the blocks a test renders from a committed run), and the
words those blocks use for a bench goal."""
from __future__ import annotations

import re


def readme_block(text: str, begin: str, end: str) -> str:
    """What stands between the lines ``begin`` and ``end`` (an AssertionError naming them when absent)."""
    match = re.search(re.escape(begin) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    assert match, f"README.md has no {begin} ... {end} block"
    return match.group(1)


def goal_verdict(goal: dict) -> str:
    """How a rendered block states a bench goal of bench/results.json: ``met`` or ``not met``."""
    return "met" if goal["met"] else "not met"
