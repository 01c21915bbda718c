"""Integration: the engine's serving metrics reach Ray's Prometheus endpoint next to Serve's own.

vLLM's ``RayPrometheusStatLogger`` (set in serve/llm/deployment.py) records through ``ray.util.metrics``;
Ray's metrics agent exports them in Prometheus text format on the node's metrics port.
"""
from __future__ import annotations

import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration

# Prometheus names after Ray's export ("vllm:" becomes "vllm_", Ray adds its "ray_" prefix).
ENGINE_METRICS = ("time_to_first_token_seconds", "inter_token_latency_seconds", "num_requests_waiting",
                  "generation_tokens")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_ttft_tpot_queue_depth_and_serve_metrics_on_prometheus(client, llm_app):
    import ray

    for i in range(3):
        client.completions.create(model="tiny", prompt=f"The module {i}", max_tokens=8, temperature=0)
    port = ray.nodes()[0]["MetricsExportPort"]
    text, deadline = "", time.time() + 60  # the agent exports on an interval (~10 s)
    while time.time() < deadline:
        text = _scrape(port)
        if all(f"vllm_{m}" in text for m in ENGINE_METRICS) and "serve_num_http_requests" in text:
            break
        time.sleep(3)
    missing = [m for m in ENGINE_METRICS if f"vllm_{m}" not in text]
    assert not missing, f"engine metrics missing from :{port}/metrics: {missing}"
    assert "serve_num_http_requests" in text  # Serve's own request counter, same endpoint
