"""MLflow model registry for the eval gate: model versions, their metrics, and aliases.

The gate compares a candidate against whatever version holds the ``champion`` alias.
Each version carries its evaluation metrics as tags (``metric.<name>``), so the gate
never needs the champion's original run to still be around.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METRIC_TAG_PREFIX = "metric."


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    source: str
    metrics: dict[str, float]
    tags: dict[str, str]


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _as_version(mv: Any) -> RegisteredVersion:
    tags = dict(mv.tags or {})
    metrics = {k[len(METRIC_TAG_PREFIX):]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG_PREFIX)}
    return RegisteredVersion(mv.name, str(mv.version), mv.source, metrics, tags)


def register_version(tracking_uri: str, name: str, source: str, metrics: dict[str, float],
                     tags: dict[str, str] | None = None, run_id: str | None = None) -> RegisteredVersion:
    """Create a new version of ``name`` (creating the registered model on first use)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="llmflow chat model; aliases set by the eval gate")
    all_tags = {**(tags or {}), **{f"{METRIC_TAG_PREFIX}{k}": repr(float(v)) for k, v in metrics.items()}}
    mv = client.create_model_version(name, source=source, run_id=run_id, tags=all_tags)
    return _as_version(client.get_model_version(name, mv.version))


def version_by_alias(tracking_uri: str, name: str, alias: str) -> RegisteredVersion | None:
    """The version holding ``alias``, or None when the model or the alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        return _as_version(client.get_model_version_by_alias(name, alias))
    except MlflowException as e:
        if "not found" in str(e).lower() or "RESOURCE_DOES_NOT_EXIST" in str(e):
            return None
        raise


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    _client(tracking_uri).set_registered_model_alias(name, alias, version)


def delete_alias(tracking_uri: str, name: str, alias: str) -> None:
    _client(tracking_uri).delete_registered_model_alias(name, alias)


def set_version_tags(tracking_uri: str, name: str, version: str, tags: dict[str, str]) -> None:
    client = _client(tracking_uri)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))
