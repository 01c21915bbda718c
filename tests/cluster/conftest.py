"""Fixtures of the cluster tests: an S3 API on loopback (moto) and a head + 2 worker-node Ray cluster.

Both are session-scoped: a 3-node cluster costs ~20 s to start on 2 cores, so every cluster test
shares one (tests that kill a node restart just that node before they return).
"""
from __future__ import annotations

import pytest

from tests.cluster.s3_server import (
    restore_env,
    set_env,
    start_s3_server,
    stop_s3_server,
)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on 127.0.0.1:18795 with bucket ``llmflow``; this process's AWS variables point at it."""
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    proc, endpoint = start_s3_server(log)
    old = set_env(endpoint)
    yield endpoint
    restore_env(old)
    stop_s3_server(proc)


@pytest.fixture(scope="session")
def multinode_cluster(tmp_path_factory):
    """A Ray head + 2 worker nodes (1 CPU each, ports 18750–18794), each a `ray start` process on loopback.

    Yields the ``ClusterState``; talk to it from subprocesses with ``cluster_env(state)`` (this test
    process keeps its own Ray settings for the suite's in-process cluster).
    """
    from flows.engine import local_cluster

    workdir = tmp_path_factory.mktemp("multinode")
    state = local_cluster.up(workdir, num_workers=2, num_cpus_per_node=1, object_store_mb=150)
    yield state
    local_cluster.down(workdir)
