"""Every manifest in cluster/ parses and points at things that exist: recipes, the image, the app."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from flows.recipe import load_recipe

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
REPO = CLUSTER.parent
MANIFESTS = sorted(CLUSTER.glob("*.yaml"))


def _walk(node, key):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def _pinned_ray() -> str:
    return re.search(r'ray\[[^\]]*\]==([\d.]+)', (REPO / "pyproject.toml").read_text()).group(1)


def _built_image() -> str:
    return re.search(r"-t (\S+)", (CLUSTER / "Dockerfile").read_text()).group(1)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_parses_and_references_exist(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        for image in _walk(doc, "image"):
            assert image == _built_image(), f"{path.name} runs {image}, but cluster/Dockerfile builds {_built_image()}"
        for version in _walk(doc, "rayVersion"):
            assert version == _pinned_ray()
        for entry in _walk(doc, "entrypoint"):
            argv = shlex.split(entry)
            assert argv[:2] == ["llmflow", "run"], entry
            load_recipe(REPO / argv[2])  # exists and validates


def test_dockerfile_base_matches_pinned_ray():
    base = re.search(r"^FROM (\S+)", (CLUSTER / "Dockerfile").read_text(), re.M).group(1)
    assert f":{_pinned_ray()}-" in base


def test_rayservice_app_config_validates():
    from serve.llm.config import ServeAppConfig

    svc = yaml.safe_load((CLUSTER / "rayservice.yaml").read_text())
    serve_cfg = yaml.safe_load(svc["spec"]["serveConfigV2"])
    for app in serve_cfg["applications"]:
        module, _, attr = app["import_path"].partition(":")
        assert (REPO / Path(*module.split("."))).with_suffix(".py").exists()
        ServeAppConfig.model_validate(app["args"])


def test_runtime_env_excludes_local_state():
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert {".venv", ".llmflow", "mlflow.db"} <= set(env["excludes"])
    assert "MLFLOW_TRACKING_URI" in env["env_vars"]
