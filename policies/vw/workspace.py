"""A VW workspace's bytes and its cache of parsed arm examples (shared by the learner and the regressor).

Per-arm examples are parsed once and cached (keyed by offer features, format and time slot); a
request then parses only its shared line. VW's cb_adf reductions attach the shared features to each
arm example for the duration of a predict/learn call and detach them afterwards, which is what makes
re-using parsed arm examples valid; ``tests/policies/test_policies_vw_adapter.py`` checks that cached
and freshly parsed examples give bit-identical pmfs and learning for every exploration algorithm.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from vowpalwabbit import pyvw

from offerbandit.errors import ModelError
from policies.types import ArmSet
from policies.vw.features import arm_suffix

__all__ = [
    "ArmExampleCache",
    "load_workspace",
    "new_workspace",
    "parse_example",
    "save_workspace",
]


def new_workspace(args: list[str]) -> Any:
    return pyvw.Workspace(arg_list=args)


def parse_example(workspace: Any, line: str) -> Any:
    """One parsed example. ``pyvw.Example(vw, line)`` frees its native example when collected;
    ``Workspace.parse`` does not unless finished (measured ~30 KB leaked per example), and finishing a
    multi-example would also finish the cached arm examples."""
    return pyvw.Example(workspace, line)


def save_workspace(workspace: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="offerbandit-vw-") as folder:
        path = os.path.join(folder, "model.vw")
        workspace.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def load_workspace(args: list[str], data: bytes) -> Any:
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise ModelError("VW model bytes are empty")
    with tempfile.TemporaryDirectory(prefix="offerbandit-vw-") as folder:
        path = os.path.join(folder, "model.vw")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            return pyvw.Workspace(arg_list=[*args, "--save_resume", "-i", path])
        except Exception as exc:  # VW raises RuntimeError/ValueError with C++ messages
            raise ModelError(f"VW could not load the model: {exc}") from exc


class ArmExampleCache:
    """Parsed, unlabelled arm examples of one workspace, keyed by (offer part, format, time slot),
    plus the text parts of the offers seen. Bounded: cleared when full (a catalogue normally fits)."""

    def __init__(self, parse_one: Callable[[str], Any], max_size: int) -> None:
        self._parse_one = parse_one
        self.max_size = max_size
        self._examples: dict[tuple[str, str, str], Any] = {}
        self.offer_parts: dict[str, tuple[Any, str]] = {}

    def __len__(self) -> int:
        return len(self._examples)

    def examples(self, arm_set: ArmSet, offer_parts: dict[str, str]) -> list[Any]:
        cache = self._examples
        found = []
        for arm in arm_set.arms:
            key = (offer_parts[arm.offer_id], arm.format, arm.time_slot)
            example = cache.get(key)
            if example is None:
                if len(cache) >= self.max_size:
                    cache.clear()
                    self.offer_parts.clear()
                example = cache[key] = self._parse_one(key[0] + arm_suffix(arm))
            found.append(example)
        return found

    def clear(self) -> None:
        self._examples.clear()
        self.offer_parts.clear()
