"""Policy versions: publish one (a run with the files, a registered version with lineage and checksum
tags) and read one back verified.

Each version's run holds the files under ``policy/``::

    policy/model.bin      the policy's ``save()`` bytes
    policy/config.toml    the campaign/policy configuration it was trained with

and the version carries its lineage as tags (``parent_version``, ``log_window_start``,
``log_window_end``, ``event_count``, ``code_version``, ``policy_name``) plus sha256 checksums that
``load_version`` verifies.
"""
from __future__ import annotations

import functools
import hashlib
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from offerbandit.errors import InvalidInput, ModelError
from policy_registry.aliases import move_alias_recorded
from policy_registry.ledger import AliasLedger
from policy_registry.records import ARTIFACT_FORMAT, Lineage, LoadedPolicy, PolicyArtifact
from policy_registry.runs import finish_run, log_values, open_run
from policy_registry.store import RegistryStore
from policy_registry.validation import check_toml, check_version, validate_alias

__all__ = ["current_code_version", "load_version", "publish"]

MODEL_FILE = "model.bin"
CONFIG_FILE = "config.toml"
ARTIFACT_DIR = "policy"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def run_name(campaign: str, version: str, policy_name: str) -> str:
    """The name of the run that published a version (``default v7 vw``)."""
    return f"{campaign} v{version} {policy_name}"


def publish(store: RegistryStore, ledger: AliasLedger, artifact: PolicyArtifact, aliases: Sequence[str]) -> str:
    """Store a new version and move ``aliases`` to it without a gate (each move recorded in ``ledger``);
    returns the version number."""
    if not isinstance(artifact, PolicyArtifact):
        raise InvalidInput("artifact must be a PolicyArtifact", field="artifact")
    if isinstance(aliases, str):
        raise InvalidInput("aliases must be a sequence of alias names", field="aliases")
    for alias in aliases:
        validate_alias(alias)
    client = store.client()
    store.experiment()
    name = store.ensure_registered_model(artifact.campaign)
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
    run = open_run(store, f"publish {artifact.campaign} {artifact.policy_name}", run_tags)
    run_id = run.info.run_id
    try:
        log_values(store, run_id, artifact.metrics, params={**lineage_tags, "policy_name": artifact.policy_name})
        with tempfile.TemporaryDirectory(prefix="offerbandit-publish-") as staging:
            Path(staging, MODEL_FILE).write_bytes(artifact.model)
            Path(staging, CONFIG_FILE).write_text(artifact.config_toml, encoding="utf-8")
            store.call("log_artifacts", lambda: client.log_artifacts(run_id, staging, ARTIFACT_DIR))
        source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_DIR}"
        model_version = store.call(
            "create_model_version",
            lambda: client.create_model_version(
                name, source=source, run_id=run_id, tags=version_tags,
                description=f"{artifact.policy_name} for {artifact.campaign}, "
                f"parent {artifact.lineage.parent_version or 'none'}",
            ),
        )
        version = str(model_version.version)
        store.call("set_tag", lambda: client.set_tag(run_id, "registered_version", version))
        # named by what product owners look for in the runs list: the campaign and the version
        store.call("update_run", lambda: client.update_run(run_id, name=run_name(artifact.campaign, version,
                                                                               artifact.policy_name)))
        finish_run(store, run_id)
    except BaseException:
        try:
            client.set_terminated(run_id, "FAILED")
        except Exception:  # noqa: BLE001 - the original failure is the one to report
            pass
        raise
    for alias in aliases:
        move_alias_recorded(store, ledger, artifact.campaign, alias, version, who="publish",
                            why="published checkpoint", action="publish")
    return version


def load_version(store: RegistryStore, campaign: str, version: str, accepted: frozenset[str] | None,
                 alias: str | None = None) -> LoadedPolicy:
    """Read a version's files back and verify them against the checksums in its tags.

    ``accepted`` (None: any) lists the policy names this code can load; ``alias`` is recorded on the
    result as the alias it was resolved through.
    """
    version = check_version(version)
    record = store.version_record(campaign, version)
    tags = dict(record.tags)
    label = f"{campaign} v{version}"
    if tags.get("artifact_format") != ARTIFACT_FORMAT:
        raise ModelError(
            f"{label}: artefact format {tags.get('artifact_format')!r} is not {ARTIFACT_FORMAT!r}"
        )
    policy_name = tags.get("policy_name", "")
    if not policy_name or (accepted is not None and policy_name not in accepted):
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
    check_toml(config_toml, ModelError)
    return LoadedPolicy(
        campaign=campaign, version=version, policy_name=policy_name,
        model=model, config_toml=config_toml, lineage=lineage, alias=alias,
    )


def _read_artifact_files(source: str, label: str) -> tuple[bytes, bytes]:
    """Fetch ``model.bin`` and ``config.toml`` from a version's source; any failure is a ModelError."""
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="offerbandit-load-") as staging:
        try:
            local = Path(download_artifacts(artifact_uri=source, dst_path=staging))
            return (local / MODEL_FILE).read_bytes(), (local / CONFIG_FILE).read_bytes()
        except Exception as exc:
            raise ModelError(f"{label}: artefact files cannot be read from {source}: {exc}") from exc
