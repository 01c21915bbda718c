"""cluster/*.yaml checked against the schemas their operators publish, not just parsed.

KubeRay manifests against KubeRay v1.7.0's CRDs (tests/cluster/kuberay_crds, openAPIV3Schema of
ray.io/v1), with unknown fields rejected the way ``kubectl apply --validate=strict`` rejects them;
the cluster launcher YAML against Ray's own ``ray/autoscaler/ray-schema.json``.
"""
from __future__ import annotations

import copy
import gzip
import json
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
CRDS = Path(__file__).parent / "kuberay_crds"
KINDS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}


def _strict(schema):
    """Objects with declared properties accept no others (what strict field validation does), except where
    Kubernetes keeps unknown fields on purpose (x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def crd_schema(kind: str) -> dict:
    crd = yaml.load(gzip.decompress((CRDS / f"ray.io_{KINDS[kind]}.yaml.gz").read_bytes()), Loader=yaml.CSafeLoader)
    assert crd["spec"]["names"]["kind"] == kind
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return _strict(v1["schema"]["openAPIV3Schema"])


def kuberay_manifests():
    for path in sorted(CLUSTER.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion") == "ray.io/v1":
                yield pytest.param(doc, id=f"{path.name}:{doc['kind']}")


def apply_defaults(node, schema):
    """Fill in the schema's defaults, as the API server does before it validates (``maxReplicas`` of a
    worker group is required and defaulted, for example)."""
    if isinstance(node, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in node and "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
            if key in node:
                apply_defaults(node[key], sub)
    elif isinstance(node, list) and "items" in schema:
        for item in node:
            apply_defaults(item, schema["items"])
    return node


def errors(doc: dict) -> list[str]:
    schema = crd_schema(doc["kind"])
    doc = apply_defaults(copy.deepcopy(doc), schema)
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("doc", list(kuberay_manifests()))
def test_kuberay_manifest_matches_the_published_crd(doc):
    assert errors(doc) == []


def test_the_strict_schema_catches_a_misplaced_field():
    doc = next(p.values[0] for p in kuberay_manifests() if p.values[0]["kind"] == "RayCluster")
    bad = copy.deepcopy(doc)
    bad["spec"]["headGroupSpec"]["replicas"] = 1  # a worker-group field on the head group
    del bad["spec"]["headGroupSpec"]["template"]  # a required field
    problems = errors(bad)
    assert any("replicas" in p for p in problems) and any("template" in p for p in problems), problems


def test_cluster_launcher_matches_rays_schema():
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(yaml.safe_load((CLUSTER / "cluster-launcher.yaml").read_text()), schema)
