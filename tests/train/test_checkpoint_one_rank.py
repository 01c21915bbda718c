"""A one-rank process group (what a one-worker TorchTrainer has) saves and restores checkpoints
without dcp's collectives, for the plain and the FSDP2 strategy."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from components.train import checkpoint


@pytest.fixture
def one_rank_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _model_and_optimizer(strategy: str):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    if strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer)
        fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(3, 8)).sum().backward()
    optimizer.step()
    return model, optimizer


def _values(model) -> dict[str, torch.Tensor]:
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
            for k, v in model.state_dict().items()}


@pytest.mark.parametrize("strategy", ["none", "fsdp2"])
def test_one_rank_checkpoint_round_trip(one_rank_group, tmp_path, strategy):
    assert checkpoint._single_process()  # the no-collectives path is the one under test
    model, optimizer = _model_and_optimizer(strategy)
    saved = _values(model)
    path = checkpoint.save(tmp_path / "ckpt", 5, {"step": 5, "samples": 40}, strategy, model, optimizer, keep=2)
    assert (path / checkpoint.COMPLETE).exists()

    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert any(not torch.equal(saved[k], v) for k, v in _values(model).items())

    train_state = checkpoint.load(checkpoint.latest(tmp_path / "ckpt"), strategy, model, optimizer)
    assert train_state == {"step": 5, "samples": 40}
    restored = _values(model)
    assert all(torch.equal(saved[k], restored[k]) for k in saved)
    assert optimizer.state_dict()["state"], "optimizer moments restored"
