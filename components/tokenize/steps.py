"""Flow steps of the tokenize stage: tokenize.train and tokenize.pack."""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from components.artifacts import Docs, Tokens
from components.tokenize.config import PackConfig, TrainTokenizerConfig
from flows.engine.registry import PII_SCRUBBED, step_kind


def tokenizer_dir_of(artifact: Path) -> Path:
    """The tokenizer files of an input: a tokenize.train artifact (``tokenizer/`` inside) or an HF dir."""
    for candidate in (artifact / "tokenizer", artifact):
        if (candidate / "tokenizer.json").is_file():
            return candidate
    raise FileNotFoundError(f"no tokenizer.json in {artifact} or {artifact / 'tokenizer'}; the 'tokenizer' input "
                            "must be a tokenize.train artifact or a Hugging Face model/tokenizer directory")


def _texts(docs: Docs, max_chars: int | None) -> Iterator[str]:
    budget = max_chars
    for doc in docs.rows(("text",)):
        text = doc["text"]
        if budget is not None:
            if budget <= 0:
                return
            text, budget = text[:budget], budget - len(text)
        yield text


@step_kind("tokenize.train", inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
           description="Train a byte-level BPE with special tokens and a chat template on a docs artifact; "
                       "writes tokenizer/ (loads in transformers and vLLM as-is).")
def run_train(ctx, config: TrainTokenizerConfig) -> dict[str, float]:
    from components.tokenize.bpe import tokenizer_sha256, train_bpe_tokenizer

    docs = Docs.of(ctx)
    started = time.perf_counter()
    num_chars = num_docs = 0

    def counted():
        nonlocal num_chars, num_docs
        for text in _texts(docs, config.max_train_chars):
            num_chars += len(text)
            num_docs += 1
            yield text

    out = ctx.output / "tokenizer"
    tok = train_bpe_tokenizer(counted(), config.vocab_size, out, min_frequency=config.min_frequency)
    if num_docs == 0:
        raise ValueError(f"tokenize.train: the docs input {ctx.input('docs')} has no documents to train on")
    metrics = {"vocab_size": float(len(tok)), "num_train_docs": num_docs, "num_train_chars": num_chars,
               "elapsed_s": round(time.perf_counter() - started, 3)}
    report = {**metrics, "tokenizer_sha256": tokenizer_sha256(out), "requested_vocab_size": config.vocab_size}
    (ctx.output / "report.json").write_text(json.dumps(report, indent=2))
    ctx.log_metrics(metrics)
    ctx.set_tags({"tokenizer_sha256": report["tokenizer_sha256"]})
    return metrics


@step_kind("tokenize.pack", inputs=("docs", "tokenizer"), num_cpus=0,
           requires_traits=(("docs", PII_SCRUBBED),),
           description="Encode docs on Ray Data, append EOS, pack into fixed-length blocks, each worker writing "
                       "its block's train/*.bin and val/*.bin (np.memmap); the driver packs the leftovers and "
                       "writes manifest.json and a tokenizer/ copy.")
def run_pack(ctx, config: PackConfig) -> dict[str, float]:
    from tokenizers import Tokenizer

    from components.data.send_back import receive, send_target
    from components.data.shards import docs_dataset, ordered_execution, writer_node_tags
    from components.tokenize.bpe import eos_token_id, tokenizer_sha256
    from components.tokenize.pack import SPLITS, TailPacker, dtype_for, pack_block

    docs = Docs.of(ctx)
    started = time.perf_counter()
    tok_dir = tokenizer_dir_of(ctx.input("tokenizer"))
    send = send_target(ctx)
    vocab_size = Tokenizer.from_file(str(tok_dir / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    dtype = dtype_for(vocab_size)
    shutil.copytree(tok_dir, ctx.output / "tokenizer", dirs_exist_ok=True)

    with ordered_execution():  # before the Dataset exists: it copies the DataContext when created
        ds = docs_dataset(docs, config.batch_size, ("id", "text"))
        num_input_blocks = ds.num_blocks()
        packed = ds.map_batches(
            pack_block, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
            concurrency=config.max_workers,
            fn_kwargs={"out_dir": str(ctx.output), "blocks_per_shard": config.blocks_per_shard, "send": send,
                       "tokenizer_json": (tok_dir / "tokenizer.json").read_text(),  # the text: any node reads it
                       "eos_id": eos_token_id(tok_dir), "seq_len": config.seq_len, "dtype": dtype.name,
                       "val_fraction": config.val_fraction, "split_seed": config.split_seed})
        paths = {s: [] for s in SPLITS}
        num_docs, num_blocks = dict.fromkeys(SPLITS, 0), dict.fromkeys(SPLITS, 0)
        # leftovers go into shards named one past the last input block, so they sort last
        tails = {s: TailPacker(ctx.output, s, config.seq_len, dtype, config.blocks_per_shard, num_input_blocks)
                 for s in SPLITS}
        writers, sent_back = {}, set()  # input block -> the node whose worker wrote its shards; blocks sent back
        batches = packed.iter_batches(batch_format="pyarrow", batch_size=None)
        for batch in ctx.progress(batches, total=num_input_blocks, desc="tokenize.pack blocks"):
            writers.update(zip(batch.column("block").to_pylist(), batch.column("node_id").to_pylist()))
            for block, split, n_docs, n_blocks, rel, tail, sent in zip(*(batch.column(c).to_pylist() for c in (
                    "block", "split", "num_docs", "num_blocks", "paths", "tail", "sent"))):
                num_docs[split] += n_docs
                num_blocks[split] += n_blocks
                paths[split].extend(json.loads(rel))
                tails[split].add(tail)
                if sent:  # written on a node without this disk: fetch its files (components.data.send_back)
                    receive(ctx.output, send, json.loads(rel))
                    sent_back.add(block)
    ctx.set_tags(writer_node_tags(writers.values(), len(sent_back)))
    dropped_tail = {s: t.close() for s, t in tails.items()}
    for s, t in tails.items():
        paths[s].extend(t.paths)
        num_blocks[s] += t.num_blocks
    if num_blocks["train"] == 0:
        raise ValueError(f"tokenize.pack produced no training block of {config.seq_len} tokens: the corpus is too "
                         "small for seq_len; lower seq_len or add documents")

    manifest = Tokens(
        seq_len=config.seq_len, dtype=dtype.name, vocab_size=vocab_size,
        train=paths["train"], val=paths["val"],
        num_train_blocks=num_blocks["train"], num_val_blocks=num_blocks["val"],
        num_train_tokens=num_blocks["train"] * config.seq_len,
        num_val_tokens=num_blocks["val"] * config.seq_len,
        tokenizer_sha256=tokenizer_sha256(ctx.output / "tokenizer"),
        num_train_docs=num_docs["train"], num_val_docs=num_docs["val"],
        num_dropped_tail_tokens=sum(dropped_tail.values()), val_fraction=config.val_fraction,
        split_seed=config.split_seed, eos_token_id=eos_token_id(tok_dir),
    )
    manifest_path = manifest.write(ctx.output)
    elapsed = time.perf_counter() - started
    total_tokens = manifest.num_train_tokens + manifest.num_val_tokens
    metrics = {"num_train_tokens": manifest.num_train_tokens, "num_val_tokens": manifest.num_val_tokens,
               "num_train_blocks": manifest.num_train_blocks, "num_val_blocks": manifest.num_val_blocks,
               "num_dropped_tail_tokens": manifest.num_dropped_tail_tokens,
               "tokens_per_s": total_tokens / elapsed if elapsed > 0 else 0.0, "elapsed_s": round(elapsed, 3)}
    ctx.log_metrics(metrics)
    ctx.log_artifact(manifest_path)
    ctx.set_tags({"tokenizer_sha256": manifest.tokenizer_sha256})
    return metrics
