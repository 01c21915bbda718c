"""Tokenize-and-pack: packing arithmetic, shards, the stable split, and the Ray Data step."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from components.artifacts import Tokens
from components.tokenize.config import PackConfig
from components.tokenize.pack import (
    TailPacker,
    dtype_for,
    encode_and_pack_batch,
    is_val,
    open_shard,
    pack_stream,
)


def test_pack_stream_appends_eos_and_cuts_blocks():
    blocks, tail = pack_stream([[1, 2, 3], [4, 5], [6]], eos_id=0, seq_len=4, dtype=np.uint16)
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6]]
    assert tail.tolist() == [0]


def test_tail_packer_bounds_shards_and_packs_leftovers_in_order(tmp_path):
    w = TailPacker(tmp_path, "train", seq_len=4, dtype=np.uint16, blocks_per_shard=3, block=7)
    w.add(np.arange(18, dtype=np.uint16).tobytes())                # 4 blocks + 2 pending -> shards of 3 + 1
    w.add(np.array([90, 91, 92], dtype=np.uint16).tobytes())        # 5 pending -> 1 more block, 1 left over
    assert w.close() == 1
    assert w.paths == ["train/shard-00007-000.bin", "train/shard-00007-001.bin"] and w.num_blocks == 5
    second = open_shard(tmp_path / w.paths[1], 4, "uint16")
    assert second.shape == (2, 4) and second[-1].tolist() == [16, 17, 90, 91]


def test_split_is_stable_and_near_the_fraction():
    ids = [f"doc-{i}" for i in range(20_000)]
    val = [i for i in ids if is_val(i, 0.1)]
    assert 0.09 < len(val) / len(ids) < 0.11
    assert val == [i for i in ids if is_val(i, 0.1)]
    assert val != [i for i in ids if is_val(i, 0.1, seed=1)]
    assert not any(is_val(i, 0.0) for i in ids[:100])


def test_dtype_follows_vocab_size():
    assert dtype_for(4096) == np.uint16 and dtype_for(65536) == np.uint16 and dtype_for(65537) == np.uint32


def test_batch_function_keeps_every_token(tiny_tokenizer_dir, stdlib_texts):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_tokenizer_dir / "tokenizer.json"))
    texts = stdlib_texts[:20]
    batch = pa.table({"id": [f"d{i}" for i in range(20)], "text": texts})
    out = encode_and_pack_batch(batch, str(tiny_tokenizer_dir / "tokenizer.json"), eos_id=1, seq_len=64,
                                dtype="uint16", val_fraction=0.2, split_seed=0).to_pylist()
    total = sum(len(np.frombuffer(r["data"], dtype=np.uint16)) for r in out)
    assert total == sum(len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in texts)
    assert sum(r["num_docs"] for r in out) == 20
    assert {r["split"] for r in out} == {"train", "val"}
    for r in out:
        if r["kind"] == "blocks":
            assert len(r["data"]) % (64 * 2) == 0


def test_a_block_packed_on_another_node_is_sent_back_whole(tmp_path, tiny_tokenizer_dir, stdlib_texts):
    """pack_block on a node without the driver's disk (send target of another node; the tokenizer as
    text): its shards go to the bucket, none to the driver's folder, and the row says so."""
    import json

    from components.data.send_back import receive
    from components.data.shards import BLOCK, writer_node
    from components.tokenize.pack import pack_block

    texts = stdlib_texts[:20]
    batch = pa.table({"id": [f"d{i}" for i in range(20)], "text": texts, BLOCK: [3] * 20})
    kwargs = {"blocks_per_shard": 4, "seq_len": 64, "dtype": "uint16", "eos_id": 1, "val_fraction": 0.2,
              "split_seed": 0, "tokenizer_json": (tiny_tokenizer_dir / "tokenizer.json").read_text()}
    here = pack_block(batch, str(tmp_path / "local"), **kwargs).to_pylist()
    send = {"uri": str(tmp_path / "bucket"), "driver_node": f"not-{writer_node()}"}
    (tmp_path / "driver").mkdir()
    there = pack_block(batch, str(tmp_path / "driver"), send=send, **kwargs).to_pylist()
    assert not any((tmp_path / "driver").iterdir())
    assert [r["sent"] for r in here] == [False, False] and [r["sent"] for r in there] == [True, True]
    rel = [p for r in there for p in json.loads(r["paths"])]
    assert rel == [p for r in here for p in json.loads(r["paths"])] and len(rel) > 2
    assert receive(tmp_path / "driver", send, rel) == len(rel)
    for p in rel:
        assert (tmp_path / "driver" / p).read_bytes() == (tmp_path / "local" / p).read_bytes()


def test_pack_config_is_strict():
    with pytest.raises(ValueError):
        PackConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="extra"):
        PackConfig(seqlen=128)


@pytest.mark.integration
def test_pack_step_on_ray(tmp_path, ray_local, docs_artifact, tiny_tokenizer_dir, stdlib_texts):
    from tokenizers import Tokenizer

    from components.tokenize.bpe import EOS, tokenizer_sha256
    from components.tokenize.steps import run_pack
    from flows.engine.context import StepContext

    runs = []
    for workers in (1, 2, 4):  # the same input must give the same bytes, whatever the number of workers
        cfg = PackConfig(seq_len=128, val_fraction=0.1, batch_size=16, blocks_per_shard=500, max_workers=workers)
        ctx = StepContext.for_test(tmp_path / f"w{workers}", {"docs": docs_artifact, "tokenizer": tiny_tokenizer_dir})
        runs.append((tmp_path / f"w{workers}", run_pack(ctx, cfg)))
    out, metrics = runs[0]
    manifest = Tokens.read(out).model_dump()  # validates every field of the manifest
    tok = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    assert manifest["vocab_size"] == tok.get_vocab_size() and manifest["dtype"] == "uint16"
    assert manifest["tokenizer_sha256"] == tokenizer_sha256(tiny_tokenizer_dir)
    assert manifest["num_train_docs"] + manifest["num_val_docs"] == len(stdlib_texts)
    shapes = {s: sum(open_shard(out / p, 128, manifest["dtype"]).shape[0] for p in manifest[s]) for s in ("train", "val")}
    assert shapes == {"train": manifest["num_train_blocks"], "val": manifest["num_val_blocks"]}
    assert len(manifest["train"]) >= 2, "blocks_per_shard=500 must cut the training split into several shards"
    expected = sum(len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in stdlib_texts)
    packed = manifest["num_train_tokens"] + manifest["num_val_tokens"]
    assert packed + manifest["num_dropped_tail_tokens"] == expected
    assert manifest["num_dropped_tail_tokens"] < 2 * 128
    first = open_shard(out / manifest["train"][0], 128, manifest["dtype"])
    text = tok.decode(first[:4].reshape(-1).tolist(), skip_special_tokens=False)
    train_first = next(t for i, t in enumerate(stdlib_texts) if not is_val(f"t{i:03d}", 0.1))
    assert text.startswith(train_first[:200]) and EOS in text
    assert metrics["num_train_tokens"] == manifest["num_train_tokens"]
    for other, _ in runs[1:]:   # deterministic: 2 and 4 workers wrote the same files, byte for byte
        assert Tokens.read(other).model_dump() == manifest
        for rel in manifest["train"] + manifest["val"]:
            assert (out / rel).read_bytes() == (other / rel).read_bytes()
