"""The registry's records: what is published (a policy artefact and its lineage), what is read back,
the promotion gate's verdict, what a promotion did, metric points, and where the store lives."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput, ModelError
from policy_registry.validation import (
    NAME_PATTERN,
    check_optional_number,
    check_toml,
    checked_metrics,
    validate_campaign,
)

__all__ = [
    "ARTIFACT_FORMAT",
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "Gate",
    "GateResult",
    "Lineage",
    "LoadedPolicy",
    "MetricPoint",
    "PolicyArtifact",
    "PromotionResult",
    "RegistryConfig",
]

ARTIFACT_FORMAT = "offerbandit-policy/1"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a policy version came from: its parent, the log window it learned from, the code.

    ``learn_seq`` is the highest ``learn_seq`` of the decision log the version includes (a checkpoint
    of the live model); a model loaded from it catches up on exactly the events learned after it.
    None for versions trained elsewhere (and for checkpoints written before learn_seq existed, which
    ``log_window_end`` locates in the log instead).
    """

    parent_version: str | None
    log_window_start: float | None
    log_window_end: float | None
    event_count: int
    code_version: str
    learn_seq: int | None = None

    def __post_init__(self) -> None:
        if self.parent_version is not None and (
            not isinstance(self.parent_version, str) or not self.parent_version.isdigit()
        ):
            raise InvalidInput(
                f"parent_version must be a registry version number or None, got {self.parent_version!r}",
                field="parent_version",
            )
        check_optional_number(self.log_window_start, "log_window_start")
        check_optional_number(self.log_window_end, "log_window_end")
        if (
            self.log_window_start is not None
            and self.log_window_end is not None
            and self.log_window_start > self.log_window_end
        ):
            raise InvalidInput("log_window_start is after log_window_end", field="log_window_start")
        check_scalar(self.event_count, "event_count", int, low=0)
        if not isinstance(self.code_version, str) or not self.code_version.strip():
            raise InvalidInput("code_version must be a non-empty string", field="code_version")
        if self.learn_seq is not None:
            check_scalar(self.learn_seq, "learn_seq", int, low=0)

    def as_tags(self) -> dict[str, str]:
        tags = {"event_count": str(self.event_count), "code_version": self.code_version}
        if self.learn_seq is not None:
            tags["learn_seq"] = str(self.learn_seq)
        if self.parent_version is not None:
            tags["parent_version"] = self.parent_version
        if self.log_window_start is not None:
            tags["log_window_start"] = repr(float(self.log_window_start))
        if self.log_window_end is not None:
            tags["log_window_end"] = repr(float(self.log_window_end))
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> "Lineage":
        """Rebuild from version tags; a missing or garbled tag is a broken artefact (ModelError)."""
        try:
            start = tags.get("log_window_start")
            end = tags.get("log_window_end")
            learn_seq = tags.get("learn_seq")
            return cls(
                parent_version=tags.get("parent_version"),
                log_window_start=float(start) if start is not None else None,
                log_window_end=float(end) if end is not None else None,
                event_count=int(tags["event_count"]),
                code_version=tags["code_version"],
                learn_seq=int(learn_seq) if learn_seq is not None else None,
            )
        except (KeyError, ValueError) as exc:
            raise ModelError(f"lineage tags are missing or malformed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class PolicyArtifact:
    """What ``publish`` stores: the saved policy bytes, its config, lineage and headline metrics."""

    campaign: str
    policy_name: str
    model: bytes
    config_toml: str
    lineage: Lineage
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_campaign(self.campaign)
        if not isinstance(self.policy_name, str) or not NAME_PATTERN.match(self.policy_name):
            raise InvalidInput(f"policy_name {self.policy_name!r} is not a valid name", field="policy_name")
        if not isinstance(self.model, (bytes, bytearray)) or not self.model:
            raise InvalidInput("model must be non-empty bytes", field="model")
        object.__setattr__(self, "model", bytes(self.model))
        check_toml(self.config_toml, InvalidInput)
        if not isinstance(self.lineage, Lineage):
            raise InvalidInput("lineage must be a Lineage", field="lineage")
        object.__setattr__(self, "metrics", checked_metrics(self.metrics))


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A verified policy version read back from the registry.

    ``alias`` is the alias it was resolved through (``champion``, ``challenger``) or None when it was
    loaded by version number.
    """

    campaign: str
    version: str
    policy_name: str
    model: bytes
    config_toml: str
    lineage: Lineage
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class GateResult:
    """The promotion gate's verdict: does the candidate's offline estimate beat the champion's?

    ``ci_low``/``ci_high`` bound the estimated improvement (candidate minus champion) when known.
    """

    passed: bool
    reason: str
    candidate_estimate: float | None = None
    champion_estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.passed, bool):
            raise InvalidInput("passed must be a bool", field="passed")
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise InvalidInput("a gate must give a reason", field="reason")
        for name in ("candidate_estimate", "champion_estimate", "ci_low", "ci_high"):
            check_optional_number(getattr(self, name), name)

    def as_metrics(self) -> dict[str, float]:
        """The verdict's numbers as run metrics (``gate.candidate_estimate``, ...)."""
        names = ("candidate_estimate", "champion_estimate", "ci_low", "ci_high")
        return {f"gate.{n}": float(getattr(self, n)) for n in names if getattr(self, n) is not None}


Gate = Callable[[str | None, str], GateResult]
"""``gate(champion, candidate)``: the promotion gate ``PolicyRegistry.promote`` asks (champion None: none yet)."""


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What ``promote`` or ``rollback`` did. ``promoted`` is False when the gate refused."""

    campaign: str
    action: str  # "promote" or "rollback"
    version: str  # the version that was asked to become champion
    champion_before: str | None
    champion_after: str | None
    promoted: bool
    forced: bool
    reason: str
    gate: GateResult | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One point of a metric's history in an evaluation run: MLflow charts ``key`` against ``step``
    (or against ``timestamp_s``, seconds since the epoch)."""

    key: str
    value: float
    step: int
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Where the registry lives. ``artifact_root`` is a local directory (never ./mlruns)."""

    tracking_uri: str
    artifact_root: str
    experiment_name: str = "offerbandit"
    model_name_template: str = "offerbandit-{campaign}"

    def __post_init__(self) -> None:
        if not isinstance(self.tracking_uri, str) or not self.tracking_uri.strip():
            raise InvalidInput("tracking_uri must be a non-empty string", field="tracking_uri")
        if not isinstance(self.artifact_root, (str, os.PathLike)) or not str(self.artifact_root).strip():
            raise InvalidInput("artifact_root must be a directory path", field="artifact_root")
        object.__setattr__(self, "artifact_root", str(Path(self.artifact_root).expanduser().resolve()))
        if not isinstance(self.experiment_name, str) or not self.experiment_name.strip():
            raise InvalidInput("experiment_name must be a non-empty string", field="experiment_name")
        try:
            probe = self.model_name_template.format(campaign="x")
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise InvalidInput(
                f"model_name_template must use only {{campaign}}: {exc}", field="model_name_template"
            ) from exc
        if "{campaign}" not in self.model_name_template or not NAME_PATTERN.match(probe):
            raise InvalidInput(
                "model_name_template must contain {campaign} and give a valid name",
                field="model_name_template",
            )

    @classmethod
    def for_data_dir(cls, data_dir: str | os.PathLike[str], **overrides: str) -> "RegistryConfig":
        """``sqlite:///<data_dir>/mlflow.db`` (unless MLFLOW_TRACKING_URI is set), artifacts under it."""
        root = Path(data_dir).expanduser().resolve()
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
        return cls(tracking_uri=tracking_uri, artifact_root=str(root / "mlflow-artifacts"), **overrides)

    def model_name(self, campaign: str) -> str:
        validate_campaign(campaign)
        return self.model_name_template.format(campaign=campaign)
