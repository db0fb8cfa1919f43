"""Versioned policies in the MLflow model registry: publish, resolve, load, promote, roll back.

One registered model per campaign (``offerbandit-<campaign>``). Each published version is backed by
a run in the ``offerbandit`` experiment that holds the files under ``policy/``::

    policy/model.bin      the policy's ``save()`` bytes
    policy/config.toml    the campaign/policy configuration it was trained with

and carries its lineage as version tags (``parent_version``, ``log_window_start``,
``log_window_end``, ``event_count``, ``code_version``, ``policy_name``) plus sha256 checksums
that ``load`` verifies. Serving follows the alias ``champion`` (``models:/offerbandit-<c>@champion``);
``promote`` moves it behind an offline-evaluation gate and keeps the one it replaced under
``previous_champion`` so ``rollback`` can return to it. Every alias move is written as
who/when/why tags on the version and as an audit run in the experiment.

MLflow costs about a second to import, so this module never imports it at import time: every
MLflow import sits inside a function (tests check ``import policy_registry.registry`` stays cheap).
The store is one SQLite file; a second writer process can hit "database is locked", which every
call retries with exponential backoff.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from offerbandit.errors import InvalidInput, ModelError, NotFound, OfferBanditError, PolicyUnavailable, RegistryUnavailable

if TYPE_CHECKING:  # pragma: no cover - typing only, never imported at run time
    from mlflow import MlflowClient

__all__ = [
    "ARTIFACT_FORMAT",
    "CHAMPION",
    "CHALLENGER",
    "PREVIOUS_CHAMPION",
    "GateResult",
    "Lineage",
    "LoadedPolicy",
    "PolicyArtifact",
    "PolicyRegistry",
    "PromotionResult",
    "RegistryConfig",
    "RegistryUnavailable",
    "copy_store",
    "retry_when_locked",
    "validate_alias",
    "validate_campaign",
    "current_code_version",
    "write_template_store",
]

ARTIFACT_FORMAT = "offerbandit-policy/1"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

MODEL_FILE = "model.bin"
CONFIG_FILE = "config.toml"
ARTIFACT_DIR = "policy"

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ALIAS_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_METRIC_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")
_LOCKED_MESSAGE = "database is locked"

T = TypeVar("T")


# --------------------------------------------------------------------------- records


def _check_optional_time(value: float | None, name: str) -> None:
    if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise InvalidInput(f"{name} must be a finite number or None, got {value!r}", field=name)


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a policy version came from: its parent, the log window it learned from, the code."""

    parent_version: str | None
    log_window_start: float | None
    log_window_end: float | None
    event_count: int
    code_version: str

    def __post_init__(self) -> None:
        if self.parent_version is not None and (
            not isinstance(self.parent_version, str) or not self.parent_version.isdigit()
        ):
            raise InvalidInput(
                f"parent_version must be a registry version number or None, got {self.parent_version!r}",
                field="parent_version",
            )
        _check_optional_time(self.log_window_start, "log_window_start")
        _check_optional_time(self.log_window_end, "log_window_end")
        if (
            self.log_window_start is not None
            and self.log_window_end is not None
            and self.log_window_start > self.log_window_end
        ):
            raise InvalidInput("log_window_start is after log_window_end", field="log_window_start")
        if isinstance(self.event_count, bool) or not isinstance(self.event_count, int) or self.event_count < 0:
            raise InvalidInput(f"event_count must be an int >= 0, got {self.event_count!r}", field="event_count")
        if not isinstance(self.code_version, str) or not self.code_version.strip():
            raise InvalidInput("code_version must be a non-empty string", field="code_version")

    def as_tags(self) -> dict[str, str]:
        tags = {"event_count": str(self.event_count), "code_version": self.code_version}
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
            return cls(
                parent_version=tags.get("parent_version"),
                log_window_start=float(start) if start is not None else None,
                log_window_end=float(end) if end is not None else None,
                event_count=int(tags["event_count"]),
                code_version=tags["code_version"],
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
        if not isinstance(self.policy_name, str) or not _NAME_PATTERN.match(self.policy_name):
            raise InvalidInput(f"policy_name {self.policy_name!r} is not a valid name", field="policy_name")
        if not isinstance(self.model, (bytes, bytearray)) or not self.model:
            raise InvalidInput("model must be non-empty bytes", field="model")
        object.__setattr__(self, "model", bytes(self.model))
        _check_toml(self.config_toml, InvalidInput)
        if not isinstance(self.lineage, Lineage):
            raise InvalidInput("lineage must be a Lineage", field="lineage")
        object.__setattr__(self, "metrics", _checked_metrics(self.metrics))


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
            _check_optional_time(getattr(self, name), name)

    def as_metrics(self) -> dict[str, float]:
        names = ("candidate_estimate", "champion_estimate", "ci_low", "ci_high")
        return {f"gate.{n}": float(getattr(self, n)) for n in names if getattr(self, n) is not None}


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


#: MLflow's log_batch takes at most this many metrics per call.
_MAX_METRICS_PER_BATCH = 1000


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
        if "{campaign}" not in self.model_name_template or not _NAME_PATTERN.match(probe):
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


# --------------------------------------------------------------------------- validation helpers


def validate_campaign(campaign: object) -> None:
    """A campaign name usable in a registered model name (InvalidInput naming ``campaign``)."""
    if not isinstance(campaign, str) or not _NAME_PATTERN.match(campaign):
        raise InvalidInput(
            f"campaign {campaign!r} must be 1-100 letters, digits, '_', '.' or '-'", field="campaign"
        )


def validate_alias(alias: object) -> None:
    """An alias MLflow accepts (not ``latest``, not ``v<n>``)."""
    if not isinstance(alias, str) or not _ALIAS_PATTERN.match(alias) or alias == "latest" or re.fullmatch(
        r"v\d+", alias
    ):
        raise InvalidInput(f"alias {alias!r} is not a valid registry alias", field="alias")


def _check_version(version: object) -> str:
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.isdigit():
        raise InvalidInput(f"version must be a registry version number, got {version!r}", field="version")
    return version


def _check_audit(who: object, why: object) -> None:
    if not isinstance(who, str) or not who.strip():
        raise InvalidInput("who must name the person or process making the change", field="who")
    if not isinstance(why, str) or not why.strip():
        raise InvalidInput("why must give a reason for the change", field="why")


def _check_toml(text: object, error: type[OfferBanditError]) -> None:
    """``config_toml`` must parse: InvalidInput when publishing, ModelError when loading."""
    def fail(message: str) -> OfferBanditError:
        return InvalidInput(message, field="config_toml") if error is InvalidInput else error(message)

    if not isinstance(text, str):
        raise fail("config_toml must be a string")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"config_toml does not parse as TOML: {exc}") from exc


def _checked_metrics(metrics: object) -> Mapping[str, float]:
    if not isinstance(metrics, Mapping):
        raise InvalidInput("metrics must be a mapping of name to number", field="metrics")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not _METRIC_KEY_PATTERN.match(key):
            raise InvalidInput(f"metric name {key!r} is not valid", field="metrics")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidInput(f"metric {key!r} must be a finite number, got {value!r}", field="metrics")
        clean[key] = float(value)
    return MappingProxyType(clean)


def _checked_series(series: object) -> tuple[MetricPoint, ...]:
    if isinstance(series, (str, bytes)) or not isinstance(series, Sequence) \
            or not all(isinstance(point, MetricPoint) for point in series):
        raise InvalidInput("series must be a sequence of MetricPoint", field="series")
    for point in series:
        _checked_metrics({point.key: point.value})
        if isinstance(point.step, bool) or not isinstance(point.step, int) or point.step < 0:
            raise InvalidInput(f"metric {point.key!r}: step must be an integer >= 0, got {point.step!r}",
                               field="series")
        stamp = point.timestamp_s
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp) or stamp < 0:
            raise InvalidInput(f"metric {point.key!r}: timestamp_s must be a finite time >= 0, got {stamp!r}",
                               field="series")
    return tuple(series)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def current_code_version() -> str:
    """``git describe`` of the checkout when there is one, else the installed package version."""
    repo = Path(__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=repo, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        if described:
            return f"git:{described}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"offerbandit-{version('offerbandit')}"
    except Exception:  # noqa: BLE001 - any metadata failure leaves us with "unknown"
        return "unknown"


# --------------------------------------------------------------------------- retries


def _is_locked(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _LOCKED_MESSAGE in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def retry_when_locked(
    call: Callable[[], T], *, attempts: int = 6, first_delay_s: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; on "database is locked" wait 50 ms, 100 ms, ... and retry (then re-raise)."""
    delay = first_delay_s
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts - 1 or not _is_locked(exc):
                raise
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


# --------------------------------------------------------------------------- the registry


class PolicyRegistry:
    """Policy versions of every campaign in one MLflow store.

    Creating one is cheap; MLflow is imported and the store opened on first use. Failures to reach
    or write the store raise ``RegistryUnavailable``; unknown versions ``NotFound``; unusable
    artefacts ``ModelError``; bad arguments ``InvalidInput``.
    ``accepted_policy_names`` (None: any) lists the policy names this code can load.
    """

    def __init__(self, config: RegistryConfig, *, accepted_policy_names: Collection[str] | None = None) -> None:
        if not isinstance(config, RegistryConfig):
            raise InvalidInput("config must be a RegistryConfig", field="config")
        self.config = config
        self._accepted = frozenset(accepted_policy_names) if accepted_policy_names is not None else None
        self._client_lock = threading.Lock()
        self._client_instance: MlflowClient | None = None
        self._experiment_id: str | None = None

    # ----------------------------------------------------------------- plumbing

    def model_name(self, campaign: str) -> str:
        return self.config.model_name(campaign)

    def _client(self) -> "MlflowClient":
        with self._client_lock:
            if self._client_instance is None:
                _preflight(self.config.tracking_uri)
                try:
                    from mlflow import MlflowClient

                    uri = self.config.tracking_uri
                    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                    # Opening the store (and migrating a fresh one) happens here, once.
                    retry_when_locked(lambda: client.search_experiments(max_results=1))
                except OfferBanditError:
                    raise
                except Exception as exc:
                    raise RegistryUnavailable(f"MLflow store {uri!r} cannot be opened: {exc}") from exc
                self._client_instance = client
            return self._client_instance

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """One MLflow call: retried when the database is locked, failures mapped to our errors."""
        try:
            return retry_when_locked(call)
        except OfferBanditError:
            raise
        except Exception as exc:
            raise RegistryUnavailable(f"MLflow {what} failed: {exc}") from exc

    def _experiment(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        client = self._client()
        name = self.config.experiment_name
        experiment = self._call("get_experiment_by_name", lambda: client.get_experiment_by_name(name))
        if experiment is None:
            location = (Path(self.config.artifact_root) / name).as_uri()
            try:
                experiment_id = retry_when_locked(
                    lambda: client.create_experiment(name, artifact_location=location)
                )
            except Exception as exc:
                if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":  # another process won the race
                    raise RegistryUnavailable(f"cannot create experiment {name!r}: {exc}") from exc
                experiment_id = self._call(
                    "get_experiment_by_name", lambda: client.get_experiment_by_name(name)
                ).experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                self._call("restore_experiment", lambda: client.restore_experiment(experiment_id))
        self._experiment_id = experiment_id
        return experiment_id

    def _ensure_registered_model(self, campaign: str) -> str:
        name = self.model_name(campaign)
        client = self._client()
        try:
            retry_when_locked(
                lambda: client.create_registered_model(
                    name,
                    tags={"campaign": campaign},
                    description=f"offerbandit policies for campaign {campaign!r}",
                )
            )
        except Exception as exc:
            if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise RegistryUnavailable(f"cannot create registered model {name!r}: {exc}") from exc
        return name

    def _version_record(self, campaign: str, version: str):  # -> mlflow ModelVersion
        name = self.model_name(campaign)
        client = self._client()
        try:
            return retry_when_locked(lambda: client.get_model_version(name, version))
        except Exception as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(f"campaign {campaign!r} has no policy version {version}") from exc
            raise RegistryUnavailable(f"MLflow get_model_version failed: {exc}") from exc

    def _audit_run(
        self, campaign: str, run_name: str, tags: Mapping[str, str], metrics: Mapping[str, float]
    ) -> str:
        """A finished run in the experiment recording one registry action (promote, rollback, ...)."""
        from mlflow.entities import Metric

        client = self._client()
        experiment_id = self._experiment()
        all_tags = {"campaign": campaign, "registered_model": self.model_name(campaign), **tags}
        run = self._call("create_run", lambda: client.create_run(experiment_id, run_name=run_name, tags=all_tags))
        run_id = run.info.run_id
        now_ms = int(time.time() * 1000)
        if metrics:
            batch = [Metric(key, value, now_ms, 0) for key, value in metrics.items()]
            self._call("log_batch", lambda: client.log_batch(run_id, metrics=batch))
        self._call("set_terminated", lambda: client.set_terminated(run_id, "FINISHED"))
        return run_id

    def _move_alias(self, campaign: str, alias: str, version: str, *, who: str, why: str, action: str) -> None:
        name = self.model_name(campaign)
        client = self._client()
        self._call("set_registered_model_alias", lambda: client.set_registered_model_alias(name, alias, version))
        stamp = {f"{alias}.set_by": who, f"{alias}.set_at": _now_iso(), f"{alias}.why": why, f"{alias}.action": action}
        for key, value in stamp.items():
            self._call("set_model_version_tag", lambda: client.set_model_version_tag(name, version, key, value))

    # ----------------------------------------------------------------- public API

    def publish(self, artifact: PolicyArtifact, *, aliases: Sequence[str] = (CHAMPION,)) -> str:
        """Store a new version (run + files + registered version with lineage tags); move ``aliases``.

        Publishing moves aliases without the promotion gate (checkpoints of the live model are the
        same lineage) and leaves ``previous_champion`` alone; returns the new version number.
        """
        from mlflow.entities import Metric, Param

        if not isinstance(artifact, PolicyArtifact):
            raise InvalidInput("artifact must be a PolicyArtifact", field="artifact")
        if isinstance(aliases, str):
            raise InvalidInput("aliases must be a sequence of alias names", field="aliases")
        for alias in aliases:
            validate_alias(alias)
        client = self._client()
        experiment_id = self._experiment()
        name = self._ensure_registered_model(artifact.campaign)
        lineage_tags = artifact.lineage.as_tags()
        version_tags = {
            "campaign": artifact.campaign,
            "policy_name": artifact.policy_name,
            "artifact_format": ARTIFACT_FORMAT,
            "model_sha256": _sha256(artifact.model),
            "config_sha256": _sha256(artifact.config_toml.encode("utf-8")),
            **lineage_tags,
        }
        run_tags = {"offerbandit.kind": "publish", "registered_model": name, **version_tags}
        run = self._call(
            "create_run",
            lambda: client.create_run(
                experiment_id, run_name=f"publish {artifact.campaign} {artifact.policy_name}", tags=run_tags
            ),
        )
        run_id = run.info.run_id
        try:
            now_ms = int(time.time() * 1000)
            params = [Param(key, value) for key, value in lineage_tags.items()]
            params.append(Param("policy_name", artifact.policy_name))
            metrics = [Metric(key, value, now_ms, 0) for key, value in artifact.metrics.items()]
            self._call("log_batch", lambda: client.log_batch(run_id, metrics=metrics, params=params))
            with tempfile.TemporaryDirectory(prefix="offerbandit-publish-") as staging:
                Path(staging, MODEL_FILE).write_bytes(artifact.model)
                Path(staging, CONFIG_FILE).write_text(artifact.config_toml, encoding="utf-8")
                self._call("log_artifacts", lambda: client.log_artifacts(run_id, staging, ARTIFACT_DIR))
            source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_DIR}"
            model_version = self._call(
                "create_model_version",
                lambda: client.create_model_version(
                    name, source=source, run_id=run_id, tags=version_tags,
                    description=f"{artifact.policy_name} for {artifact.campaign}, "
                    f"parent {artifact.lineage.parent_version or 'none'}",
                ),
            )
            version = str(model_version.version)
            self._call("set_tag", lambda: client.set_tag(run_id, "registered_version", version))
            self._call("set_terminated", lambda: client.set_terminated(run_id, "FINISHED"))
        except BaseException:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                pass
            raise
        for alias in aliases:
            self._move_alias(
                artifact.campaign, alias, version, who="publish", why="published checkpoint", action="publish"
            )
        return version

    def resolve(self, campaign: str, alias: str) -> str | None:
        """The version an alias points to, or None (no such alias or no model for the campaign yet)."""
        validate_alias(alias)
        name = self.model_name(campaign)
        client = self._client()
        try:
            registered = retry_when_locked(lambda: client.get_registered_model(name))
        except Exception as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise RegistryUnavailable(f"MLflow get_registered_model failed: {exc}") from exc
        version = registered.aliases.get(alias)
        return str(version) if version is not None else None

    def aliases(self, campaign: str) -> Mapping[str, str]:
        """Every alias of the campaign's registered model (alias -> version); empty when none."""
        name = self.model_name(campaign)
        client = self._client()
        try:
            registered = retry_when_locked(lambda: client.get_registered_model(name))
        except Exception as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return MappingProxyType({})
            raise RegistryUnavailable(f"MLflow get_registered_model failed: {exc}") from exc
        return MappingProxyType({alias: str(v) for alias, v in registered.aliases.items()})

    def load(self, campaign: str, version: str) -> LoadedPolicy:
        """Read a version's files back and verify them against the checksums in its tags."""
        version = _check_version(version)
        record = self._version_record(campaign, version)
        tags = dict(record.tags)
        label = f"{campaign} v{version}"
        if tags.get("artifact_format") != ARTIFACT_FORMAT:
            raise ModelError(
                f"{label}: artefact format {tags.get('artifact_format')!r} is not {ARTIFACT_FORMAT!r}"
            )
        policy_name = tags.get("policy_name", "")
        if not policy_name or (self._accepted is not None and policy_name not in self._accepted):
            raise ModelError(f"{label}: policy {policy_name!r} is not one this code can load")
        lineage = Lineage.from_tags(tags)
        model, config_bytes = _read_artifact_files(record.source, label)
        if _sha256(model) != tags.get("model_sha256"):
            raise ModelError(f"{label}: {MODEL_FILE} does not match its checksum (corrupt artefact)")
        if _sha256(config_bytes) != tags.get("config_sha256"):
            raise ModelError(f"{label}: {CONFIG_FILE} does not match its checksum (corrupt artefact)")
        try:
            config_toml = config_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelError(f"{label}: {CONFIG_FILE} is not UTF-8") from exc
        _check_toml(config_toml, ModelError)
        return LoadedPolicy(
            campaign=campaign, version=version, policy_name=policy_name,
            model=model, config_toml=config_toml, lineage=lineage,
        )

    def load_alias(self, campaign: str, alias: str) -> LoadedPolicy | None:
        """``load`` of the version under ``alias`` (None when the alias is not set)."""
        version = self.resolve(campaign, alias)
        if version is None:
            return None
        loaded = self.load(campaign, version)
        return LoadedPolicy(
            campaign=loaded.campaign, version=loaded.version, policy_name=loaded.policy_name,
            model=loaded.model, config_toml=loaded.config_toml, lineage=loaded.lineage, alias=alias,
        )

    def set_alias(self, campaign: str, alias: str, version: str, *, who: str, why: str) -> str:
        """Point ``alias`` at ``version`` without a gate; recorded as tags and an audit run (its id)."""
        validate_alias(alias)
        version = _check_version(version)
        _check_audit(who, why)
        before = self.resolve(campaign, alias)
        self._version_record(campaign, version)  # NotFound for an unknown version
        self._move_alias(campaign, alias, version, who=who, why=why, action="set_alias")
        return self._audit_run(
            campaign, f"set_alias {alias} -> v{version}",
            {"offerbandit.kind": "set_alias", "alias": alias, "version": version,
             "version_before": before or "", "who": who, "why": why},
            {},
        )

    def promote(
        self,
        campaign: str,
        version: str,
        *,
        gate: Callable[[str | None, str], GateResult] | None,
        force: bool = False,
        who: str,
        why: str,
    ) -> PromotionResult:
        """Move ``champion`` to ``version`` if ``gate(champion, version)`` passes, or if ``force``.

        Without a gate the candidate passes only when there is no champion yet. The replaced champion
        is kept under ``previous_champion``. A refusal changes no alias but is still recorded.
        """
        version = _check_version(version)
        _check_audit(who, why)
        if not isinstance(force, bool):
            raise InvalidInput("force must be a bool", field="force")
        if gate is not None and not callable(gate):
            raise InvalidInput("gate must be callable or None", field="gate")
        self._version_record(campaign, version)
        champion = self.resolve(campaign, CHAMPION)
        if champion == version:
            return PromotionResult(
                campaign, "promote", version, champion, champion, promoted=False, forced=force,
                reason=f"v{version} is already the champion",
            )
        verdict = gate(champion, version) if gate is not None else None
        if verdict is not None and not isinstance(verdict, GateResult):
            raise InvalidInput("gate must return a GateResult", field="gate")
        if verdict is not None:
            passed, reason = verdict.passed, verdict.reason
        elif champion is None:
            passed, reason = True, "no champion yet"
        else:
            passed, reason = False, "no gate given and a champion exists (use force)"
        promoted = passed or force
        action = "promote" if passed else ("force_promote" if force else "refused")
        if promoted:
            if champion is not None:
                self._move_alias(
                    campaign, PREVIOUS_CHAMPION, champion, who=who,
                    why=f"replaced by v{version}: {why}", action=action,
                )
            self._move_alias(campaign, CHAMPION, version, who=who, why=why, action=action)
        else:
            client = self._client()
            name = self.model_name(campaign)
            for key, value in {"promotion.refused_at": _now_iso(), "promotion.refused_why": reason}.items():
                self._call("set_model_version_tag", lambda: client.set_model_version_tag(name, version, key, value))
        run_id = self._audit_run(
            campaign, f"{action} v{version}",
            {"offerbandit.kind": "promotion", "action": action, "version": version,
             "champion_before": champion or "", "who": who, "why": why, "gate_reason": reason,
             "forced": str(force and not passed).lower()},
            verdict.as_metrics() if verdict is not None else {},
        )
        return PromotionResult(
            campaign, "promote", version, champion, version if promoted else champion,
            promoted=promoted, forced=force and not passed, reason=reason, gate=verdict, run_id=run_id,
        )

    def rollback(self, campaign: str, *, who: str, why: str) -> PromotionResult:
        """Return ``champion`` to ``previous_champion``; the rolled-back version becomes the previous one,
        so a second rollback undoes the first."""
        _check_audit(who, why)
        previous = self.resolve(campaign, PREVIOUS_CHAMPION)
        if previous is None:
            raise NotFound(f"campaign {campaign!r} has no previous champion to roll back to")
        champion = self.resolve(campaign, CHAMPION)
        self._move_alias(campaign, CHAMPION, previous, who=who, why=why, action="rollback")
        if champion is not None and champion != previous:
            self._move_alias(
                campaign, PREVIOUS_CHAMPION, champion, who=who, why=f"rolled back: {why}", action="rollback"
            )
        run_id = self._audit_run(
            campaign, f"rollback to v{previous}",
            {"offerbandit.kind": "promotion", "action": "rollback", "version": previous,
             "champion_before": champion or "", "who": who, "why": why},
            {},
        )
        return PromotionResult(
            campaign, "rollback", previous, champion, previous, promoted=True, forced=False,
            reason=f"rolled back from v{champion} to v{previous}", run_id=run_id,
        )

    def log_evaluation(
        self,
        campaign: str,
        version: str,
        metrics: Mapping[str, float],
        figures: Mapping[str, str | os.PathLike[str]],
        series: Sequence[MetricPoint] = (),
    ) -> str:
        """An evaluation run linked to a version (tags both ways), with metrics and figure files.

        Name metrics so runs line up in MLflow's compare view, e.g. ``ipw.value``, ``ipw.ci_low``,
        ``dr.lift_vs_champion``. Figures are stored as ``figures/<name><suffix>``. ``series`` adds
        metric histories (e.g. a value per day), charted by MLflow over steps or time; give them keys
        of their own, apart from ``metrics``.
        """
        version = _check_version(version)
        clean_metrics = _checked_metrics(metrics)
        clean_series = _checked_series(series)
        if not isinstance(figures, Mapping):
            raise InvalidInput("figures must be a mapping of name to file path", field="figures")
        figure_paths: dict[str, Path] = {}
        for figure_name, figure_path in figures.items():
            if not isinstance(figure_name, str) or not _NAME_PATTERN.match(figure_name):
                raise InvalidInput(f"figure name {figure_name!r} is not valid", field="figures")
            path = Path(figure_path)
            if not path.is_file():
                raise InvalidInput(f"figure {figure_name!r}: no file at {path}", field="figures")
            figure_paths[figure_name] = path
        record = self._version_record(campaign, version)
        client = self._client()
        experiment_id = self._experiment()
        name = self.model_name(campaign)
        tags = {
            "offerbandit.kind": "evaluation", "campaign": campaign, "registered_model": name,
            "version": version, "policy_name": record.tags.get("policy_name", ""),
        }
        run = self._call(
            "create_run",
            lambda: client.create_run(experiment_id, run_name=f"evaluation {campaign} v{version}", tags=tags),
        )
        run_id = run.info.run_id
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        batch = [Metric(key, value, now_ms, 0) for key, value in clean_metrics.items()]
        batch += [Metric(p.key, float(p.value), int(p.timestamp_s * 1000), p.step) for p in clean_series]
        for start in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            chunk = batch[start:start + _MAX_METRICS_PER_BATCH]
            self._call("log_batch", lambda: client.log_batch(run_id, metrics=chunk))
        if figure_paths:
            with tempfile.TemporaryDirectory(prefix="offerbandit-figures-") as staging:
                for figure_name, path in figure_paths.items():
                    target = Path(staging, figure_name if Path(figure_name).suffix else figure_name + path.suffix)
                    shutil.copyfile(path, target)
                self._call("log_artifacts", lambda: client.log_artifacts(run_id, staging, "figures"))
        self._call("set_terminated", lambda: client.set_terminated(run_id, "FINISHED"))
        self._call(
            "set_model_version_tag",
            lambda: client.set_model_version_tag(name, version, "last_evaluation_run", run_id),
        )
        return run_id


# --------------------------------------------------------------------------- store helpers


def _sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _preflight(tracking_uri: str) -> None:
    """Fail fast on a SQLite store we cannot open: MLflow itself retries for ~100 s before giving up."""
    path = _sqlite_path(tracking_uri)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)

        def probe() -> None:
            connection = sqlite3.connect(path, timeout=2.0)
            try:
                connection.execute("PRAGMA schema_version").fetchone()
            finally:
                connection.close()

        retry_when_locked(probe)
    except (OSError, sqlite3.Error) as exc:
        raise RegistryUnavailable(f"MLflow store {tracking_uri!r} cannot be opened: {exc}") from exc


def _read_artifact_files(source: str, label: str) -> tuple[bytes, bytes]:
    """Fetch ``model.bin`` and ``config.toml`` from a version's source; any failure is a ModelError."""
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="offerbandit-load-") as staging:
        try:
            local = Path(download_artifacts(artifact_uri=source, dst_path=staging))
            return (local / MODEL_FILE).read_bytes(), (local / CONFIG_FILE).read_bytes()
        except Exception as exc:
            raise ModelError(f"{label}: artefact files cannot be read from {source}: {exc}") from exc


def write_template_store(path: str | os.PathLike[str]) -> Path:
    """Create a migrated, empty MLflow SQLite store at ``path`` (a .db file) to copy from later.

    Migrating a store takes seconds; tests migrate one template per session and copy it per test.
    """
    target = Path(path).expanduser().resolve()
    if target.exists():
        raise InvalidInput(f"{target} already exists", field="path")
    target.parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    uri = f"sqlite:///{target}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return target


def copy_store(template: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> RegistryConfig:
    """Copy a template store to ``<data_dir>/mlflow.db``; the config points there (artifacts beside it)."""
    source = Path(template)
    if not source.is_file():
        raise InvalidInput(f"no template store at {source}", field="template")
    root = Path(data_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, root / "mlflow.db")
    return RegistryConfig(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlflow-artifacts"))
