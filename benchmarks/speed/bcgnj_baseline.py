r"""Hand-written plain-PyTorch BC-GNJ networks (LeNet-300-100, LeNet-5-Caffe), for the speed
benchmark only.

The model of Louizos, Ullrich & Welling (2017), written directly as torch modules the way
their public tutorial code does it: per-input group scales :math:`z_j` with a
log-uniform (normal-Jeffreys) prior, per-example group noise, the local
reparametrisation of the pre-activations (Kingma et al. 2015),

.. math::
    \mu = (x \odot z) W_\mu^\top + b_\mu, \qquad
    \sigma^2 = (x \odot z)^2 \exp(W_{\log\sigma^2})^\top + \exp(b_{\log\sigma^2}),

and the KL of the scales by Molchanov et al. (2017)'s approximation (Louizos et al. 2017,
eq. 14) plus the Gaussian KL of the weights given the scales. A convolution's groups are its
output channels: the per-example scale multiplies the mean and, squared, the variance of
each output map, as in the authors' ``Conv2dGroupNJ``. It is the yardstick for
``benchmarks/speed/speed.py``: not part of the package, not used anywhere else.
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
        return _kl(self)


def _kl(layer: nn.Module) -> torch.Tensor:
    log_alpha = layer.z_logvar - torch.log(layer.z_mu.square() + 1e-8)
    kl_z = -(_K1 * torch.sigmoid(_K2 + _K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - _K1).sum()
    kl_w = 0.5 * (-layer.weight_logvar + layer.weight_logvar.exp() + layer.weight_mu.square() - 1)
    kl_b = 0.5 * (-layer.bias_logvar + layer.bias_logvar.exp() + layer.bias_mu.square() - 1)
    return kl_z + kl_w.sum() + kl_b.sum()


class Conv2dGroupNJ(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        fan_in = in_channels * kernel_size * kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.z_mu = nn.Parameter(1.0 + 0.01 * torch.randn(out_channels))
        self.z_logvar = nn.Parameter(-9.0 + 0.01 * torch.randn(out_channels))
        self.weight_mu = nn.Parameter(torch.randn(shape) / fan_in**0.5)
        self.weight_logvar = nn.Parameter(-9.0 + 0.01 * torch.randn(shape))
        self.bias_mu = nn.Parameter(torch.zeros(out_channels))
        self.bias_logvar = nn.Parameter(-9.0 + 0.01 * torch.randn(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        eps = torch.randn(batch, self.z_mu.shape[0], 1, 1, device=x.device, dtype=x.dtype)
        z = self.z_mu[:, None, None] + self.z_logvar.mul(0.5).exp()[:, None, None] * eps
        mu = F.conv2d(x, self.weight_mu, self.bias_mu)
        var = F.conv2d(x.square(), self.weight_logvar.exp(), self.bias_logvar.exp())
        mu, var = mu * z, var * z.square()
        return mu + var.clamp_min(1e-16).sqrt() * torch.randn_like(mu)

    def kl(self) -> torch.Tensor:
        return _kl(self)


class LeNet5GroupNJ(nn.Module):
    """LeNet-5-Caffe: conv 5x5 20, max-pool, conv 5x5 50, max-pool, 800-500-10."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = Conv2dGroupNJ(1, 20, 5), Conv2dGroupNJ(20, 50, 5)
        self.fc1, self.fc2 = LinearGroupNJ(800, 500), LinearGroupNJ(500, 10)
        self.layers = [self.conv1, self.conv2, self.fc1, self.fc2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))

    def loss(self, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
        """Negative ELBO per example: cross-entropy plus KL / N."""
        return F.cross_entropy(self(x), y) + sum(layer.kl() for layer in self.layers) / n


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
