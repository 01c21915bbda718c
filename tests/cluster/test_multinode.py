"""The cluster path end to end: `llmflow submit` of a reduced main job to a head + 2 worker nodes on
loopback, artifacts on an S3 API (moto), MLflow server with its artifacts on the same endpoint, and one
worker node (raylet and Ray Train worker) SIGKILLed mid-pretraining.

Must hold: the job succeeds; steps, the data steps' writer tasks and Ray Train workers ran on several
nodes (MLflow tags say which);
every artifact is complete in the bucket; pretraining restarted from its last checkpoint and ended at
exactly num_steps with every step logged once and no jump in the loss.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.engine import local_cluster
from flows.engine.cluster import ray_auth_env
from tests.cluster.s3_server import BUCKET, s3_env
from tests.fixtures.mlflow_store import start_mlflow_server, stop_mlflow_server

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MLFLOW_PORT = 18796
NUM_STEPS, CKPT_EVERY = 20, 5
MICRO_BATCH = 128
KILL_AFTER_STEP = 6  # past the step-5 checkpoint: the restart must resume from it, not from 0


def cluster_env(state, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **ray_auth_env(Path(state.workdir)), **(extra or {})}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "250"  # rich wraps tables to 80 columns off a terminal
    return env


def _cli(args, env, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, check=False, **kw)


def _nodes(state, env) -> dict[str, str]:
    """node id -> our node name (head, node1, node2), from the cluster's state API."""
    code = ("import json, sys; from ray.util.state import list_nodes; "
            "print(json.dumps([[n.node_id, n.resources_total, n.state] for n in list_nodes(address=sys.argv[1])]))")
    out = subprocess.run([sys.executable, "-c", code, state.dashboard_url], env=env, text=True, capture_output=True,
                         check=True).stdout
    return {nid: next(k.removeprefix("llmflow_") for k in res if k.startswith("llmflow_"))
            for nid, res, alive in json.loads(out.strip().splitlines()[-1]) if alive == "ALIVE"}


def _wait_for(path_glob, root: Path, predicate, timeout_s: float):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for p in root.glob(path_glob):
            if predicate(p):
                return p
        time.sleep(0.2)
    raise AssertionError(f"nothing matching {path_glob} under {root} within {timeout_s} s")


def _steps_logged(metrics_file: Path) -> list[int]:
    if not metrics_file.exists():
        return []
    return [json.loads(line)["step"] for line in metrics_file.read_text().splitlines() if line.strip()]


def _steps_sent(parts: str) -> list[int]:
    """Steps of the metrics log as the workers sent it to the bucket (what the driver will read)."""
    import s3fs

    bucket = s3fs.S3FileSystem(skip_instance_cache=True)
    return [json.loads(line)["step"] for p in sorted(bucket.glob(f"{parts}/*"))
            for line in bucket.cat_file(p).decode().splitlines() if line.strip()]


def _freeze_between_checkpoints(metrics: Path, victim_pid: int, snapshot: str, parts: str) -> int:
    """SIGSTOP the victim's Ray Train worker at a logged step with no checkpoint at or just after it,
    once Ray Train has registered the checkpoint before it; returns that step (the last one the first
    worker group can have logged).

    Steps take ~1-2 s here (MICRO_BATCH), still short enough that a kill "after step N" lands later unless training is
    frozen first. Stopping one rank stops the other at its next collective; after a moment the log is
    final in the bucket (``parts``: rank 0 sends each line from a background thread, and a frozen
    rank 0 sends no more). A step L with L % CKPT_EVERY in 1..CKPT_EVERY-2 is safe: no checkpoint can complete after
    it. The one before it counts only once the controller has collected every rank's report of it
    (it polls every 2 s and then writes ``snapshot``, its list of checkpoints, to storage): a rank
    killed before that takes its report along and the restart would begin at an earlier checkpoint.
    """
    import s3fs

    bucket = s3fs.S3FileSystem(skip_instance_cache=True)

    def registered(step: int) -> bool:
        bucket.invalidate_cache()
        return bucket.exists(snapshot) and f"step_{step:06d}" in bucket.cat_file(snapshot).decode()

    deadline = time.time() + 400
    while time.time() < deadline:
        logged = max(_steps_logged(metrics), default=0)
        if (logged >= KILL_AFTER_STEP and 0 < logged % CKPT_EVERY < CKPT_EVERY - 1
                and registered(CKPT_EVERY * (logged // CKPT_EVERY))):
            os.kill(victim_pid, signal.SIGSTOP)
            time.sleep(1.0)  # the other rank finishes what it can without its peer
            settled = max(_steps_sent(parts), default=0)
            if 0 < settled % CKPT_EVERY < CKPT_EVERY - 1 and settled < NUM_STEPS and settled // CKPT_EVERY == \
                    logged // CKPT_EVERY:
                return settled
            os.kill(victim_pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError(f"pretraining never paused between registered checkpoints past step {KILL_AFTER_STEP}")


@pytest.fixture(scope="module")
def mlflow_on_s3(s3_endpoint, tmp_path_factory):
    """`mlflow server` on 127.0.0.1:18796 whose artifact store is the same S3 endpoint (s3://llmflow/mlflow)."""
    workdir = tmp_path_factory.mktemp("mlflow_s3")
    os.environ["MLFLOW_ARTIFACTS_DESTINATION"] = f"s3://{BUCKET}/mlflow"  # read by mlflow/start.sh
    try:
        proc = start_mlflow_server(workdir, MLFLOW_PORT)
    finally:
        del os.environ["MLFLOW_ARTIFACTS_DESTINATION"]
    yield f"http://127.0.0.1:{MLFLOW_PORT}"
    stop_mlflow_server(proc)


def test_three_nodes_each_with_its_own_resource(multinode_cluster):
    names = _nodes(multinode_cluster, cluster_env(multinode_cluster))
    assert sorted(names.values()) == ["head", "node1", "node2"]


@pytest.fixture(scope="module")
def submitted_run(multinode_cluster, s3_endpoint, mlflow_on_s3, tmp_path_factory):
    """Submit the multinode recipe; once pretraining is past KILL_AFTER_STEP and between checkpoints,
    SIGKILL a worker node hosting a Ray Train worker (its raylet and that worker); wait for the job.
    Returns what the tests check."""
    state = multinode_cluster
    cache = tmp_path_factory.mktemp("llmflow_cache")  # the nodes' local caches (one machine: one folder)
    root = f"s3://{BUCKET}/multinode-{int(time.time())}"
    env = cluster_env(state)
    names = _nodes(state, env)
    t0 = time.time()
    job_env = {**s3_env(s3_endpoint), "MLFLOW_TRACKING_URI": mlflow_on_s3, "LLMFLOW_CACHE": str(cache)}
    sub = _cli(["submit", "multinode", "--address", state.dashboard_url, "--no-wait",
                "--set", f"artifact_root={root}", "--set", f"steps.pretrain.config.num_steps={NUM_STEPS}",
                # ~1-2 s a step instead of ~50 ms: Ray Train registers a checkpoint only after its controller's
                # next 2 s poll, and at 50 ms a step the freeze window after a registered checkpoint was gone
                # before the test saw it (CI: "never paused between registered checkpoints").
                "--set", f"steps.pretrain.config.micro_batch_size={MICRO_BATCH}",
                *(a for k, v in job_env.items() for a in ("--env", f"{k}={v}"))], env, timeout=120)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    job_id = re.search(r"submitted job (\S+)", sub.stdout).group(1)

    # Pretraining's workers write into their node's folder beside the step's temp folder (one cache on one
    # machine) and send the files to the bucket, where the driver reads them; watch the local metrics.
    metrics = _wait_for(".tmp/pretrain-*-resumable.worker/train_metrics.jsonl", cache,
                        lambda p: max(_steps_logged(p), default=0) >= 1, timeout_s=400)
    workers = [json.loads(x) for x in (metrics.parent / "train_workers.jsonl").read_text().splitlines() if x]
    victim_worker = next(w for w in workers if names.get(w["node_id"], "head") != "head")
    victim = names[victim_worker["node_id"]]
    raylets = local_cluster.node_processes(state.node(victim), "raylet")
    assert len(raylets) == 1
    scratch = f"{root.removeprefix('s3://')}/.tmp/{metrics.parent.name.removesuffix('.worker')}"  # Ray Train's storage_path
    killed_after = _freeze_between_checkpoints(metrics, victim_worker["pid"],
                                               f"{scratch}/pretrain-pretrain/checkpoint_manager_snapshot.json",
                                               f"{scratch}/outputs/train_metrics.jsonl.parts")
    killed_at = time.time()
    # The whole node dies at once: its raylet and the (frozen) Ray Train worker on it. Killing only the
    # raylet let the worker run on until it noticed (Ray checks its raylet about once a second), and at
    # ~50 ms a step it trained on past the next checkpoint, or to the end, before the group restarted.
    os.kill(victim_worker["pid"], signal.SIGKILL)
    os.kill(raylets[0], signal.SIGKILL)
    # Recovery: the first step logged by the restarted worker group (the log's length grows past the kill).
    n_before = len(_steps_logged(metrics))
    _wait_for(metrics.name, metrics.parent, lambda p: len(_steps_logged(p)) > n_before
              and (metrics.parent / "train_workers.jsonl").read_text().count("\n") > len(workers), timeout_s=300)
    recovered_s = time.time() - killed_at
    # Checkpoints live in the bucket (the root's .tmp/, removed once the step commits), none on a node's disk.
    import s3fs

    bucket = s3fs.S3FileSystem(skip_instance_cache=True)  # no listing cached from before the run
    s3_checkpoints = sorted(Path(p).name for p in bucket.glob(f"{scratch}/*/step_*"))
    local_checkpoints = sorted(p.name for p in metrics.parent.glob("checkpoints/step_*"))
    resumes_file = metrics.parent / "train_resumes.jsonl"
    resumes = [json.loads(x) for x in resumes_file.read_text().splitlines() if x] if resumes_file.exists() else []

    follow = _cli(["status", "--job", job_id, "--address", state.dashboard_url], env, timeout=60)
    deadline = time.time() + 400
    while "SUCCEEDED" not in follow.stdout and "FAILED" not in follow.stdout and time.time() < deadline:
        time.sleep(2)
        follow = _cli(["status", "--job", job_id, "--address", state.dashboard_url], env, timeout=60)
    logs_code = ("import sys; from ray.job_submission import JobSubmissionClient as C; "
                 "print(C(sys.argv[1]).get_job_logs(sys.argv[2]))")
    logs = subprocess.run([sys.executable, "-c", logs_code, state.dashboard_url, job_id],
                          env=env, text=True, capture_output=True, check=False).stdout
    print(f"job {job_id}: wall {time.time() - t0:.1f} s, killed {victim} after step {killed_after}, "
          f"first step after the restart {recovered_s:.1f} s later")
    return {"job_id": job_id, "status": follow.stdout, "logs": logs, "root": root, "mlflow": mlflow_on_s3,
            "names": names, "victim": victim, "killed_after": killed_after, "recovered_s": recovered_s,
            "scratch": scratch, "s3_checkpoints": s3_checkpoints, "local_checkpoints": local_checkpoints,
            "resumes": resumes}


@pytest.mark.slow
def test_submitted_job_succeeds_after_a_node_loss(submitted_run):
    assert "SUCCEEDED" in submitted_run["status"], submitted_run["status"] + submitted_run["logs"][-4000:]
    assert "llmflow run multinode" in submitted_run["status"]


def _flow_runs(uri: str):
    from components.tracking.mlflow_tracking import search_runs

    runs = search_runs(uri, "llmflow")
    parent = max((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time)
    children = {r.data.tags["llmflow.step"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, children


@pytest.mark.slow
def test_steps_and_train_workers_ran_on_several_nodes(submitted_run):
    _, children = _flow_runs(submitted_run["mlflow"])
    assert sorted(children) == ["corpus", "dedup", "pretrain", "tokenizer", "tokens"]
    assert all(r.info.status == "FINISHED" for r in children.values())
    step_nodes = {r.data.tags["llmflow.node_id"] for r in children.values()}
    tags = children["pretrain"].data.tags
    rank_nodes = {tags["llmflow.train_worker.rank0.node_id"], tags["llmflow.train_worker.rank1.node_id"]}
    assert len(rank_nodes) == 2, "the two Ray Train workers (1 CPU each) ran on one node"
    used = step_nodes | set(tags["llmflow.train_worker.nodes"].split(","))
    assert set(submitted_run["names"]) <= used  # head, node1 and node2 all did work (node ids, before the kill)


@pytest.mark.slow
def test_data_steps_spread_their_writers_over_the_nodes(submitted_run, s3_endpoint):
    """data.dedup and tokenize.pack (blocks of 50 of the 200 documents: 4 each) ran their writer tasks
    on more than one node, each writing its block's shards; the writers on a node other than the step's
    sent theirs through the bucket (they never write into the step's folder, which a node of a real
    cluster would not have), and every shard is in the committed artifact."""
    import s3fs

    _, children = _flow_runs(submitted_run["mlflow"])
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    root = submitted_run["root"].removeprefix("s3://")
    for step in ("dedup", "tokens"):
        tags = children[step].data.tags
        by_node = json.loads(tags["llmflow.data.blocks_by_node"])
        print(f"{step}: blocks by node {({submitted_run['names'].get(n, n): k for n, k in by_node.items()})}, step on "
              f"{submitted_run['names'].get(tags['llmflow.node_id'])}, sent back {tags['llmflow.data.blocks_sent_back']}")
        assert sum(by_node.values()) == 4, (step, by_node)
        assert set(by_node) <= set(submitted_run["names"]), (step, by_node)
        assert len(by_node) >= 2, f"{step}: every block's writer ran on one node: {by_node}"
        assert tags["llmflow.data.writer_nodes"] == ",".join(sorted(by_node))
        elsewhere = sum(n for node, n in by_node.items() if node != tags["llmflow.node_id"])
        assert int(tags["llmflow.data.blocks_sent_back"]) == elsewhere > 0, (step, tags["llmflow.node_id"], by_node)
    (dedup,) = fs.ls(f"{root}/dedup")
    assert len(fs.glob(f"{dedup}/docs/part-*.parquet")) == 4  # one shard per block, each block keeps documents
    (tokens,) = fs.ls(f"{root}/tokens")
    manifest = json.loads(fs.cat_file(f"{tokens}/manifest.json"))
    written = {p.removeprefix(f"{tokens}/") for p in fs.find(tokens)}
    assert set(manifest["train"]) | set(manifest["val"]) <= written
    assert {p.split("-")[1] for p in manifest["train"]} >= {f"{b:05d}" for b in range(4)}  # every block wrote


@pytest.mark.slow
def test_artifacts_and_mlflow_artifacts_are_in_the_bucket(submitted_run, s3_endpoint):
    import s3fs

    fs = s3fs.S3FileSystem()
    root = submitted_run["root"].removeprefix("s3://")
    for step in ("corpus", "dedup", "tokenizer", "tokens", "pretrain"):
        (artifact,) = fs.ls(f"{root}/{step}")
        assert fs.exists(f"{artifact}/_COMPLETE.json"), step
    pretrain = fs.ls(f"{root}/pretrain")[0]
    assert fs.exists(f"{pretrain}/model/config.json")
    parent, _ = _flow_runs(submitted_run["mlflow"])
    assert fs.glob(f"{BUCKET}/mlflow/**/{parent.info.run_id}/**"), "the flow's MLflow artifacts are not on S3"


@pytest.mark.slow
def test_pretraining_resumed_from_its_checkpoint_with_exact_steps(submitted_run, s3_endpoint):
    import s3fs

    fs = s3fs.S3FileSystem()
    pretrain = fs.ls(f"{submitted_run['root'].removeprefix('s3://')}/pretrain")[0]
    summary = json.loads(fs.cat_file(f"{pretrain}/train_summary.json"))
    lines = [json.loads(x) for x in fs.cat_file(f"{pretrain}/train_metrics.jsonl").decode().splitlines() if x]
    assert summary["steps"] == NUM_STEPS
    first, again = {}, {}
    for rec in lines:  # the steps between the checkpoint and the kill were logged twice
        (again if rec["step"] in first else first)[rec["step"]] = rec["metrics"]
    assert sorted(first) == list(range(1, NUM_STEPS + 1))  # every step, none past the end
    assert [first[s]["samples_consumed"] for s in sorted(first)] == [2 * MICRO_BATCH * s for s in range(1, NUM_STEPS + 1)]  # 2 workers
    assert submitted_run["recovered_s"] < 240


@pytest.mark.slow
def test_the_restart_resumed_from_the_last_checkpoint_before_the_kill(submitted_run, s3_endpoint):
    import s3fs

    fs = s3fs.S3FileSystem()
    pretrain = fs.ls(f"{submitted_run['root'].removeprefix('s3://')}/pretrain")[0]
    summary = json.loads(fs.cat_file(f"{pretrain}/train_summary.json"))
    lines = [json.loads(x) for x in fs.cat_file(f"{pretrain}/train_metrics.jsonl").decode().splitlines() if x]
    first, again = {}, {}
    for rec in lines:
        (again if rec["step"] in first else first)[rec["step"]] = rec["metrics"]
    # The re-run steps start right after the last checkpoint before the kill.
    assert again, f"no step was re-run after the kill (summary: {summary})"
    resumed = min(again) - 1
    assert resumed == CKPT_EVERY * (submitted_run["killed_after"] // CKPT_EVERY) and resumed > 0
    assert int(summary["resumed_from_step"]) in (resumed, NUM_STEPS), summary
    # Continuous: the restarted group re-ran the steps after its checkpoint and got the same losses
    # (same weights, optimizer state and data position; fp32 DDP differs only in summation order).
    assert len(again) >= submitted_run["killed_after"] - resumed
    for step, rec in again.items():
        assert abs(rec["loss"] - first[step]["loss"]) < 1e-3, (step, rec["loss"], first[step]["loss"])
    assert submitted_run["recovered_s"] < 240


@pytest.mark.slow
def test_checkpoints_are_in_the_bucket_and_the_restart_read_one_from_there(submitted_run, s3_endpoint):
    import s3fs

    assert submitted_run["s3_checkpoints"], f"no Ray Train checkpoint under s3://{submitted_run['scratch']}"
    assert submitted_run["local_checkpoints"] == [], "checkpoints were written to a node's local disk"
    assert submitted_run["resumes"], "the restarted workers found no checkpoint (they began at step 0)"
    first = submitted_run["resumes"][0]  # the restart after the node kill
    resumed = CKPT_EVERY * (submitted_run["killed_after"] // CKPT_EVERY)
    assert first["step"] == resumed
    assert first["checkpoint"] == f"{submitted_run['scratch']}/pretrain-pretrain/step_{resumed:06d}", first
    bucket = s3fs.S3FileSystem(skip_instance_cache=True)
    assert not bucket.exists(submitted_run["scratch"]), "the committed step left its checkpoints behind"
