"""A VW workspace's bytes and its cache of parsed arm examples (shared by the learner and the regressor).

Per-arm examples are parsed once and cached (keyed by offer features, format and time slot); a
request then parses only its shared line. VW's cb_adf reductions attach the shared features to each
arm example for the duration of a predict/learn call and detach them afterwards, which is what makes
re-using parsed arm examples valid; ``tests/policies/test_policies_vw_adapter.py`` checks that cached
and freshly parsed examples give bit-identical pmfs and learning for every exploration algorithm.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pylibvw
from vowpalwabbit import pyvw

from offerbandit.errors import ModelError
from policies.types import ArmSet
from policies.vw.features import arm_suffix

__all__ = [
    "DEFAULT_ARM_CACHE_BYTES",
    "EXAMPLE_BYTES",
    "ArmExampleCache",
    "learn_multi",
    "load_workspace",
    "new_workspace",
    "parse_example",
    "parse_native_example",
    "predict_multi",
    "save_workspace",
    "save_workspace_in_child",
]


def new_workspace(args: list[str]) -> Any:
    return pyvw.Workspace(arg_list=args)


def parse_example(workspace: Any, line: str, label_type: Any = None) -> Any:
    """One parsed example. ``pyvw.Example(vw, line)`` frees its native example when collected;
    ``Workspace.parse`` does not unless finished (measured ~30 KB leaked per example), and finishing a
    multi-example would also finish the cached arm examples. ``label_type`` (the workspace's
    ``get_label_type()``, looked up once by the caller) saves pyvw asking the workspace per example."""
    return pyvw.Example(workspace, line, label_type)


def parse_native_example(workspace: Any, line: str, label_type_value: int) -> Any:
    """One parsed example as pylibvw's own ``example`` (what ``pyvw.Example`` wraps): the same native
    example (read, set up and freed when collected, like :func:`parse_example`) without pyvw's Python
    wrapper, which costs more than VW's parse of a short line (measured 14-35 us against 3-7 us for a
    shared line). Good for :func:`predict_multi` and :func:`learn_multi`, not for pyvw's own methods.
    ``label_type_value`` is ``workspace.get_label_type().value``."""
    return pylibvw.example(workspace, label_type_value, line)


def predict_multi(workspace: Any, examples: list[Any]) -> list[float]:
    """``workspace.predict(examples)`` for parsed multi-line examples of a ``cb_explore_adf`` workspace,
    without pyvw's per-call type dispatch: the pmf over the arm examples in their order."""
    pylibvw.vw.predict_multi(workspace, examples)
    return examples[0].get_action_scores()


def learn_multi(workspace: Any, examples: list[Any]) -> None:
    """``workspace.learn(examples)`` for parsed multi-line examples (without pyvw's dispatch)."""
    pylibvw.vw.learn_multi(workspace, examples)


def save_workspace(workspace: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="offerbandit-vw-") as folder:
        path = os.path.join(folder, "model.vw")
        workspace.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def save_workspace_in_child(workspace: Any) -> Callable[[], bytes]:
    """Start :func:`save_workspace` in a forked copy of this process and return a function that waits for
    the bytes. VW's save holds the GIL for its whole walk of the weight table (80+ ms at ``-b 24``), so
    an in-process save stops every other thread; here only the fork itself holds it.

    Hold the workspace's lock across this call only (not while waiting): the child sees memory as it was
    at the fork (copy-on-write) and does nothing but save and ``os._exit``. Where ``os.fork`` is missing
    or fails, the save runs here, at once."""
    if not hasattr(os, "fork"):
        data = save_workspace(workspace)
        return lambda: data
    folder = tempfile.mkdtemp(prefix="offerbandit-vw-")
    path = os.path.join(folder, "model.vw")
    try:
        pid = os.fork()
    except OSError:
        os.rmdir(folder)
        data = save_workspace(workspace)
        return lambda: data
    if pid == 0:  # the child: one thread, a frozen copy of the workspace
        code = 1
        try:
            workspace.save(path)
            code = 0
        finally:
            os._exit(code)

    def wait() -> bytes:
        try:
            _, status = os.waitpid(pid, 0)  # releases the GIL while the child works
            if os.waitstatus_to_exitcode(status) != 0:
                raise ModelError("the forked VW save failed")
            with open(path, "rb") as handle:
                return handle.read()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return wait


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


#: Bytes one parsed arm example holds in VW (measured with the default options, -b 24 and eight
#: interactions: ~32.6 KB of native memory each, whatever the line; RSS over 10,000 parses).
EXAMPLE_BYTES = 33_000
#: Default budget of one workspace's arm cache: ~8,000 examples (the 96-arm default catalogue fits
#: 80 times over; 2,000 offers x 12 placements do not, and then the oldest arms are parsed again).
DEFAULT_ARM_CACHE_BYTES = 256 * 1024 * 1024


class ArmExampleCache:
    """Parsed, unlabelled arm examples of one workspace, keyed by (offer part, format, time slot), plus
    the text parts of the offers seen. Bounded in bytes (``EXAMPLE_BYTES`` each, plus the key's text),
    least recently used dropped first; a dropped example is freed once no call holds it."""

    def __init__(self, parse_one: Callable[[str], Any], max_bytes: int = DEFAULT_ARM_CACHE_BYTES) -> None:
        self._parse_one = parse_one
        self.max_bytes = int(max_bytes)
        self._examples: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self.nbytes = 0
        self.offer_parts: dict[str, tuple[Any, str]] = {}
        #: bumped whenever an example leaves the cache: lists of examples built earlier (a learner's
        #: per-arm-set entries) are stale then, so nothing keeps an evicted example alive for long
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._examples)

    @staticmethod
    def _cost(key: tuple[str, str, str]) -> int:
        return EXAMPLE_BYTES + len(key[0]) + len(key[1]) + len(key[2])

    def examples(self, arm_set: ArmSet, offer_parts: dict[str, str]) -> list[Any]:
        cache = self._examples
        found = []
        for arm in arm_set.arms:
            key = (offer_parts[arm.offer_id], arm.format, arm.time_slot)
            example = cache.get(key)
            if example is None:
                example = self._parse_one(key[0] + arm_suffix(arm))
                cost = self._cost(key)
                if cost <= self.max_bytes:
                    cache[key] = example
                    self.nbytes += cost
                    self._evict()
            else:
                cache.move_to_end(key)
            found.append(example)
        return found

    def _evict(self) -> None:
        cache = self._examples
        while self.nbytes > self.max_bytes and cache:
            key, _ = cache.popitem(last=False)
            self.nbytes -= self._cost(key)
            self.epoch += 1
        # offer parts are a few hundred bytes each; keep at most one per cached example
        while len(self.offer_parts) > max(len(cache), 1):
            self.offer_parts.pop(next(iter(self.offer_parts)))

    def clear(self) -> None:
        # one at a time: freeing a native example is a C call, and ``OrderedDict.clear`` frees them all in a
        # single one, holding the GIL throughout (~4 us of CPU an example: 8 ms for 2,048 cached arms, at
        # every publish when the old serving workspace is closed); between two pops other threads may run
        examples = self._examples
        while examples:
            examples.popitem()
        self.offer_parts.clear()
        self.nbytes = 0
        self.epoch += 1
