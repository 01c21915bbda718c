"""GRPO's tensor maths: group advantages, the clipped surrogate, the k3 KL."""
import pytest
import torch

from components.rl.grpo_loss import group_advantages, grpo_loss


def test_advantages_are_normalised_within_each_group():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 5.0, 5.0, 7.0, 5.0])
    a = group_advantages(r, 4)
    g = a.view(2, 4)
    assert torch.allclose(g.mean(1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(g.std(1), torch.ones(2), atol=1e-3)
    assert a[0] > 0 and a[6] > 0 and a[1] < 0


def test_uniform_group_gives_zero_advantage():
    assert torch.equal(group_advantages(torch.ones(4), 4), torch.zeros(4))


def test_ragged_groups_rejected():
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.ones(6), 4)


def test_loss_gradient_pushes_up_positive_advantage_tokens():
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    loss, stats = grpo_loss(logp, logp.detach(), None, torch.tensor([1.0, -1.0]), torch.ones(2, 3), 0.2, 0.0)
    loss.backward()
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()  # descent raises row 0, lowers row 1
    assert stats["clip_fraction"] == 0.0 and stats["kl"] == 0.0


def test_clipping_stops_gradient_beyond_the_trust_region():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_()  # ratios 1.5 (clipped) and 1.1
    loss, stats = grpo_loss(logp, old, None, torch.tensor([1.0]), torch.ones(1, 2), 0.2, 0.0)
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] != 0
    assert stats["clip_fraction"] == pytest.approx(0.5)


def test_kl_is_zero_at_reference_and_positive_away_from_it():
    logp = torch.tensor([[-1.0, -2.0]])
    _, same = grpo_loss(logp, logp, logp.clone(), torch.zeros(1), torch.ones(1, 2), 0.2, 0.1)
    _, diff = grpo_loss(logp, logp, logp - 0.5, torch.zeros(1), torch.ones(1, 2), 0.2, 0.1)
    assert same["kl"] == pytest.approx(0.0, abs=1e-7) and diff["kl"] > 0


def test_padding_positions_do_not_count():
    logp = torch.tensor([[-1.0, -50.0]], requires_grad=True)
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.tensor([1.0]), torch.tensor([[1, 0]]), 0.2, 0.0)
    loss.backward()
    assert logp.grad[0, 1] == 0
