"""A real S3 API on loopback for the cluster tests: moto's standalone server (``moto_server``).

Every process that talks to it (this test process, Ray workers, a submitted job, the MLflow
server) finds it through the standard AWS variables of ``s3_env``: botocore reads
``AWS_ENDPOINT_URL``, MLflow ``MLFLOW_S3_ENDPOINT_URL``; s3fs goes through botocore.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

S3_PORT = 18795
BUCKET = "llmflow"


def s3_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def start_s3_server(log: Path, port: int = S3_PORT, timeout_s: float = 60) -> tuple[subprocess.Popen, str]:
    """``moto_server`` on 127.0.0.1:port in its own session, with the bucket ``llmflow`` created."""
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        stop_s3_server(proc)
        raise RuntimeError(f"moto_server did not answer on {endpoint} within {timeout_s} s")
    import boto3

    boto3.client("s3", endpoint_url=endpoint, **_keys()).create_bucket(Bucket=BUCKET)
    return proc, endpoint


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def stop_s3_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def set_env(endpoint: str) -> dict[str, str | None]:
    """Point this process at the server; returns what to restore."""
    env = s3_env(endpoint)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
