"""Session-wide fixtures: one local Ray cluster, one tiny tokenizer and model, per test session.

Starting Ray or a vLLM engine costs tens of seconds on 2 cores, so expensive things are
session-scoped and shared; tests must not mutate what they get from here.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
# Ray workers inherit the driver's environment, not pytest's sys.path: let them import tests.*
REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster for the whole session (4 logical CPUs: Serve needs > 2 on CPU)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def stdlib_texts() -> list[str]:
    """Real English technical prose that ships with Python: the stdlib's pydoc topics."""
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, stdlib_texts) -> Path:
    from components.tokenize.bpe import train_bpe_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_bpe_tokenizer(stdlib_texts, vocab_size=2048, out_dir=out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A randomly initialised debug-preset Llama + tokenizer, saved as an HF directory."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from components.models.presets import build_config

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    cfg = build_config(depth=2, vocab_size=len(tok), max_seq_len=512)
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def trained_lm_dir(tmp_path_factory, tiny_tokenizer_dir, stdlib_texts) -> Path:
    """Debug-preset Llama trained 200 steps (seq 64, batch 8, seed 0) on the docs + chat-format arithmetic:
    a model that has learned something, for the post-training tests (built once per session)."""
    from tests.sft.tiny_lm import build_tiny_lm

    # LLMFLOW_POSTTRAIN_CACHE lets a developer reuse the (deterministic) model across sessions.
    cache = Path(os.environ.get("LLMFLOW_POSTTRAIN_CACHE") or tmp_path_factory.getbasetemp())
    return build_tiny_lm(cache, tiny_tokenizer_dir, stdlib_texts, steps=200, seq_len=64, batch_size=8)


def start_mlflow_server(workdir: Path, port: int, timeout_s: float = 120):
    """Start `mlflow server` (mlflow/start.sh) on loopback; returns the Popen (own process group)."""
    import subprocess
    import time
    import urllib.request

    env = {**os.environ, "MLFLOW_PORT": str(port), "MLFLOW_BIN": str(Path(os.sys.executable).with_name("mlflow"))}
    proc = subprocess.Popen(["bash", str(REPO_ROOT / "mlflow" / "start.sh")], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "mlflow-server.log", "ab"),
                            start_new_session=True)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(1)
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(workdir / 'mlflow-server.log').read_text()[-2000:]}")
    stop_mlflow_server(proc)
    raise RuntimeError("mlflow server did not answer /health in time")


def stop_mlflow_server(proc) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1:18500 for the session; yields its URI."""
    workdir = tmp_path_factory.mktemp("mlflow_server")
    proc = start_mlflow_server(workdir, 18500)
    yield "http://127.0.0.1:18500"
    stop_mlflow_server(proc)
