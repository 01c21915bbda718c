"""Configs of the tokenize stage's steps (light: pydantic only)."""
from __future__ import annotations

from pydantic import Field

from components.config import Config


class TrainTokenizerConfig(Config):
    vocab_size: int = Field(4096, ge=300, le=1_000_000, description="Vocabulary size including the 256 byte tokens "
                            "and special tokens (4096 suits the stdlib corpus; 32k-128k for real pretraining).")
    min_frequency: int = Field(2, ge=1, description="A pair must occur this often to be merged.")
    max_train_chars: int | None = Field(None, ge=1, description="Train on at most this many characters (documents in "
                                        "order, the last one cut); None uses the whole docs artifact.")


class PackConfig(Config):
    seq_len: int = Field(256, ge=8, description="Tokens per packed block (the model's context length in pretraining).")
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="Fraction of documents (by hash of id, so stable "
                                "across runs and corpus growth) written to the validation split.")
    split_seed: int = Field(0, description="Salt of the split hash: change it to draw a different validation set.")
    batch_size: int = Field(256, ge=1, description="Documents per Ray Data block (one encode task each, which writes "
                            "its own shards); each block's last partial block is packed at the end.")
    blocks_per_shard: int = Field(8192, ge=1, description="At most this many blocks per .bin shard file (a worker "
                                  "writes one or more files per input block).")
    max_workers: int | None = Field(None, ge=1, description="At most this many concurrent encode tasks; None lets "
                                    "Ray use the cluster. The output is byte-identical for any value.")
