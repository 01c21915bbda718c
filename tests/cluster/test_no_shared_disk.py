"""Ray Train steps on an object-store root take their final model, summary and logs from the bucket,
never from a folder the workers wrote on their nodes: `train.pretrain` (its workers send files to the
step's scratch folder, and read their tokens from the bucket into their own cache) and `fit` of the
post-training steps (their inputs as store references opened on the workers' nodes, rank 0's final
checkpoint in the bucket).

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

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STEPS = 4

DRIVER = """
import json, sys, time
from pathlib import Path
import ray

tokens, out, scratch, env = sys.argv[2], Path(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
steps = int(sys.argv[6])
ray.init(address=sys.argv[1], log_to_driver=False, runtime_env={"env_vars": env})

@ray.remote(num_cpus=1, resources={"llmflow_head": 1})
class HoldHead:  # the head's one CPU: both Ray Train workers go to node1 and node2
    def ping(self):
        return 1

hold = HoldHead.remote()
ray.get(hold.ping.remote())

import shutil
from components.train import outbox
from components.train.config import PretrainConfig
from components.train.steps import run_pretrain
from flows.engine.context import StepContext
from flows.engine.store import ArtifactStore

# The tokens as a committed artifact in the bucket: the driver reads its copy (this process's cache),
# the workers theirs (LLMFLOW_CACHE of their environment, another folder).
store, addr = ArtifactStore(scratch.rsplit("/.tmp/", 1)[0]), "7" * 64
tmp = store.new_temp("tokens", addr)
shutil.copytree(tokens, tmp, dirs_exist_ok=True)
store.commit(tmp, "tokens", addr, {"step": "tokens"})

seen = {}
real_collect = outbox.collect

def spy(uri, dest):  # what the driver holds at the moment it starts reading the bucket
    seen["before"] = sorted(p.name for p in Path(dest).iterdir())
    seen["uri"] = uri
    return real_collect(uri, dest)

outbox.collect = spy
ctx = StepContext(name="pretrain", output=out, inputs={"tokens": store.local_path("tokens", addr)}, scratch_uri=scratch,
                  input_uris={"tokens": store.uri("tokens", addr)}, show_progress=False)
config = PretrainConfig(model={"depth": 2}, strategy="none", num_workers=2, micro_batch_size=4,
                        num_steps=steps, warmup_steps=1, eval_every=steps, checkpoint_every=2, seed=0)
summary = run_pretrain(ctx, config)

# The post-training steps' path (components/train/fit.py): rank 0's final checkpoint, read back by the driver.
import fsspec
from components.train import fit as fit_module

def save_where(cfg):
    import ray
    from components.train.fit import rank_world, report_final

    class Saver:  # stands in for (model, tokenizer): what report_final saves into the checkpoint
        def save_pretrained(self, path):
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / "where.json").write_text(json.dumps({"node": ray.get_runtime_context().get_node_id()}))

    rank, _ = rank_world()
    # The input as every post-training worker opens it (components/train/fit.py open_ref): this node's copy.
    import time
    from components.train.fit import open_ref
    t0 = time.perf_counter()
    tokenizer = open_ref(cfg["tokenizer"])
    open_s = time.perf_counter() - t0
    report_final({"step": 1, "done": 1.0}, save=(Saver(), Saver()) if rank == 0 else None)
    return [{"rank": rank, "opened": str(tokenizer), "files": sorted(p.name for p in tokenizer.iterdir()), "open_s": open_s}]

real_remove = outbox.remove

def spy_remove(uri):  # the run folder fit() read the checkpoint from, just before it is removed
    fs, path = fsspec.core.url_to_fs(uri)
    seen["fit_run"] = uri
    seen["fit_files"] = sorted(p.rsplit("/", 1)[-1] for p in fs.find(path))
    real_remove(uri)

outbox.remove = spy_remove
post = out.with_name("post-out")
post.mkdir()
# The input as the post-training steps hand it over (input_ref: its store URI + the folder inside it). The
# workers' copy from pretraining is removed, so they must download it again, and the driver's is moved
# aside while they run: a worker given the driver's path would find nothing there.
loop_config = {"tokenizer": fit_module.input_ref(ctx, "tokens", ctx.input("tokens") / "tokenizer")}
seen["loop_config"], seen["driver_copy"] = loop_config, str(ctx.input("tokens"))
workers_copy = Path(env["LLMFLOW_CACHE"]) / "tokens" / addr[:16]
seen["workers_copy_after_pretrain"] = (workers_copy / "_COMPLETE.json").is_file()
shutil.rmtree(workers_copy)
aside = ctx.input("tokens").with_name("aside")
ctx.input("tokens").rename(aside)
t_fit = time.time()
try:
    history = fit_module.fit(save_where, loop_config, num_workers=2, cpus_per_worker=1.0, name="post", output=post,
                             subdir="adapter", storage_uri=scratch + "-post", set_tags=lambda t: seen.update(fit_tags=t))
finally:
    aside.rename(ctx.input("tokens"))
seen["fit_s"] = time.time() - t_fit
seen["where"] = json.loads((post / "adapter" / "where.json").read_text())["node"]
seen["fit_run_left"] = fsspec.core.url_to_fs(seen["fit_run"])[0].exists(seen["fit_run"])
print("RESULT " + json.dumps({**seen, "summary": summary, "history": history,
                              "driver_node": ray.get_runtime_context().get_node_id()}))
"""


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
    caches = tmp_path_factory.mktemp("caches")
    env = cluster_env(state, {"LLMFLOW_CACHE": str(caches / "driver")})
    job_env = {**s3_env(s3_endpoint), "PYTHONPATH": str(REPO), "LLMFLOW_CACHE": str(caches / "workers")}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", DRIVER, state.gcs_address, str(tokens), str(out), scratch,
                           json.dumps(job_env), str(STEPS)], env=env, text=True, capture_output=True, timeout=400, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"driver subprocess on an s3 root (pretrain + post-training fit, rank 0 off the driver's node): {time.time() - t0:.1f} s")
    post = json.loads(line.removeprefix("RESULT "))
    print(f"post-training fit: {post['fit_s']:.1f} s, of which rank 0 opening the input from the bucket: "
          f"{post['history'][0]['open_s']:.2f} s")
    return {"result": json.loads(line.removeprefix("RESULT ")), "out": out, "scratch": scratch, "caches": caches,
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


def test_post_training_fit_reads_rank0s_checkpoint_from_the_bucket(remote_run):
    result = remote_run["result"]
    assert result["fit_run"].startswith(f"{remote_run['scratch']}-post/post-"), result["fit_run"]
    assert "where.json" in result["fit_files"]  # the final checkpoint was in the bucket when fit() read it
    assert not result["fit_run_left"]  # and is removed once in the artifact
    assert remote_run["names"].get(result["where"]) in ("node1", "node2")  # written on a node not the driver's
    assert [h["rank"] for h in result["history"]] == [0]
    tags = result["fit_tags"]  # where each rank ran, for the step's MLflow run
    ranks = {tags["llmflow.train_worker.rank0.node_id"], tags["llmflow.train_worker.rank1.node_id"]}
    assert {remote_run["names"].get(n) for n in ranks} == {"node1", "node2"}
    assert result["where"] == tags["llmflow.train_worker.rank0.node_id"]


def test_workers_read_the_tokens_from_the_bucket_not_the_drivers_copy(remote_run):
    caches = remote_run["caches"]
    assert [p.parent.parent.name for p in (caches / "driver").glob("tokens/*/_COMPLETE.json")] == ["tokens"]
    assert remote_run["result"]["workers_copy_after_pretrain"]  # pretraining's workers downloaded their own
    assert [p.parent.parent.name for p in (caches / "workers").glob("tokens/*/_COMPLETE.json")] == ["tokens"]


def test_post_training_workers_open_the_input_from_its_store_uri_not_the_drivers_path(remote_run):
    """What sft/rl/distill hand their workers (input_ref): the input's store URI and a folder inside it, opened
    on the worker's node while the driver's copy was moved away and the workers' own copy deleted."""
    result, caches = remote_run["result"], remote_run["caches"]
    uri = f"{remote_run['scratch'].rsplit('/.tmp/', 1)[0]}/tokens/{'7' * 16}"
    assert result["loop_config"] == {"tokenizer": {"artifact": uri, "path": "tokenizer"}}
    assert result["driver_copy"] not in json.dumps(result["loop_config"])
    rank0 = result["history"][0]
    assert rank0["opened"] == str(caches / "workers" / "tokens" / ("7" * 16) / "tokenizer")  # downloaded again
    assert not rank0["opened"].startswith(result["driver_copy"])
    assert "tokenizer.json" in rank0["files"]
