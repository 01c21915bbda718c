from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.kinds_for_tests import ensure_registered

ensure_registered()

DIAMOND = {
    "name": "diamond",
    "steps": {
        "a": {"uses": "test.emit", "config": {"value": 1}},
        "b": {"uses": "test.emit", "config": {"value": 10}},
        "left": {"uses": "test.add", "needs": {"a": "a"}, "config": {"offset": 100}},
        "right": {"uses": "test.add", "needs": {"a": "b"}, "config": {"offset": 1000}},
        "join": {"uses": "test.add", "needs": {"a": "left", "b": "right"}, "config": {}},
    },
}


@pytest.fixture
def diamond():
    import copy

    return copy.deepcopy(DIAMOND)


# -- the main job, as a new user runs it --------------------------------------------------------
# Smallest sizes that still show each stage working. The stack gets its own local Ray head (the
# one `llmflow run` starts for serving) with Serve on its own port, beside the test session's cluster.
E2E_HTTP_PORT = 18600  # unused by any other test server (18000-18500 are taken)
# At these sizes only rag_eval's effect shows (the others are flagged "no effect", which the tests check);
# every step still runs its real engine (FSDP2 on 2 workers, vLLM rollouts, the spec-decoding app).
E2E_SMALLEST = [
    "steps.pretrain.config.num_steps=10", "steps.pretrain.config.eval_every=10",
    "steps.pretrain.config.checkpoint_every=10", "steps.pretrain.config.micro_batch_size=2",
    "steps.draft.config.num_steps=10", "steps.sft.config.num_steps=4", "steps.sft.config.batch_size=4",
    "steps.grpo.config.num_steps=2", "steps.grpo.config.prompts_per_step=2", "steps.grpo.config.group_size=2",
    "steps.evaluate.config.max_questions=4", "steps.index.config.max_docs=20", "steps.rag_eval.config.num_queries=10",
    f"steps.serve.config.app.http_port={E2E_HTTP_PORT}",
]


def _llmflow(args: list[str], workdir, env: dict, timeout_s: float):
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).with_name("llmflow"))
    return subprocess.run([cli, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout_s)


# Package scope: torn down (stack stopped) once tests/flows is done, not held through the whole session.
@pytest.fixture(scope="package")
def e2e_stack(tmp_path_factory):
    """`llmflow run e2e` exactly as a new user runs it: a fresh HOME (no ~/.ray, no token in the
    environment), the CLI in a subprocess, the persistent head it starts. Yields what tests need to
    talk to the stack it leaves running (``rerun`` runs the same command again, for ``e2e_second_run``);
    `llmflow stop` at the end of the package, which must leave none of its processes."""
    import json
    import os
    import shutil

    from tests.flows.pii_canaries import write_canary_corpus

    workdir = tmp_path_factory.mktemp("e2e")
    home = tmp_path_factory.mktemp("fresh_home")
    canaries = write_canary_corpus(workdir / "user_corpus")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "MLFLOW_TRACKING_URI", "LLMFLOW_API_KEY"))}
    env["HOME"] = str(home)
    overrides = [*E2E_SMALLEST, *E2E_CANARY_OVERRIDES, f"steps.corpus.config.paths=['{workdir / 'user_corpus'}']"]
    args = ["run", "e2e", "--workdir", str(workdir), *[a for o in overrides for a in ("--set", o)]]
    state_file = workdir / ".llmflow" / "state" / "e2e.json"
    runs = []

    def rerun() -> dict:
        i = len(runs) + 1
        r = _llmflow(args, workdir, env, timeout_s=1800)
        (workdir / f"run{i}.log").write_text(r.stdout + r.stderr)
        assert r.returncode == 0, f"run {i} failed:\n{(r.stdout + r.stderr)[-6000:]}"
        shutil.copy(state_file, workdir / f"state{i}.json")
        runs.append({"state": json.loads(state_file.read_text()), "output": r.stdout})
        return runs[-1]

    try:
        rerun()
        steps = runs[0]["state"]["steps"]
        from components.artifacts import Endpoint

        llm = Endpoint.read(steps["serve"]["uri"], served="llm")
        rag = Endpoint.read(steps["rag_serve"]["uri"], served="rag")
        key_file = llm.api_key_file
        yield {"workdir": workdir, "home": home, "env": env, "state": runs[0]["state"], "rerun": rerun,
               "output": runs[0]["output"], "llm_url": llm.url, "rag_url": rag.url, "llm": llm, "rag": rag,
               "api_key": Path(key_file).read_text().strip() if key_file else None, "canaries": canaries}
    finally:
        import psutil

        head = json.loads((workdir / ".llmflow" / "ray_head.json").read_text())
        tree = [psutil.Process(head["pid"]), *psutil.Process(head["pid"]).children(recursive=True)]
        stop = _llmflow(["stop", "--workdir", str(workdir)], workdir, env, timeout_s=300)
        (workdir / "stop.log").write_text(stop.stdout + stop.stderr)
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stdout + stop.stderr
        left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"`llmflow stop` left processes of its head running: {left}"


@pytest.fixture(scope="package")
def e2e_second_run(e2e_stack):
    """The same `llmflow run e2e` again on the running stack: its state (what a user's second
    `make run` does; ~2 min, so only the slow tier asks for it)."""
    return e2e_stack["rerun"]()["state"]


# What the PII canary test needs the flow to do with the user's documents (see test_e2e_pii.py).
# The user's documents come after the stdlib ones and rag.index keeps its first max_docs: without
# the modules and with no cap, the canary documents reach the index.
E2E_CANARY_OVERRIDES = ["steps.corpus.config.include_stdlib_modules=false", "steps.index.config.max_docs=null",
                        # half the chunks to embed (~1,470 at 128 tokens) beside pretraining on 2 cores
                        "steps.index.config.chunking.chunk_tokens=256"]
