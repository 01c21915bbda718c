"""`train.pretrain` on an object-store root takes its final model, summary and logs from the bucket,
never from a folder the Ray Train workers wrote on their nodes.

On one machine every "node" shares this disk, so the proof is what the driver holds when it starts
collecting: its output folder must still be empty (the workers were never given its path), and once
the step returns its files must be the bucket's, byte for byte, with the workers' own folder gone.
The head's CPU is held, so both workers (and rank 0) run on the two worker nodes, not the driver's.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from flows.engine import local_cluster
from tests.cluster.s3_server import BUCKET, s3_env
from tests.cluster.test_multinode import REPO, _nodes, cluster_env
from tests.fixtures.token_shards import make_token_shards

pytestmark = pytest.mark.integration
STEPS = 4

DRIVER = """
import json, sys
from pathlib import Path
import ray

tokens, out, scratch, env = sys.argv[2], Path(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
ray.init(address=sys.argv[1], log_to_driver=False, runtime_env={"env_vars": env})

@ray.remote(num_cpus=1, resources={"llmflow_head": 1})
class HoldHead:  # the head's one CPU: both Ray Train workers go to node1 and node2
    def ping(self):
        return 1

hold = HoldHead.remote()
ray.get(hold.ping.remote())

from components.train import outbox
from components.train.config import PretrainConfig
from components.train.steps import run_pretrain
from flows.engine.context import StepContext

seen = {}
real_collect = outbox.collect

def spy(uri, dest):  # what the driver holds at the moment it starts reading the bucket
    seen["before"] = sorted(p.name for p in Path(dest).iterdir())
    seen["uri"] = uri
    return real_collect(uri, dest)

outbox.collect = spy
ctx = StepContext(name="pretrain", output=out, inputs={"tokens": Path(tokens)}, scratch_uri=scratch,
                  show_progress=False)
config = PretrainConfig(model={"depth": 2}, strategy="none", num_workers=2, micro_batch_size=4,
                        num_steps=%d, warmup_steps=1, eval_every=%d, checkpoint_every=2, seed=0)
summary = run_pretrain(ctx, config)
print("RESULT " + json.dumps({**seen, "summary": summary, "driver_node": ray.get_runtime_context().get_node_id()}))
""" % (STEPS, STEPS)


@pytest.fixture(scope="module")
def remote_run(multinode_cluster, s3_endpoint, stdlib_texts, tiny_tokenizer_dir, tmp_path_factory):
    state = multinode_cluster
    for plan in state.nodes[1:]:  # a node an earlier test killed comes back first
        if not plan.pid or not local_cluster.node_processes(plan, "raylet"):
            local_cluster.restart_node(state.workdir, plan.name)
    state = local_cluster.read_state(state.workdir)
    tokens = make_token_shards(stdlib_texts, tiny_tokenizer_dir, tmp_path_factory.mktemp("tokens"), seq_len=64)
    out = tmp_path_factory.mktemp("nsd") / "pretrain-out"
    scratch = f"s3://{BUCKET}/no-shared-disk-{int(time.time())}/.tmp/pretrain"
    env = cluster_env(state)
    job_env = {**s3_env(s3_endpoint), "PYTHONPATH": str(REPO)}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", DRIVER, state.gcs_address, str(tokens), str(out), scratch,
                           json.dumps(job_env)], env=env, text=True, capture_output=True, timeout=400, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"pretrain on an s3 root, rank 0 off the driver's node: {time.time() - t0:.1f} s")
    return {"result": json.loads(line.removeprefix("RESULT ")), "out": out, "scratch": scratch,
            "names": _nodes(state, env)}


def test_the_driver_held_nothing_the_workers_wrote_before_it_read_the_bucket(remote_run):
    result, out = remote_run["result"], remote_run["out"]
    assert result["before"] == [], f"the workers wrote into the driver's folder: {result['before']}"
    assert result["uri"] == f"{remote_run['scratch']}/outputs"
    assert not out.with_name(out.name + ".worker").exists(), "the workers' own folder was left behind"
    assert (out / "model" / "config.json").is_file()
    assert result["summary"]["steps"] == STEPS


def test_the_files_are_the_buckets_and_rank0_ran_on_another_node(remote_run, s3_endpoint):
    import s3fs

    out = remote_run["out"]
    bucket = s3fs.S3FileSystem(skip_instance_cache=True)
    sent = remote_run["scratch"].removeprefix("s3://") + "/outputs"
    assert json.loads(bucket.cat_file(f"{sent}/train_summary.json")) == json.loads(
        (out / "train_summary.json").read_text())
    assert bucket.cat_file(f"{sent}/model/config.json") == (out / "model" / "config.json").read_bytes()
    steps = [json.loads(x)["step"] for x in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))
    workers = [json.loads(x) for x in (out / "train_workers.jsonl").read_text().splitlines()]
    assert sorted(w["rank"] for w in workers) == [0, 1]
    rank_nodes = {remote_run["names"].get(w["node_id"]) for w in workers}
    assert rank_nodes == {"node1", "node2"}, rank_nodes  # the driver is on the head: no rank shared its disk
    assert remote_run["result"]["driver_node"] not in {w["node_id"] for w in workers}
