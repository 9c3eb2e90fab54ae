import pyro.distributions as dist
import pytest
import torch

from pyrocompress.distributions import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
)


def test_point_losses_are_the_mean_negative_log_likelihood():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 3, generator=g)
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    expected = -dist.Categorical(logits=logits).log_prob(labels).mean()
    assert torch.allclose(CategoricalLikelihood().point_loss(logits, labels), expected)

    one = torch.randn(7, 1, generator=g)
    binary = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    expected = -dist.Bernoulli(logits=one.squeeze(-1)).log_prob(binary.float()).mean()
    assert torch.allclose(BernoulliLikelihood().point_loss(one, binary), expected)

    y = torch.randn(7, generator=g)
    # at unit noise, up to the constant log(2 pi) / 2
    expected = -dist.Normal(one.squeeze(-1), 1.0).log_prob(y).mean() - 0.5 * torch.log(
        torch.tensor(2 * torch.pi)
    )
    assert torch.allclose(GaussianLikelihood().point_loss(one, y), expected)


def test_gaussian_noise_must_be_positive():
    with pytest.raises(ValueError, match="noise"):
        GaussianLikelihood(noise=0)
