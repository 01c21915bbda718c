"""Packed token shards from `tokenize.pack`, memory-mapped, with a deterministic per-rank order.

The order is a pure function of (seed, sample position): position p reads block
``perm_e[p mod N]`` where ``perm_e`` is a seeded permutation for epoch ``e = p // N``. A
global step consumes positions [start, start + global_batch); rank r's micro-batch m of
that step takes the slice ``start + (m·world + r)·micro`` onward. One worker with micro
2b therefore sees exactly the blocks two workers with micro b see together, and the only
data state a checkpoint needs is ``samples_consumed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.artifacts import Tokens


class TokenBlocks:
    """All blocks of one split as one indexable sequence over memory-mapped shard files."""

    def __init__(self, tokens_dir: str | Path, split: str):
        manifest = Tokens.read(tokens_dir)
        self.seq_len = manifest.seq_len
        dtype = np.dtype(manifest.dtype)
        self.shards = []
        for rel in getattr(manifest, split):
            path = Path(tokens_dir) / rel
            num_blocks = path.stat().st_size // (dtype.itemsize * self.seq_len)
            if num_blocks:
                self.shards.append(np.memmap(path, dtype=dtype, mode="r", shape=(num_blocks, self.seq_len)))
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])
        expected = manifest.num_blocks(split)
        if self.offsets[-1] != expected:
            raise ValueError(f"{tokens_dir}: {split} shards hold {self.offsets[-1]} blocks, manifest says {expected}")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Blocks at ``indices`` as an int64 array (num, seq_len)."""
        shard_ids = np.searchsorted(self.offsets, indices, side="right") - 1
        return np.stack([self.shards[s][i - self.offsets[s]] for s, i in zip(shard_ids, indices)]).astype(np.int64)


@dataclass
class RankSampler:
    """Which blocks rank ``rank`` of ``world`` reads for each micro-batch; see the module docstring."""

    num_blocks: int
    seed: int
    world: int
    rank: int
    micro_batch_size: int
    grad_accum_steps: int

    def __post_init__(self):
        if self.num_blocks < 1:
            raise ValueError("the train split has no blocks: pack more documents or a shorter seq_len")
        self._perms: dict[int, np.ndarray] = {}

    @property
    def global_batch(self) -> int:
        return self.world * self.micro_batch_size * self.grad_accum_steps

    def _block(self, positions: np.ndarray) -> np.ndarray:
        epochs, offsets = np.divmod(positions, self.num_blocks)
        out = np.empty_like(positions)
        for e in np.unique(epochs):
            if e not in self._perms:
                self._perms = {e: np.random.default_rng([self.seed, int(e)]).permutation(self.num_blocks)}
            mask = epochs == e
            out[mask] = self._perms[e][offsets[mask]]
        return out

    def micro_batch(self, samples_consumed: int, micro_step: int) -> np.ndarray:
        """Block indices of this rank's ``micro_step``-th micro-batch of the step starting at ``samples_consumed``."""
        start = samples_consumed + (micro_step * self.world + self.rank) * self.micro_batch_size
        return self._block(np.arange(start, start + self.micro_batch_size))


def val_indices(num_blocks: int, world: int, rank: int, per_rank: int) -> np.ndarray:
    """This rank's validation blocks: an equal, disjoint slice per rank (collectives need equal counts)."""
    per_rank = min(per_rank, num_blocks // world)
    return np.arange(rank * per_rank, (rank + 1) * per_rank)


def unigram_cross_entropy(tokens_dir: str | Path) -> float:
    """The loss (nats/token) of the best context-free model: train-split token frequencies
    (add-one smoothed) scored on the validation split. A language model that learned anything
    beyond word frequencies beats it; train.pretrain reports its validation loss against it."""
    vocab = Tokens.read(tokens_dir).vocab_size
    counts = np.ones(vocab, dtype=np.float64)
    for block in _all_blocks(TokenBlocks(tokens_dir, "train")):
        counts += np.bincount(block.ravel(), minlength=vocab)[:vocab]
    logp = np.log(counts / counts.sum())
    val = TokenBlocks(tokens_dir, "val")
    if not len(val):
        raise ValueError(f"{tokens_dir}: the val split is empty, so no baseline can be scored; raise tokenize.pack "
                         "val_fraction or pack more documents")
    return float(-np.mean(np.concatenate([logp[b.ravel()] for b in _all_blocks(val)])))


def _all_blocks(blocks: TokenBlocks):
    for shard in blocks.shards:
        yield np.asarray(shard, dtype=np.int64)
