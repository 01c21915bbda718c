"""The Ray Serve config document of an app: what ``serve deploy`` reads and a KubeRay RayService
carries as ``spec.serveConfigV2``, built from the same ``ServeAppConfig`` that ``serve.llm.app.start``
runs locally (app name, route prefix, HTTP options, and ``args`` that ``build_app`` turns back into it).

    python -m serve.llm.serve_document serve/llm/serve_config.cluster.yaml --rayservice cluster/rayservice.yaml

rewrites the RayService's ``serveConfigV2`` from the cluster Serve config (the one source of truth);
tests/cluster/test_serve_document.py fails when the committed manifest has drifted from it.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from serve.llm.config import ServeAppConfig

IMPORT_PATH = "serve.llm.app:build_app"


def app_config(serve_config_file: Path, index: int = 0) -> ServeAppConfig:
    """The ``ServeAppConfig`` of one application of a Serve config file, HTTP options folded in."""
    doc = yaml.safe_load(Path(serve_config_file).read_text())
    app = doc["applications"][index]
    http = doc.get("http_options") or {}
    return ServeAppConfig.model_validate({**app.get("args", {}), "app_name": app["name"],
                                          "route_prefix": app.get("route_prefix", "/"),
                                          **({"http_host": http["host"]} if "host" in http else {}),
                                          **({"http_port": http["port"]} if "port" in http else {})})


def serve_document(app: ServeAppConfig, proxy_location: str = "EveryNode") -> dict[str, Any]:
    """The Serve config document that deploys ``app`` exactly as ``start(app)`` does."""
    return {
        "proxy_location": proxy_location,
        "http_options": {"host": app.http_host, "port": app.http_port},
        "applications": [{
            "name": app.app_name,
            "route_prefix": app.route_prefix,
            "import_path": IMPORT_PATH,
            "args": {"llm": app.llm.model_dump(mode="json", exclude_unset=True)},
        }],
    }


def render_rayservice(manifest_text: str, app: ServeAppConfig) -> str:
    """The RayService manifest with its ``serveConfigV2`` block replaced; comments elsewhere are kept."""
    body = yaml.safe_dump(serve_document(app), sort_keys=False, default_flow_style=False)
    block = "  serveConfigV2: |\n" + "".join(f"    {line}\n" for line in body.splitlines())
    new, n = re.subn(r"  serveConfigV2: \|\n(?:    .*\n|\n)*", lambda _: block, manifest_text, count=1)
    if n != 1:
        raise ValueError("the manifest has no `  serveConfigV2: |` block under spec to replace")
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("serve_config", type=Path, help="A Serve config file (serve/llm/serve_config*.yaml).")
    parser.add_argument("--rayservice", type=Path, help="Rewrite this RayService manifest's serveConfigV2.")
    args = parser.parse_args()
    app = app_config(args.serve_config)
    if args.rayservice:
        args.rayservice.write_text(render_rayservice(args.rayservice.read_text(), app))
    else:
        print(yaml.safe_dump(serve_document(app), sort_keys=False), end="")


if __name__ == "__main__":
    main()
