"""Can one flywheel turn's pairs teach the tiny model the users' rule? An offline probe of
tests/serve/test_flywheel_turn.py's turn in one process (HF sampling instead of vLLM, no Ray, no router):
scripted users ask the test's 6 questions with a grounded prompt (the topic's documentation as source
[1], as the router serves it), vote by a rule, `build_pairs` makes the pairs (with the served chat), then
`dpo_train` from a zero-B adapter (the champion = the base); 40 answers a question are sampled from the
champion and from the candidate with the same seeds, and the table shows each one's like-rate.

    .venv/bin/python benchmarks/flywheel_probe.py --rule words            # the random-init model
    .venv/bin/python benchmarks/flywheel_probe.py --rule words --trained 1 --lr 1e-3 --nll 1.0
    # the turn test since run 5: the opening rule, a LoRA on lm_head, DPO 20 steps at lr 3e-2, the router's
    # 192-token context; --votes coin: the no-signal control (random votes, the like-rate still by --rule)
    .venv/bin/python benchmarks/flywheel_probe.py --rule opening --targets lm_head --lr 3e-2 --steps 20 \
        --nll 1.0 --max-prompt-tokens 176 --max-seq-len 192 --seeds 3 [--votes coin]
    .venv/bin/python benchmarks/flywheel_probe.py --head-bound 1   # why a q/v LoRA cannot move the samples

The models are built here as the test fixtures build them (stdlib-docs BPE 2,048, debug preset depth 2;
--trained: tests/fixtures/tiny_lm.build_tiny_lm, 200 steps) under --workdir, once.
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.flywheel_users import QUESTIONS, docs  # the turn test's users


def models(root: Path, trained: bool) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from components.models.presets import build_config
    from components.tokenize.bpe import train_bpe_tokenizer

    texts = [docs()[k] for k in sorted(docs())]
    if not (root / "model" / "config.json").exists():
        train_bpe_tokenizer(texts, vocab_size=2048, out_dir=root / "tok")
        torch.manual_seed(0)
        tok = AutoTokenizer.from_pretrained(root / "tok")
        cfg = build_config(depth=2, vocab_size=len(tok), max_seq_len=512)
        cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
        LlamaForCausalLM(cfg).save_pretrained(root / "model")
        tok.save_pretrained(root / "model")
    if not trained:
        return root / "model"
    from tests.fixtures.tiny_lm import build_tiny_lm

    return build_tiny_lm(root, root / "tok", texts, steps=200, seq_len=64, batch_size=8)


def served(tok, topic: str, max_prompt_tokens: int) -> list[dict]:
    """The grounded chat: the topic's page as the one source, cut until the prompt fits."""
    from components.grounded import grounded_prompt

    for chars in (1500, 1200, 900, 700, 500, 300):
        msgs = [{"role": "user", "content": grounded_prompt(
            QUESTIONS[topic], [SimpleNamespace(title=topic, text=docs()[topic])], chars)}]
        if len(prompt_ids(tok, msgs)) <= max_prompt_tokens:
            break
    return msgs


def prompt_ids(tok, msgs) -> list[int]:
    return list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


def sample(model, tok, msgs, n: int, seed: int) -> list[str]:
    import torch

    ids = torch.tensor([prompt_ids(tok, msgs)])
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(ids.repeat(n, 1), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             max_new_tokens=16, pad_token_id=tok.pad_token_id)
    return [tok.decode(o[ids.shape[1]:], skip_special_tokens=True) for o in out]


def make_rule(name: str, short_limit: int, seed: int = 0):
    """``rule(topic, answer) -> bool``: one of the turn test's rules (tests/fixtures/flywheel_users.py), or a
    rule tried only here."""
    from tests.fixtures import flywheel_users as users

    rng = random.Random(12345 + seed)
    shared = {"words": users.grounded_rule, "opening": users.opening_rule, "coin": users.coin_rule}
    if name in shared:
        return lambda topic, ans: shared[name](topic, ans, rng) > 0
    if name == "short":
        return lambda topic, ans: len(ans) < short_limit
    if name == "digit":
        return lambda topic, ans: bool(re.search(r"\d", ans))
    raise ValueError(f"--rule {name!r}: one of words, opening, coin, short, digit")


def like_rate(model, tok, rule, chats, per_question: int, seed: int) -> float:
    liked = [rule(t, a) for k, t in enumerate(QUESTIONS) for a in sample(model, tok, chats[t], per_question, seed + k)]
    return sum(liked) / len(liked)


def head_bound(mdir: Path, tok) -> None:
    """How far can any hidden state move the first-token distribution? The most probability the model's
    output head (after its final RMSNorm) can put on a class of tokens, found by gradient ascent on the
    normalised hidden state, beside the class's share of the vocabulary (a uniform distribution)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(mdir)
    head, gain = model.lm_head.weight.detach(), model.model.norm.weight.detach()
    pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
    classes = {"word after a space (Ġ + letters)": [i for i, p in enumerate(pieces) if p[:1] == "Ġ" and p[1:].isalpha()],
               "letter-initial": [i for i, p in enumerate(pieces) if p.lstrip("Ġ")[:1].isalpha()],
               "20 given tokens": list(range(100, 2000, 95))}
    print(f"| class | tokens | uniform share | most any hidden state gives (head std {float(head.std()):.3f}, "
          f"width {head.shape[1]}) |\n|---|---|---|---|")
    for name, ids in classes.items():
        h = torch.randn(head.shape[1], requires_grad=True)
        opt = torch.optim.Adam([h], lr=0.05)
        for _ in range(500):
            mass = torch.logsumexp((head @ (h / h.pow(2).mean().sqrt() * gain)).log_softmax(-1)[ids], 0)
            opt.zero_grad()
            (-mass).backward()
            opt.step()
        print(f"| {name} | {len(ids)} | {len(ids) / len(pieces):.3f} | {float(mass.exp()):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rule", default="words")
    ap.add_argument("--votes", default=None, help="the rule the collect users vote by (default: --rule); "
                    "coin: random votes, the no-signal control, still measured by --rule")
    ap.add_argument("--max-prompt-tokens", type=int, default=496,
                    help="the served prompt's budget (the turn test's router: 192 context - 16 answer tokens)")
    ap.add_argument("--max-seq-len", type=int, default=512, help="DPOConfig.max_seq_len")
    ap.add_argument("--collect", type=int, default=60, help="collect requests (spread over the 6 questions)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--nll", type=float, default=0.0, help="DPOConfig.nll_weight")
    ap.add_argument("--targets", default="q_proj,v_proj",
                    help="LoRA target modules (the turn test's champion: lm_head; q/v before run 5)")
    ap.add_argument("--trained", type=int, default=0, help="1: the tiny LM trained 200 steps instead of random init")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", default="/tmp/llmflow-flywheel-probe")
    ap.add_argument("--head-bound", type=int, default=0,
                    help="1: only print how much first-token mass any hidden state can move (the head's bound)")
    a = ap.parse_args()
    import torch
    from transformers import AutoTokenizer

    from components.eval.preferences import FeedbackRecord, build_pairs
    from components.rl.config import DPOConfig
    from components.rl.dpo import dpo_train
    from components.sft.config import LoRASettings
    from components.sft.lora import add_lora, load_base

    torch.set_num_threads(a.threads)
    mdir = models(Path(a.workdir), bool(a.trained))
    tok = AutoTokenizer.from_pretrained(mdir)
    if a.head_bound:
        return head_bound(mdir, tok)
    chats = {t: served(tok, t, a.max_prompt_tokens) for t in QUESTIONS}
    print("| seed | rule | base | pairs | DPO s | champion like-rate | candidate like-rate |")
    print("|---|---|---|---|---|---|---|")
    for seed in range(a.seeds):
        torch.manual_seed(seed)  # the LoRA A init (B is zero: every seed's champion is the base)
        model = add_lora(load_base(mdir), LoRASettings(target_modules=a.targets.split(",")))
        lengths = sorted(len(x) for t in QUESTIONS for x in sample(model, tok, chats[t], 10, 999))
        rule = make_rule(a.rule, lengths[len(lengths) // 2], seed)
        votes = make_rule(a.votes, lengths[len(lengths) // 2], seed) if a.votes else rule
        feedback = []
        for k, t in enumerate(QUESTIONS):
            for j, ans in enumerate(sample(model, tok, chats[t], a.collect // len(QUESTIONS), seed * 1000 + k)):
                feedback.append(FeedbackRecord(f"{t}-{j}", QUESTIONS[t], ans, 1 if votes(t, ans) else -1,
                                               messages=chats[t]))
        pairs = [r.pair() for r in build_pairs(feedback)[0]]
        before = like_rate(model, tok, rule, chats, 40, 5000 + seed * 100)
        cfg = DPOConfig(num_steps=a.steps, learning_rate=a.lr, batch_size=8, max_seq_len=a.max_seq_len, beta=a.beta,
                        nll_weight=a.nll)
        t0 = time.perf_counter()
        dpo_train(model, tok, pairs, [], cfg, lambda rec, step: None)
        dpo_s = time.perf_counter() - t0
        after = like_rate(model, tok, rule, chats, 40, 5000 + seed * 100)
        rule_cell = f"{a.rule} (votes: {a.votes})" if a.votes else a.rule
        base = "trained 200 steps" if a.trained else "random init"
        print(f"| {seed} | {rule_cell} | {base} | {len(pairs)} | {dpo_s:.1f} | {before:.3f} | {after:.3f} |", flush=True)


if __name__ == "__main__":
    main()
