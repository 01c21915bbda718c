"""Manifests that agree with the code: the RayService's serveConfigV2 is what serve.llm.serve_document
builds from the cluster Serve config, and every pod mounts what the recipes it runs read."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.recipe import load_recipe
from serve.llm.config import ServeAppConfig
from serve.llm.serve_document import app_config, render_rayservice, serve_document

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"


def test_rayservice_serve_config_is_generated_from_the_cluster_serve_config():
    text = (CLUSTER / "rayservice.yaml").read_text()
    app = app_config(REPO / "serve" / "llm" / "serve_config.cluster.yaml")
    assert render_rayservice(text, app) == text, ("cluster/rayservice.yaml drifted: run python -m "
                                                  "serve.llm.serve_document serve/llm/serve_config.cluster.yaml "
                                                  "--rayservice cluster/rayservice.yaml")
    served = yaml.safe_load(yaml.safe_load(text)["spec"]["serveConfigV2"])
    (entry,) = served["applications"]
    # What the operator deploys is what `serve.llm.app.start(app)` runs locally: build_app validates the
    # same args into the same config, under the same name, prefix and HTTP options.
    assert ServeAppConfig.model_validate(entry["args"]).llm == app.llm
    assert (entry["name"], entry["route_prefix"]) == (app.app_name, app.route_prefix)
    assert served["http_options"] == {"host": app.http_host, "port": app.http_port}


def test_local_serve_config_file_is_the_same_document():
    path = REPO / "serve" / "llm" / "serve_config.yaml"
    on_disk = yaml.safe_load(path.read_text())
    assert serve_document(app_config(path), proxy_location=on_disk["proxy_location"]) == on_disk


def _pods(doc):
    spec = doc["spec"].get("rayClusterSpec") or doc["spec"].get("rayClusterConfig") or doc["spec"]
    yield spec["headGroupSpec"]["template"]["spec"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["template"]["spec"]


@pytest.mark.parametrize("manifest, recipe", [("raycluster.yaml", "flows/recipes/e2e-gpu.yaml"),
                                              ("rayjob.yaml", "flows/recipes/pretrain-1b-gpu.yaml")])
def test_every_pod_mounts_what_the_recipe_reads(manifest, recipe):
    doc = yaml.safe_load((CLUSTER / manifest).read_text())
    r = load_recipe(REPO / recipe)
    paths = [p for name in r.order for p in (getattr(r.configs[name], "paths", None) or [])]
    assert paths, f"{recipe} reads no local paths: nothing to check"
    for pod in _pods(doc):
        (container,) = pod["containers"]
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        for p in paths:
            assert any(p == m or p.startswith(m.rstrip("/") + "/") for m in mounts), (manifest, p, mounts)
        if r.model.artifact_root.startswith("s3://"):
            env = {e["name"] for e in container.get("env", [])}
            assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env, (manifest, "no S3 credentials")
