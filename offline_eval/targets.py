"""Target policies for offline evaluation, named the way the CLI names them, and their pmfs.

A target name is one of:

- a registry version: ``3`` or ``v3`` (the campaign's registered model in MLflow);
- a registry alias: ``champion``, ``challenger``, ``previous_champion``, any alias that is set;
- a baseline: ``uniform``, ``best_single_arm``, ``per_segment_greedy`` (the last two learn from
  the log's training window);
- ``counterfactual:<policy>``: a fresh policy of that kind (``vw``, ...; with the campaign's own
  parameters when it is the campaign's policy) trained on the training window. VW's contextual
  bandit learning weights each logged event by its logged probability, so it learns from the
  logger's data the way it would have learned online.

A target must never have learned from the events it is evaluated on: log-trained targets only see
``[0, train_stop)``; a registry version's evaluation starts after its lineage's
``log_window_end``. Target pmfs are computed over exactly each event's logged eligible arms.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offerbandit.errors import InvalidInput, ModelError, NotFound
from offline_eval.ragged import RaggedMatrix
from offline_eval.settings import CampaignPolicy
from offline_eval.log_dataset import DEFAULT_CHUNK, LoggedDataset
from policies.contract import Policy, learn_in_batches
from policies.factory import load_policy, make_policy, policy_names
from policy_registry import PolicyRegistry, RegistryConfig

__all__ = [
    "BASELINES",
    "COUNTERFACTUAL_PREFIX",
    "KINDS",
    "TargetPolicy",
    "TargetSpec",
    "build_target",
    "parse_target",
    "registry_for",
    "target_pmf",
]

BASELINES = ("uniform", "best_single_arm", "per_segment_greedy")
COUNTERFACTUAL_PREFIX = "counterfactual:"
KINDS = ("version", "alias", "baseline", "counterfactual")
_VERSION = re.compile(r"^v?(\d+)$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target name. ``name``: the version number, alias or policy name."""

    text: str
    kind: str
    name: str

    @property
    def needs_registry(self) -> bool:
        return self.kind in ("version", "alias")

    @property
    def learns_from_log(self) -> bool:
        return self.kind == "counterfactual" or (self.kind == "baseline" and self.name != "uniform")


def parse_target(text: str) -> TargetSpec:
    """Classify a target name (InvalidInput for names that cannot be any kind)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a policy to evaluate must be a non-empty name", field="policy")
    text = text.strip()
    if text.startswith(COUNTERFACTUAL_PREFIX):
        name = text[len(COUNTERFACTUAL_PREFIX):]
        if name not in policy_names():
            raise InvalidInput(f"{text!r}: unknown policy {name!r} to train; known: {', '.join(policy_names())}",
                               field="policy")
        return TargetSpec(text, "counterfactual", name)
    if text in BASELINES:
        return TargetSpec(text, "baseline", text)
    version = _VERSION.match(text)
    if version:
        return TargetSpec(text, "version", str(int(version.group(1))))
    if _ALIAS.match(text) and text != "latest":
        return TargetSpec(text, "alias", text)
    raise InvalidInput(f"{text!r} is not a policy name: use a version number, an alias (champion, challenger), "
                       f"a baseline ({', '.join(BASELINES)}) or counterfactual:<{'|'.join(policy_names())}>",
                       field="policy")


@dataclass(frozen=True)
class TargetPolicy:
    """A ready target. ``train_window``: dataset rows it learned from (None: none of this log);
    ``trained_until``: the last decision time it may have learned from (None: nothing known)."""

    spec: TargetSpec
    label: str
    policy: Policy
    version: str | None
    train_window: tuple[int, int] | None
    trained_until: float | None
    notes: tuple[str, ...] = ()

    def close(self) -> None:
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()


def build_target(spec: TargetSpec, dataset: LoggedDataset, *, train_stop: int,
                 own_policy: CampaignPolicy | None = None, registry: PolicyRegistry | None = None,
                 seed: int = 0, chunk: int = DEFAULT_CHUNK) -> TargetPolicy:
    """Make (load or train) the target. ``registry``: a ``PolicyRegistry`` for versions and aliases.

    Log-trained targets learn from dataset rows ``[0, train_stop)`` only. ``own_policy``: the
    campaign's own policy; a counterfactual of that policy trains with its parameters.
    """
    if spec.needs_registry:
        return _from_registry(spec, dataset.campaign, registry)
    if spec.kind == "baseline" and spec.name == "uniform":
        return TargetPolicy(spec, "uniform", make_policy("uniform"), None, None, None)
    if not 0 < train_stop <= dataset.n_events:
        raise InvalidInput(f"training window 0:{train_stop} is empty or outside the log", field="train_fraction")
    if spec.kind == "counterfactual":
        params = dict(own_policy.params) if own_policy is not None and spec.name == own_policy.policy else {}
        if spec.name == "vw":
            params.setdefault("seed", seed)
        policy = make_policy(spec.name, **params)
    else:
        policy = make_policy(spec.name)
    try:
        learn_in_batches(policy, itertools.chain.from_iterable(dataset.learning_events(0, train_stop, chunk=chunk)),
                         chunk)
    except BaseException:
        getattr(policy, "close", lambda: None)()
        raise
    trained_until = float(dataset.decided_at[train_stop - 1])
    return TargetPolicy(spec, spec.text, policy, None, (0, train_stop), trained_until)


def _from_registry(spec: TargetSpec, campaign: str, registry: PolicyRegistry | None) -> TargetPolicy:
    if registry is None:
        raise NotFound(f"{spec.text!r} names a registered policy but there is no policy registry "
                       f"(baselines: {', '.join(BASELINES)}; or counterfactual:<policy>)")
    if spec.kind == "alias":
        loaded = registry.load_alias(campaign, spec.name)
        if loaded is None:
            known = dict(registry.aliases(campaign))
            shown = ", ".join(f"{a} -> v{v}" for a, v in sorted(known.items())) or "none"
            raise NotFound(f"campaign {campaign!r} has no policy alias {spec.name!r} (aliases: {shown}; "
                           f"baselines: {', '.join(BASELINES)})")
        label = f"{spec.name} (v{loaded.version})"
    else:
        loaded = registry.load(campaign, spec.name)
        label = f"v{loaded.version}"
    try:
        policy = load_policy(loaded.policy_name, loaded.model)
    except InvalidInput as exc:
        raise ModelError(f"{label}: {exc}") from exc
    notes: tuple[str, ...] = ()
    if loaded.lineage.log_window_end is None:
        notes = (f"{label} does not record which events it learned from; if it learned from the evaluated "
                 "events its estimate is optimistic.",)
    return TargetPolicy(spec, label, policy, loaded.version, None, loaded.lineage.log_window_end, notes)


def target_pmf(target: TargetPolicy, dataset: LoggedDataset, start: int, stop: int, *,
               chunk: int = DEFAULT_CHUNK, progress: ProgressCallback | None = None) -> RaggedMatrix:
    """The target's pmf on events ``start:stop`` over each event's logged eligible arms."""
    base = int(dataset.indptr[start])
    values = np.empty(int(dataset.indptr[stop]) - base, dtype=np.float64)
    row = start
    for decisions in dataset.decisions(start, stop, chunk=chunk):
        pmfs = target.policy.pmf_batch([(d.context, d.arm_set) for d in decisions])
        for decision, pmf in zip(decisions, pmfs):
            lo, hi = int(dataset.indptr[row]) - base, int(dataset.indptr[row + 1]) - base
            pmf = np.asarray(pmf, dtype=np.float64)
            if pmf.shape != (hi - lo,) or not np.isfinite(pmf).all() or abs(pmf.sum() - 1.0) > 1e-6:
                raise ModelError(f"{target.label} returned an invalid pmf for event {decision.event_id}")
            values[lo:hi] = pmf
            row += 1
        if progress is not None:
            progress(target.label, row - start, stop - start)
    return RaggedMatrix(dataset.indptr[start:stop + 1] - base, values)


def registry_for(data_dir: Path) -> PolicyRegistry | None:
    """The data dir's ``PolicyRegistry``, or None when it has no MLflow store (never creates one)."""
    config = RegistryConfig.for_data_dir(data_dir)
    uri = config.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):].split("?", 1)[0]).is_file():
        return None
    return PolicyRegistry(config)
