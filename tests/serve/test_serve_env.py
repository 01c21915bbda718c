"""Integration: Serve on a local cluster runs in the mode llmflow ships (flows/engine/cluster.py SERVE_ENV):
the throughput mode, with handle routers in their own loop (sync and streaming calls from a plain
driver work) and no load-balancer drain when an app stops."""
from __future__ import annotations

import os
import time

import httpx
import pytest

from flows.engine.cluster import SERVE_ENV
from tests.serve.llm_app_settings import HTTP_PORT

pytestmark = pytest.mark.integration

PROBE = "serve-env-probe"


def test_replicas_run_the_shipped_mode_and_stop_without_a_drain(llm_app):
    from ray import serve

    @serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
    class Probe:
        async def __call__(self, request):
            return self.env()

        def env(self) -> dict:
            return {k: os.environ.get(k) for k in SERVE_ENV}

        def count(self, n: int):
            yield from range(n)

    handle = serve.run(Probe.bind(), name=PROBE, route_prefix=f"/{PROBE}")
    try:
        assert handle.env.remote().result() == SERVE_ENV  # a sync call from this (non-async) driver
        assert list(handle.options(stream=True).count.remote(3)) == [0, 1, 2]
        reply = httpx.get(f"http://127.0.0.1:{HTTP_PORT}/{PROBE}", timeout=30)  # through the proxy
        assert reply.status_code == 200 and reply.json() == SERVE_ENV
    finally:
        t0 = time.perf_counter()
        serve.delete(PROBE)
        stop_s = time.perf_counter() - t0
    # An ingress replica under direct ingress waits RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S (30 s
    # by default) before it stops; the shipped setting is 0.
    assert stop_s < 15, f"deleting a one-replica app took {stop_s:.1f} s"
