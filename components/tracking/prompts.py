"""Prompts as code: templates live in the repo and are mirrored into MLflow's prompt registry.

``sync_prompt`` registers a template only when it differs from the latest registered
version, so re-running a flow or restarting a replica does not mint new versions; the
returned ``PromptRef`` (name, version, uri) is what evaluations and traces record.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptRef:
    name: str
    version: int
    template: str

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"

    def format(self, **values: str) -> str:
        # MLflow's double-brace syntax; done here so formatting needs no MLflow round trip.
        out = self.template
        for k, v in values.items():
            out = out.replace("{{" + k + "}}", str(v)).replace("{{ " + k + " }}", str(v))
        return out


def _use(tracking_uri: str):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow


def sync_prompt(tracking_uri: str, name: str, template: str, commit_message: str = "") -> PromptRef:
    """Return the registered version equal to ``template``, registering a new one if needed."""
    mlflow = _use(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest")
    except MlflowException as e:
        if "not found" not in str(e).lower():
            raise
        latest = None
    if latest is not None and latest.template == template:
        return PromptRef(name, int(latest.version), latest.template)
    pv = mlflow.genai.register_prompt(name=name, template=template,
                                      commit_message=commit_message or f"sync {name} from llmflow code",
                                      tags={"source": "llmflow"})
    return PromptRef(name, int(pv.version), pv.template)


def load_prompt(tracking_uri: str, name: str, version: int | str = "latest") -> PromptRef:
    """Load ``prompts:/name/version`` (or ``@latest``)."""
    mlflow = _use(tracking_uri)
    uri = f"prompts:/{name}@latest" if str(version) == "latest" else f"prompts:/{name}/{version}"
    pv = mlflow.genai.load_prompt(uri)
    return PromptRef(name, int(pv.version), pv.template)
