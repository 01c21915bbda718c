"""Offline vLLM generation with the serving engine's settings (no Ray Serve): a reference and a probe.

Used by the speculative-decoding equality test and by ``benchmarks/serve_llm.py`` to compare
off / ngram / draft_model without an HTTP stack in the way. Runs in its own process because a
vLLM engine spawns its engine core (needs the ``__main__`` guard) and holds memory until exit:

    python -m tests.serve.offline_engine '{"llm": {"model": "DIR", "speculative": {"method": "ngram"}},
                                           "prompts": ["..."], "max_tokens": 32, "batch_sizes": [1, 8]}'

Prints one JSON line: greedy texts, and per batch size tokens/s plus speculative acceptance.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from serve.llm.config import CPU_ENGINE_ENV, LLMServeConfig


def _spec_counters(llm) -> dict[str, float]:
    out = {"drafts": 0.0, "draft_tokens": 0.0, "accepted_tokens": 0.0}
    for m in llm.get_metrics():
        for key in out:
            if m.name == f"vllm:spec_decode_num_{key}":
                out[key] += float(getattr(m, "value", 0) or 0)
    return out


def generate(llm_config: LLMServeConfig, prompts: list[str], max_tokens: int,
             batch_sizes: tuple[int, ...] = ()) -> dict[str, Any]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=llm_config.require_model(), dtype=llm_config.dtype, enforce_eager=llm_config.enforce_eager,
              gpu_memory_utilization=llm_config.gpu_memory_utilization, max_model_len=llm_config.max_model_len,
              max_num_seqs=llm_config.max_num_seqs, seed=llm_config.seed,
              speculative_config=llm_config.speculative.to_vllm(), disable_log_stats=False)
    greedy = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    # One prompt at a time: the same batch shapes the equality test's served reference sees.
    texts = [llm.generate([p], greedy, use_tqdm=False)[0].outputs[0].text for p in prompts]
    result: dict[str, Any] = {"texts": texts, "runs": []}
    for batch in batch_sizes:
        before = _spec_counters(llm)
        t0, tokens = time.perf_counter(), 0
        for i in range(0, len(prompts), batch):
            outs = llm.generate(prompts[i:i + batch], greedy, use_tqdm=False)
            tokens += sum(len(o.outputs[0].token_ids) for o in outs)
        elapsed = time.perf_counter() - t0
        after = _spec_counters(llm)
        drafts = after["drafts"] - before["drafts"]
        accepted = after["accepted_tokens"] - before["accepted_tokens"]
        draft_tokens = after["draft_tokens"] - before["draft_tokens"]
        result["runs"].append({
            "batch": batch, "tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed,
            # mean acceptance length = tokens emitted per verification step (1 + accepted/draft)
            "acceptance_length": (1 + accepted / drafts) if drafts else None,
            "acceptance_rate": (accepted / draft_tokens) if draft_tokens else None,
        })
    result["spec_totals"] = _spec_counters(llm)
    return result


if __name__ == "__main__":
    for k, v in CPU_ENGINE_ENV.items():
        os.environ.setdefault(k, v)
    request = json.loads(sys.argv[1])
    cfg = LLMServeConfig.model_validate(request["llm"])
    res = generate(cfg, request["prompts"], int(request["max_tokens"]), tuple(request.get("batch_sizes", ())))
    print("RESULT " + json.dumps(res), flush=True)
