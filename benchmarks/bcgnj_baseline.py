r"""A hand-written plain-PyTorch BC-GNJ LeNet-300-100, for the speed benchmark only.

The model of Louizos, Ullrich & Welling (2017), written directly as torch modules the way
their public tutorial code does it: per-input group scales :math:`z_j` with a
log-uniform (normal-Jeffreys) prior, per-example group noise, the local
reparametrisation of the pre-activations (Kingma et al. 2015),

.. math::
    \mu = (x \odot z) W_\mu^\top + b_\mu, \qquad
    \sigma^2 = (x \odot z)^2 \exp(W_{\log\sigma^2})^\top + \exp(b_{\log\sigma^2}),

and the KL of the scales by Molchanov et al. (2017)'s approximation (Louizos et al. 2017,
eq. 14) plus the Gaussian KL of the weights given the scales. It is the yardstick for
``benchmarks/speed.py``: not part of the package, not used anywhere else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695


class LinearGroupNJ(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.z_mu = nn.Parameter(1.0 + 0.01 * torch.randn(in_features))
        self.z_logvar = nn.Parameter(-9.0 + 0.01 * torch.randn(in_features))
        self.weight_mu = nn.Parameter(torch.randn(out_features, in_features) / in_features**0.5)
        self.weight_logvar = nn.Parameter(-9.0 + 0.01 * torch.randn(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.zeros(out_features))
        self.bias_logvar = nn.Parameter(-9.0 + 0.01 * torch.randn(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.z_mu + self.z_logvar.mul(0.5).exp() * torch.randn_like(x)
        xz = x * z
        mu = F.linear(xz, self.weight_mu, self.bias_mu)
        var = F.linear(xz.square(), self.weight_logvar.exp(), self.bias_logvar.exp())
        return mu + var.clamp_min(1e-16).sqrt() * torch.randn_like(mu)

    def kl(self) -> torch.Tensor:
        log_alpha = self.z_logvar - torch.log(self.z_mu.square() + 1e-8)
        kl_z = -(
            _K1 * torch.sigmoid(_K2 + _K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - _K1
        ).sum()
        kl_w = (
            0.5
            * (-self.weight_logvar + self.weight_logvar.exp() + self.weight_mu.square() - 1).sum()
        )
        kl_b = 0.5 * (-self.bias_logvar + self.bias_logvar.exp() + self.bias_mu.square() - 1).sum()
        return kl_z + kl_w + kl_b


class LeNet300100GroupNJ(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            [LinearGroupNJ(784, 300), LinearGroupNJ(300, 100), LinearGroupNJ(100, 10)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x

    def loss(self, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
        """Negative ELBO per example: cross-entropy plus KL / N."""
        return F.cross_entropy(self(x), y) + sum(layer.kl() for layer in self.layers) / n
