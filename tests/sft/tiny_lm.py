"""A tiny Llama that has actually learned something, for post-training tests (shared by sft/rl/distill).

Random-init models cannot show SFT/GRPO/DPO/distillation working, so the session fixtures
train the debug preset briefly on the stdlib docs plus a few chat-formatted arithmetic
exchanges (so the model has seen the answer format GRPO rewards). Seeds are fixed; the
result is cached under the session's base temp dir so the three conftests build it once.
"""
from __future__ import annotations

import random
from pathlib import Path


def chat_lines(tokenizer, n: int, seed: int) -> list[str]:
    from components.sft.chat import prompt_text
    from components.sft.dataset import arithmetic_prompts

    rng = random.Random(seed)
    out = []
    for r in arithmetic_prompts(n, 20, seed):
        # Mostly wrong numbers: the format is learned, the arithmetic is left for GRPO to reward.
        ans = r["answer"] if rng.random() < 0.2 else str(rng.randint(0, 40))
        out.append(prompt_text(tokenizer, r["prompt"]) + ans + tokenizer.eos_token)
    return out


def build_tiny_lm(base_dir: Path, tokenizer_dir: Path, texts: list[str], steps: int = 300, seq_len: int = 128,
                  batch_size: int = 16, chat_fraction: float = 0.1, depth: int = 2, width: int | None = None,
                  seed: int = 0) -> Path:
    out = base_dir / f"tiny_lm_d{depth}_w{width}_s{steps}"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from components.models.presets import build_config

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = build_config(depth=depth, vocab_size=len(tok), max_seq_len=512, width=width)
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    model = LlamaForCausalLM(cfg)
    stream: list[int] = []
    for t in texts:
        stream += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    chats = [tok(c, add_special_tokens=False)["input_ids"] for c in chat_lines(tok, 2000, seed)]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for step in range(steps):
        rows = []
        for _ in range(batch_size):
            if rng.random() < chat_fraction:
                row = []
                while len(row) < seq_len:
                    row += rng.choice(chats)
            else:
                i = rng.randrange(0, len(stream) - seq_len)
                row = stream[i:i + seq_len]
            rows.append(row[:seq_len])
        ids = torch.tensor(rows)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = 3e-3 * min(1.0, (step + 1) / 20) * (1 - step / steps) + 1e-4
        opt.step()
        opt.zero_grad(set_to_none=True)
    tmp = out.with_suffix(".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def write_docs(out: Path) -> Path:
    """A data.corpus-shaped artifact of the stdlib pydoc topics."""
    from pydoc_data.topics import topics

    import pyarrow as pa
    import pyarrow.parquet as pq

    (out / "docs").mkdir(parents=True, exist_ok=True)
    rows = [{"id": k, "text": v, "source": "pydoc_topics", "title": k} for k, v in sorted(topics.items())]
    pq.write_table(pa.Table.from_pylist(rows), out / "docs" / "part-00000.parquet")
    return out


def write_token_shards(out: Path, tokenizer_dir: Path, texts: list[str], seq_len: int = 64, val_every: int = 10) -> Path:
    """A tokenize.pack-shaped artifact: manifest.json + train/val uint16 memmaps of (blocks, seq_len)."""
    import json

    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    stream: list[int] = []
    for t in texts:
        stream += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    blocks = np.array(stream[:len(stream) // seq_len * seq_len], dtype=np.uint16).reshape(-1, seq_len)
    val, train = blocks[::val_every], np.delete(blocks, np.s_[::val_every], axis=0)
    for split, arr in (("train", train), ("val", val)):
        (out / split).mkdir(parents=True, exist_ok=True)
        arr.tofile(out / split / "000.bin")
    manifest = {"seq_len": seq_len, "dtype": "uint16", "vocab_size": len(tok), "train": ["train/000.bin"],
                "val": ["val/000.bin"], "num_train_blocks": len(train), "num_val_blocks": len(val),
                "num_train_tokens": int(train.size), "num_val_tokens": int(val.size), "tokenizer_sha256": "test"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out
