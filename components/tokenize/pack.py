"""Tokenize and pack: encode documents, append EOS, cut the stream into fixed-length blocks.

``encode_and_pack_batch`` runs inside Ray Data's ``map_batches``: it encodes a batch, splits
its documents into train/val by a hash of their id, and returns each split's full blocks plus
the partial block left over. ``ShardWriter`` (on the driver) appends blocks to ``.bin`` shards
and packs the leftovers at the end, so only the final partial block (< seq_len tokens per
split) is discarded.
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
    from tokenizers import Tokenizer

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


class ShardWriter:
    """Appends (n, seq_len) blocks of one split to ``<split>/shard-XXXXX.bin`` files of bounded size."""

    def __init__(self, out_dir: Path, split: str, seq_len: int, dtype: np.dtype, blocks_per_shard: int):
        self.dir = Path(out_dir) / split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.split, self.seq_len, self.dtype, self.blocks_per_shard = split, seq_len, np.dtype(dtype), blocks_per_shard
        self.paths: list[str] = []
        self.num_blocks = 0
        self._file, self._in_file = None, 0
        self._tails: list[bytes] = []

    def write_blocks(self, data: bytes) -> None:
        blocks = np.frombuffer(data, dtype=self.dtype).reshape(-1, self.seq_len)
        while len(blocks):
            if self._file is None or self._in_file >= self.blocks_per_shard:
                self._open_next()
            take = min(len(blocks), self.blocks_per_shard - self._in_file)
            self._file.write(blocks[:take].tobytes())
            self._in_file += take
            self.num_blocks += take
            blocks = blocks[take:]

    def add_tail(self, data: bytes) -> None:
        self._tails.append(data)

    def close(self) -> int:
        """Pack the batches' leftovers into blocks; returns the tokens that still did not fill one."""
        tails = np.frombuffer(b"".join(self._tails), dtype=self.dtype)
        n_full = len(tails) // self.seq_len
        if n_full:
            self.write_blocks(tails[: n_full * self.seq_len].tobytes())
        if self._file is not None:
            self._file.close()
        return len(tails) - n_full * self.seq_len

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        rel = Tokens.shard_name(self.split, len(self.paths))
        self.paths.append(rel)
        # held open across write_blocks calls and closed by close() / the next shard
        self._file, self._in_file = open(self.dir.parent / rel, "wb"), 0  # noqa: SIM115


def open_shard(path: str | Path, seq_len: int, dtype: str) -> np.memmap:
    """A packed shard as an (num_blocks, seq_len) memmap, as pretraining reads it."""
    return np.memmap(path, dtype=np.dtype(dtype), mode="r").reshape(-1, seq_len)
