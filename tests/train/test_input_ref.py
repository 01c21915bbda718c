"""What the post-training steps hand their Ray Train workers: ``input_ref`` (a local path on a local root,
the input's store URI + a path inside it on an object-store root) and ``open_ref`` in the worker.

The store is faked here (``open_artifact`` maps a URI to a folder standing for the worker node's cache);
tests/cluster/test_no_shared_disk.py opens a real one on moto from workers on other nodes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.train.fit import input_ref, open_ref
from flows.engine.context import StepContext

ROOT = "s3://bucket/runs"


def _model_artifact(path: Path) -> Path:
    (path / "model").mkdir(parents=True)
    (path / "model" / "config.json").write_text("{}")
    return path


def _remote_ctx(tmp_path: Path, inputs: dict[str, Path]) -> StepContext:
    """A step on an object-store root: the driver's copies under ``driver-cache/``, their store URIs beside."""
    return StepContext(name="post", output=tmp_path / "out", inputs=inputs, show_progress=False,
                       scratch_uri=f"{ROOT}/.tmp/post-resumable",
                       input_uris={k: f"{ROOT}/{k}.step/{k[0] * 16}" for k in inputs})


@pytest.fixture
def worker_cache(tmp_path, monkeypatch):
    """``open_artifact`` as a worker on another node sees it: URI -> ``worker-cache/<step>/<address>``;
    every URI opened is recorded."""
    opened: list[str] = []

    def fake_open(uri: str) -> Path:
        opened.append(uri)
        if "://" not in uri:
            return Path(uri)
        _, step, address = uri.rsplit("/", 2)
        return tmp_path / "worker-cache" / step / address

    monkeypatch.setattr("flows.engine.store.open_artifact", fake_open)
    return opened


def test_on_a_local_root_the_reference_is_the_path_itself(tmp_path):
    art = _model_artifact(tmp_path / "driver-cache" / "m")
    ctx = StepContext.for_test(tmp_path / "out", {"model": art})
    assert input_ref(ctx, "model") == str(art)
    assert input_ref(ctx, "model", art / "model") == str(art / "model")
    assert open_ref(input_ref(ctx, "model", art / "model")) == art / "model"
    assert open_ref(None) is None


def test_on_a_store_root_the_worker_opens_the_inputs_uri_not_the_drivers_copy(tmp_path, worker_cache):
    art = _model_artifact(tmp_path / "driver-cache" / "m")
    ctx = _remote_ctx(tmp_path, {"model": art})
    ref = input_ref(ctx, "model", art / "model")
    assert ref == {"artifact": f"{ROOT}/model.step/{'m' * 16}", "path": "model"}
    assert str(tmp_path) not in json.dumps(ref)  # nothing of the driver's disk travels
    assert open_ref(ref) == tmp_path / "worker-cache" / "model.step" / ("m" * 16) / "model"
    assert open_ref(input_ref(ctx, "model")) == tmp_path / "worker-cache" / "model.step" / ("m" * 16)
    assert worker_cache == [ref["artifact"]] * 2


def test_a_path_outside_the_input_is_an_error_naming_the_input(tmp_path):
    art = _model_artifact(tmp_path / "driver-cache" / "m")
    ctx = _remote_ctx(tmp_path, {"model": art})
    with pytest.raises(ValueError, match="not inside input 'model'.*inline in loop_config"):
        input_ref(ctx, "model", tmp_path / "elsewhere.jsonl")


class _Captured(Exception):
    """Raised by the fake ``fit``: the test only needs what the step hands its workers."""


@pytest.fixture
def captured_fit(monkeypatch):
    seen: dict = {}

    def fake_fit(worker, loop_config, **kw):
        seen.update(worker=worker, loop_config=loop_config, storage_uri=kw["storage_uri"])
        raise _Captured

    monkeypatch.setattr("components.train.fit.fit", fake_fit)
    return seen


def _no_driver_path(loop_config: dict, tmp_path: Path) -> None:
    text = json.dumps(loop_config)
    assert str(tmp_path) not in text, f"a driver path reached the workers: {text[:500]}"


def test_sft_lora_sends_references_and_the_eval_chats_inline(tmp_path, captured_fit, worker_cache):
    from components.sft.config import SFTConfig
    from components.sft.steps import run_lora

    model = _model_artifact(tmp_path / "driver-cache" / "m")
    data = tmp_path / "driver-cache" / "d"
    data.mkdir(parents=True)
    (data / "sft.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                                             {"role": "assistant", "content": "a"}]}) + "\n")
    (data / "eval.jsonl").write_text(json.dumps({"question": "Q?", "answer": "A.", "source_id": "s"}) + "\n")
    with pytest.raises(_Captured):
        run_lora(_remote_ctx(tmp_path, {"model": model, "data": data}), SFTConfig())
    cfg = captured_fit["loop_config"]
    _no_driver_path(cfg, tmp_path)
    assert cfg["model_dir"] == {"artifact": f"{ROOT}/model.step/{'m' * 16}", "path": "model"}
    assert cfg["train_path"] == {"artifact": f"{ROOT}/data.step/{'d' * 16}", "path": "sft.jsonl"}
    assert cfg["eval_rows"] == [{"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}]
    assert captured_fit["storage_uri"] == f"{ROOT}/.tmp/post-resumable"


def test_rl_steps_send_the_base_and_the_starting_adapter_as_references(tmp_path, captured_fit):
    from components.rl.steps import _fit

    model = _model_artifact(tmp_path / "driver-cache" / "m")
    adapter = tmp_path / "driver-cache" / "a"
    (adapter / "adapter").mkdir(parents=True)
    (adapter / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(_Captured):
        _fit(_remote_ctx(tmp_path, {"model": model, "adapter": adapter}), None, {"prompts": []}, 1, 1.0, "grpo")
    cfg = captured_fit["loop_config"]
    _no_driver_path(cfg, tmp_path)
    assert cfg["model_dir"] == {"artifact": f"{ROOT}/model.step/{'m' * 16}", "path": "model"}
    assert cfg["adapter_dir"] == {"artifact": f"{ROOT}/adapter.step/{'a' * 16}", "path": "adapter"}


def test_distill_sends_the_target_and_tokens_as_references(tmp_path, captured_fit):
    import numpy as np

    from components.artifacts import Tokens
    from components.distill.config import DraftDistillConfig
    from components.distill.steps import run_draft
    from components.models.presets import build_config

    model = tmp_path / "driver-cache" / "m"
    build_config(depth=2, vocab_size=64, max_seq_len=64).save_pretrained(model / "model")
    tokens = tmp_path / "driver-cache" / "t"
    Tokens.write_blocks(tokens, {"train": [np.zeros((4, 16), dtype=np.uint16)]}, vocab_size=64)
    with pytest.raises(_Captured):
        run_draft(_remote_ctx(tmp_path, {"model": model, "tokens": tokens}), DraftDistillConfig())
    cfg = captured_fit["loop_config"]
    _no_driver_path(cfg, tmp_path)
    assert cfg["target_dir"] == {"artifact": f"{ROOT}/model.step/{'m' * 16}", "path": "model"}
    assert cfg["tokens_dir"] == {"artifact": f"{ROOT}/tokens.step/{'t' * 16}", "path": "."}


def test_the_rl_workers_open_the_base_and_the_kl_reference_adapter_through_the_store(
        tmp_path, worker_cache, tiny_model_dir):
    """``_policy`` (GRPO, DPO): the base and the starting adapter (also the frozen KL/DPO reference) are the
    worker's copies, opened from their store references."""
    from components.rl.workers import _policy
    from components.sft.config import LoRASettings
    from components.sft.lora import REFERENCE
    from tests.fixtures.hf_models import write_random_lora

    cache = tmp_path / "worker-cache"
    (cache / "model.step").mkdir(parents=True)
    (cache / "model.step" / ("m" * 16)).symlink_to(tiny_model_dir)
    write_random_lora(tiny_model_dir, cache / "adapter.step" / ("a" * 16) / "adapter", rank=4, seed=1)
    refs = {"model_dir": {"artifact": f"{ROOT}/model.step/{'m' * 16}", "path": "."},
            "adapter_dir": {"artifact": f"{ROOT}/adapter.step/{'a' * 16}", "path": "adapter"}}
    _, model, _, _, tok = _policy(refs, LoRASettings(), seed=0, reference=True)
    assert worker_cache == [refs["model_dir"]["artifact"], refs["adapter_dir"]["artifact"]]
    assert REFERENCE in model.peft_config  # the KL reference came from the worker's copy of the adapter
    assert tok.vocab_size > 0
