"""Fast checks of the pieces the training loop is built from: data order, schedule, FLOPs, config."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from components.artifacts import Tokens
from components.train.config import PretrainConfig
from components.train.data import RankSampler, TokenBlocks, val_indices


def _fake_tokens(tmp_path, num_blocks=(5, 7), seq_len=8):
    """A tokenize.pack-shaped artifact whose block i holds the value i everywhere."""
    offsets = np.cumsum([0, *num_blocks])
    shards = [np.repeat(np.arange(a, b, dtype=np.uint16)[:, None], seq_len, axis=1)
              for a, b in itertools.pairwise(offsets)]
    Tokens.write_blocks(tmp_path, {"train": shards}, vocab_size=64)
    return tmp_path


def test_blocks_span_shards_in_order(tmp_path):
    blocks = TokenBlocks(_fake_tokens(tmp_path), "train")
    assert len(blocks) == 12
    assert blocks.take(np.array([0, 4, 5, 11]))[:, 0].tolist() == [0, 4, 5, 11]


def test_manifest_block_count_mismatch_is_an_error(tmp_path):
    root = _fake_tokens(tmp_path)
    Tokens.read(root).model_copy(update={"num_train_blocks": 13, "num_train_tokens": 13 * 8}).write(root)
    with pytest.raises(ValueError, match="manifest says 13"):
        TokenBlocks(root, "train")


def test_two_ranks_see_what_one_rank_with_twice_the_batch_sees():
    one = RankSampler(100, seed=3, world=1, rank=0, micro_batch_size=4, grad_accum_steps=2)
    two = [RankSampler(100, seed=3, world=2, rank=r, micro_batch_size=2, grad_accum_steps=2) for r in range(2)]
    for samples in (0, 8, 96):  # 96 crosses into the second epoch
        for micro in range(2):
            together = np.concatenate([s.micro_batch(samples, micro) for s in two])
            assert together.tolist() == one.micro_batch(samples, micro).tolist()
        step_blocks = [b for s in two for m in range(2) for b in s.micro_batch(samples, m)]
        if samples + 8 <= 100:
            assert len(set(step_blocks)) == 8  # no block twice within a step of one epoch


def test_data_order_depends_on_seed_and_covers_an_epoch():
    a = RankSampler(50, seed=0, world=1, rank=0, micro_batch_size=50, grad_accum_steps=1)
    b = RankSampler(50, seed=1, world=1, rank=0, micro_batch_size=50, grad_accum_steps=1)
    assert sorted(a.micro_batch(0, 0).tolist()) == list(range(50))
    assert a.micro_batch(0, 0).tolist() != b.micro_batch(0, 0).tolist()
    assert a.micro_batch(0, 0).tolist() == RankSampler(50, 0, 1, 0, 50, 1).micro_batch(0, 0).tolist()


def test_val_slices_are_equal_and_disjoint():
    parts = [val_indices(10, world=3, rank=r, per_rank=8) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(set(np.concatenate(parts).tolist())) == 9


def test_lr_warms_up_then_decays_to_the_floor():
    from components.train.loop import lr_at

    config = PretrainConfig(learning_rate=1.0, warmup_steps=4, num_steps=20, min_lr_ratio=0.1)
    lrs = [lr_at(s, config) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(x >= y for x, y in itertools.pairwise(lrs[3:]))
    assert math.isclose(lr_at(20, config), 0.1)


def test_flops_per_token_formula():
    from components.models.presets import build_config, count_params
    from components.train.flops import flops_per_token, mfu

    config = build_config(4, vocab_size=1000)
    n = count_params(config, non_embedding=True)
    expected = 6 * n + 12 * 4 * config.hidden_size * 512
    assert flops_per_token(config, 512) == expected
    assert math.isclose(mfu(1000.0, config, 512, 2, 1e12), 1000 * expected / 2e12)
    assert mfu(1000.0, config, 512, 1, None) is None


def test_cpu_device_choice():
    from components.train import device

    if device.use_gpu():
        pytest.skip("checks the CPU choice")
    info = device.describe()
    assert (info.device.type, info.backend, str(info.dtype), info.peak_flops) == ("cpu", "gloo", "torch.float32", None)


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="warmup_steps=10 must be < num_steps=10"):
        PretrainConfig(warmup_steps=10, num_steps=10)
    with pytest.raises(ValueError):
        PretrainConfig(strategy="ddp")
    with pytest.raises(ValueError):
        PretrainConfig(lerning_rate=1e-3)  # extra="forbid": typos are errors


def test_pretrain_kind_is_registered_and_holds_no_cpu():
    from flows.engine import registry

    kind = registry.get("train.pretrain")
    assert kind.num_cpus == 0 and kind.required_inputs == {"tokens"}
    assert kind.config is PretrainConfig
