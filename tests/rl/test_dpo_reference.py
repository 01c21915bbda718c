"""DPO's reference is the policy training starts from (the champion's adapter in a flywheel turn), and a pair
trains on the chat the model was served (a grounded prompt), in one process on the session's tiny model."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory, tiny_model_dir):
    """A trained-looking champion: a q/v LoRA whose B is far from zero, so it answers unlike the base."""
    from tests.fixtures.hf_models import write_random_lora

    return write_random_lora(tiny_model_dir, tmp_path_factory.mktemp("champion"), rank=4, seed=3)


PAIRS = [{"prompt": f"What is {w}?", "chosen": f"{w} is a builtin name of Python.", "rejected": "I do not know."}
         for w in ("a list", "a tuple", "a dict", "a set")]


def test_dpo_from_an_adapter_measures_against_that_adapter_not_the_base(tiny_model_dir, champion_dir):
    from transformers import AutoTokenizer

    from components.rl.config import DPOConfig
    from components.rl.dpo import _logps, dpo_train
    from components.sft.config import LoRASettings
    from components.sft.lora import add_lora, load_base

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = add_lora(load_base(tiny_model_dir), LoRASettings(), adapter_dir=champion_dir)
    cfg = DPOConfig(num_steps=8, batch_size=4, learning_rate=1e-2, max_seq_len=64)
    pc, pr = _logps(model, tok, PAIRS, cfg, "cpu")
    with model.disable_adapter():
        bc, br = _logps(model, tok, PAIRS, cfg, "cpu")
    base_margin = (pc - bc) - (pr - br)
    assert base_margin.abs().min() > 0.05, base_margin  # the champion is not the base on these pairs

    history = dpo_train(model, tok, PAIRS, [], cfg, lambda rec, step: None)
    # Before any update the policy is its reference: zero margins (the base as reference gave base_margin).
    assert abs(history[0]["eval_margin"]) < 1e-4 and abs(history[1]["train_margin"]) < 1e-4, history[:2]
    assert history[-1]["eval_margin"] > 0.5 and history[-1]["eval_accuracy"] == 1.0, history[-1]


def test_step_schedule_is_drawn_up_front_as_sampling_step_by_step(tiny_model_dir):
    import random

    from components.rl.config import DPOConfig
    from components.rl.dpo import step_schedule

    cfg = DPOConfig(num_steps=5, batch_size=3, seed=7)
    rng, items = random.Random(7), list("abcdefg")
    assert [[items[i] for i in idx] for idx in step_schedule(7, cfg)] == [rng.sample(items, 3) for _ in range(5)]


def test_a_pair_trains_on_its_served_chat_and_keeps_its_response_when_the_prompt_is_long(tiny_model_dir):
    from transformers import AutoTokenizer

    from components.rl.prefs import encode_pair_side
    from components.sft.chat import IGNORE

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    served = [{"role": "user", "content": "Sources: [1] " + "The assert statement checks a condition. " * 40
               + "\n\nQuestion: What does assert do?"}]
    enc = encode_pair_side(tok, "What does assert do?", "It checks a condition.", 64, served)
    response = [t for t, lab in zip(enc["input_ids"], enc["labels"]) if lab != IGNORE]
    assert len(enc["input_ids"]) == 64 and tok.decode(response).strip().startswith("It checks a condition.")
    assert "The assert statement" in tok.decode(enc["input_ids"])  # the sources the model saw, not the bare question
    short = encode_pair_side(tok, "What does assert do?", "It checks a condition.", 256)
    assert "Sources" not in tok.decode(short["input_ids"]) and "What does assert do?" in tok.decode(short["input_ids"])


def test_the_nll_term_adds_the_chosen_answers_likelihood_to_the_loss(tiny_model_dir, champion_dir):
    import math

    from transformers import AutoTokenizer

    from components.rl.config import DPOConfig
    from components.rl.dpo import dpo_train
    from components.sft.config import LoRASettings
    from components.sft.lora import add_lora, load_base

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    runs = {}
    for weight in (0.0, 1.0):
        model = add_lora(load_base(tiny_model_dir), LoRASettings(), adapter_dir=champion_dir)
        cfg = DPOConfig(num_steps=6, batch_size=4, learning_rate=1e-2, max_seq_len=64, nll_weight=weight)
        runs[weight] = dpo_train(model, tok, PAIRS, [], cfg, lambda rec, step: None)
    # Step 1: policy = reference, so the DPO part is log 2; the NLL part is the chosen answers' per-token
    # NLL under a random model (about log of the 2,048-token vocabulary).
    assert abs(runs[0.0][1]["loss"] - math.log(2)) < 1e-3
    assert runs[1.0][1]["loss"] - math.log(2) > 0.5 * math.log(2048), runs[1.0][1]
    assert runs[1.0][-1]["chosen_reward"] > 0  # the chosen answers became likelier than under the champion
