"""The SFT loop that runs in each Ray Train worker (and, without Ray, as a plain function).

Rank r takes every world_size-th example; DDP (via ``ray.train.torch.prepare_model``) averages
adapter gradients. Rank 0 saves the adapter and reports it as the run's checkpoint; its
return value (per-step history) reaches the driver as ``Result.return_value``.
"""
from __future__ import annotations

import math
import random
import time


def _batches(examples: list[dict], batch_size: int, seed: int):
    rng = random.Random(seed)
    epoch = 0
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield epoch, [examples[j] for j in order[i:i + batch_size]]
        epoch += 1


def evaluate_response_loss(model, examples: list[dict], pad_id: int, batch_size: int = 16) -> float:
    import torch

    from components.sft.chat import IGNORE, collate

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = collate(examples[i:i + batch_size], pad_id)
            batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                                                    ignore_index=IGNORE, reduction="sum")
            total += nll.item()
            count += int((labels != IGNORE).sum())
    model.train()
    return total / max(count, 1)


def sft_train(loop_config: dict) -> list[dict]:
    """Train a LoRA adapter. ``loop_config``: model_dir, train_path (paths, or ``input_ref`` references the
    worker opens on its node), eval_rows (held-out chats) or eval_path, settings (SFTConfig dict)."""
    import torch
    from transformers import AutoTokenizer

    from components.sft.chat import collate, encode_chat
    from components.sft.config import SFTConfig
    from components.sft.dataset import read_jsonl
    from components.sft.lora import add_lora, load_base
    from components.train.fit import (
        distribute,
        open_ref,
        progress,
        rank_world,
        report_final,
    )

    cfg = SFTConfig.model_validate(loop_config["settings"])
    rank, world = rank_world()
    torch.manual_seed(cfg.seed)
    model_dir = open_ref(loop_config["model_dir"])
    tok = AutoTokenizer.from_pretrained(model_dir)
    train = [encode_chat(tok, r["messages"], cfg.max_seq_len) for r in read_jsonl(open_ref(loop_config["train_path"]))]
    train = [e for e in train if any(t != -100 for t in e["labels"])]
    if not train:
        raise ValueError("no SFT example has a response token left after truncation; raise max_seq_len")
    eval_rows = loop_config["eval_rows"] if "eval_rows" in loop_config else read_jsonl(open_ref(loop_config["eval_path"]))
    evals = [encode_chat(tok, r["messages"], cfg.max_seq_len) for r in eval_rows][:cfg.num_eval_examples]
    shard = train[rank::world]

    model = add_lora(load_base(model_dir, cfg.lora.quantize_4bit), cfg.lora)
    bare = model
    model = distribute(bare)[0] or bare
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(len(shard) // cfg.batch_size, 1)
    num_steps = cfg.num_steps or max(math.ceil(cfg.num_epochs * steps_per_epoch), 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, num_steps // 10))
                                              * max(0.0, 1 - s / num_steps) ** 0.5)
    device = next(bare.parameters()).device
    history = [{"step": 0, "eval_response_loss": evaluate_response_loss(bare, evals, tok.pad_token_id)}]
    log = progress("sft")
    batches = _batches(shard, min(cfg.batch_size, len(shard)), cfg.seed + rank)
    for step in range(1, num_steps + 1):
        t0 = time.perf_counter()
        epoch, examples = next(batches)
        batch = {k: v.to(device) for k, v in collate(examples, tok.pad_token_id).items()}
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        rec = {"step": step, "epoch": epoch, "train_response_loss": out.loss.item(), "grad_norm": float(grad_norm),
               "lr": sched.get_last_lr()[0], "tokens_per_s": int(batch["attention_mask"].sum()) * world / dt}
        if cfg.eval_every and step % cfg.eval_every == 0 and step != num_steps:
            rec["eval_response_loss"] = evaluate_response_loss(bare, evals, tok.pad_token_id)
        if step == num_steps:
            rec["eval_response_loss"] = evaluate_response_loss(bare, evals, tok.pad_token_id)
        history.append(rec)
        log(rec, step)
    report_final(history[-1], save=(bare, tok) if rank == 0 else None)
    return history
