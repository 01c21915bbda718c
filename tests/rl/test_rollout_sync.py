"""After a weight sync the rollout engine samples from the new weights only.

vLLM keeps keys/values of prompts it has seen (prefix caching). Without a reset after reloading
weights, a prompt seen before the sync is continued from keys/values of the old weights: GRPO's
rollouts then came from a mix of old and new policy (every prompt shares the router's
instructions), and greedy answers differed from a fresh engine's on the same weights.
"""
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_greedy_after_a_sync_equals_the_new_weights_greedy_on_prompts_seen_before(tmp_path, tiny_model_dir,
                                                                                   trained_lm_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.rl.rollout import VLLMRollout, write_weights

    tok = AutoTokenizer.from_pretrained(trained_lm_dir)
    # Longer than a KV-cache block (prefix caching reuses whole blocks only), as the router's
    # instructions plus sources are.
    shared = "Answer the question using only the numbered sources below. " * 16
    prompts = [shared + q for q in ("What is 2 + 3?", "What does the with statement do?", "Name a list method.")]
    engine = VLLMRollout(tiny_model_dir, max_model_len=512, seed=0)
    try:
        before = [g[0].token_ids for g in engine.generate(prompts, 1, 12, 0.0)]  # fills the prefix cache
        trained = AutoModelForCausalLM.from_pretrained(trained_lm_dir, dtype=torch.float32).eval()
        engine.sync(write_weights({k: v.contiguous() for k, v in trained.state_dict().items()},
                                  tiny_model_dir, tmp_path / "sync"))
        after = [g[0].token_ids for g in engine.generate(prompts, 1, 12, 0.0)]
    finally:
        engine.close()
    assert all(len(tok(p)["input_ids"]) > 256 for p in prompts)
    expected = []
    for p in prompts:
        ids = tok(p, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = trained.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        expected.append(out[0, ids.shape[1]:].tolist())
    assert after != before  # the sync changed the model
    assert after == expected
