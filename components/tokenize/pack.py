"""Tokenize and pack: encode documents, append EOS, cut the stream into fixed-length blocks.

``pack_block`` runs inside Ray Data's ``map_batches``, once per input block: it encodes the
block, splits its documents into train/val by a hash of their id, writes each split's full
blocks as ``<split>/shard-<block>-<k>.bin`` itself and returns only the partial block left over
(< seq_len tokens per split). ``TailPacker`` (on the driver) packs those leftovers, in block
order, into the last shard, so only the final partial block per split is discarded and the
driver never holds more than one block of tokens.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import xxhash

from components.artifacts import Tokens

SPLITS = Tokens.SPLITS


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def is_val(doc_id: str, val_fraction: float, seed: int = 0) -> bool:
    """Stable split: a document's split depends only on its id (and the salt), never on order."""
    if val_fraction <= 0:
        return False
    return xxhash.xxh64_intdigest(f"{seed}:{doc_id}".encode()) % 1_000_000 < val_fraction * 1_000_000


@lru_cache(maxsize=2)
def _tokenizer(tokenizer_json: str):
    """A tokenizer from its tokenizer.json text (what the step sends: a worker on another node may not
    see the driver's files) or from that file's path."""
    from tokenizers import Tokenizer

    if tokenizer_json.lstrip().startswith("{"):
        return Tokenizer.from_str(tokenizer_json)
    return Tokenizer.from_file(tokenizer_json)


def pack_stream(token_lists: list[list[int]], eos_id: int, seq_len: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(full blocks of shape (n, seq_len), leftover tokens) of the docs joined with EOS after each."""
    total = sum(len(t) for t in token_lists) + len(token_lists)
    stream = np.empty(total, dtype=dtype)
    pos = 0
    for toks in token_lists:
        stream[pos: pos + len(toks)] = toks
        pos += len(toks)
        stream[pos] = eos_id
        pos += 1
    n_blocks = total // seq_len
    return stream[: n_blocks * seq_len].reshape(n_blocks, seq_len), stream[n_blocks * seq_len:]


def encode_and_pack_batch(batch, tokenizer_json: str, eos_id: int, seq_len: int, dtype: str,
                          val_fraction: float, split_seed: int):
    """Ray Data batch function: rows of (split, kind = "blocks" | "tail", num_docs, data = raw token bytes)."""
    import pyarrow as pa

    tok = _tokenizer(tokenizer_json)
    ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    by_split: dict[str, list[list[int]]] = {s: [] for s in SPLITS}
    for doc_id, enc in zip(ids, encodings):
        by_split["val" if is_val(doc_id, val_fraction, split_seed) else "train"].append(enc.ids)
    rows = {"split": [], "kind": [], "num_docs": [], "data": []}
    for split, token_lists in by_split.items():
        if not token_lists:
            continue
        blocks, tail = pack_stream(token_lists, eos_id, seq_len, np.dtype(dtype))
        for kind, arr, n_docs in (("blocks", blocks, len(token_lists)), ("tail", tail, 0)):
            rows["split"].append(split)
            rows["kind"].append(kind)
            rows["num_docs"].append(n_docs)
            rows["data"].append(arr.tobytes())
    return pa.table({"split": pa.array(rows["split"], pa.string()), "kind": pa.array(rows["kind"], pa.string()),
                     "num_docs": pa.array(rows["num_docs"], pa.int64()),
                     "data": pa.array(rows["data"], pa.large_binary())})


def shard_path(split: str, block: int, part: int) -> str:
    """Where input block ``block``'s ``part``-th file of ``split`` lives inside the artifact."""
    return f"{split}/shard-{block:05d}-{part:03d}.bin"


def write_shards(out_dir: str | Path, split: str, block: int, blocks: np.ndarray, blocks_per_shard: int) -> list[str]:
    """Write (n, seq_len) blocks as files of at most ``blocks_per_shard`` blocks; their relative paths."""
    paths = []
    for part, start in enumerate(range(0, len(blocks), blocks_per_shard)):
        rel = shard_path(split, block, part)
        (Path(out_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / rel).write_bytes(blocks[start: start + blocks_per_shard].tobytes())
        paths.append(rel)
    return paths


def pack_block(batch, out_dir: str, blocks_per_shard: int, seq_len: int, dtype: str, send: dict | None = None,
               **encode_kwargs):
    """Ray Data function for one input block: encode, pack, write the full blocks (sent back through
    ``send`` from a node without the driver's disk: ``components.data.send_back``); return per split
    (block, split, num_docs, num_blocks, paths as JSON, leftover tokens, the writer's node, whether
    the paths were sent back)."""
    import json

    import pyarrow as pa

    from components.data.send_back import writer_folder
    from components.data.shards import block_of, writer_node

    block = block_of(batch)
    packed = encode_and_pack_batch(batch, seq_len=seq_len, dtype=dtype, **encode_kwargs).to_pylist()
    rows = {"block": [], "split": [], "num_docs": [], "num_blocks": [], "paths": [], "tail": []}
    sent = []
    with writer_folder(out_dir, send, sent) as folder:
        for blocks_row, tail_row in zip(packed[::2], packed[1::2]):  # (blocks, tail) per split, in that order
            split = blocks_row["split"]
            blocks = np.frombuffer(blocks_row["data"], dtype=np.dtype(dtype)).reshape(-1, seq_len)
            rows["block"].append(block)
            rows["split"].append(split)
            rows["num_docs"].append(blocks_row["num_docs"])
            rows["num_blocks"].append(len(blocks))
            rows["paths"].append(json.dumps(write_shards(folder, split, block, blocks, blocks_per_shard)))
            rows["tail"].append(tail_row["data"])
    return pa.table({"block": pa.array(rows["block"], pa.int64()), "split": pa.array(rows["split"], pa.string()),
                     "num_docs": pa.array(rows["num_docs"], pa.int64()),
                     "num_blocks": pa.array(rows["num_blocks"], pa.int64()),
                     "paths": pa.array(rows["paths"], pa.string()), "tail": pa.array(rows["tail"], pa.large_binary()),
                     "node_id": pa.array([writer_node()] * len(rows["block"]), pa.string()),
                     "sent": pa.array([bool(sent)] * len(rows["block"]), pa.bool_())})


class TailPacker:
    """Packs the blocks' leftover tokens of one split, in the order given, into full blocks written as
    shards named after ``block`` (one past the last input block); holds < seq_len tokens at a time."""

    def __init__(self, out_dir: Path, split: str, seq_len: int, dtype: np.dtype, blocks_per_shard: int, block: int):
        self.out_dir, self.split, self.seq_len, self.dtype = Path(out_dir), split, seq_len, np.dtype(dtype)
        self.blocks_per_shard, self.block = blocks_per_shard, block
        self.paths: list[str] = []
        self.num_blocks = 0
        self._pending = np.empty(0, dtype=self.dtype)
        self._file, self._in_file = None, 0

    def add(self, data: bytes) -> None:
        self._pending = np.concatenate([self._pending, np.frombuffer(data, dtype=self.dtype)])
        n_full = len(self._pending) // self.seq_len
        if n_full:
            self._write(self._pending[: n_full * self.seq_len].reshape(n_full, self.seq_len))
            self._pending = self._pending[n_full * self.seq_len:].copy()

    def close(self) -> int:
        """Close the last shard; returns the tokens that did not fill a block (discarded)."""
        if self._file is not None:
            self._file.close()
        return len(self._pending)

    def _write(self, blocks: np.ndarray) -> None:
        while len(blocks):
            if self._file is None or self._in_file >= self.blocks_per_shard:
                if self._file is not None:
                    self._file.close()
                rel = shard_path(self.split, self.block, len(self.paths))
                self.paths.append(rel)
                (self.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                # held open across add() calls and closed by close() / the next shard
                self._file, self._in_file = open(self.out_dir / rel, "wb"), 0  # noqa: SIM115
            take = min(len(blocks), self.blocks_per_shard - self._in_file)
            self._file.write(blocks[:take].tobytes())
            self._in_file += take
            self.num_blocks += take
            blocks = blocks[take:]


def open_shard(path: str | Path, seq_len: int, dtype: str) -> np.memmap:
    """A packed shard as an (num_blocks, seq_len) memmap, as pretraining reads it."""
    return np.memmap(path, dtype=np.dtype(dtype), mode="r").reshape(-1, seq_len)
