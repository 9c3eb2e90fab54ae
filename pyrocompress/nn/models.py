"""Ready-made plain torch models of the compression literature.

LeNet-300-100 and LeNet-5-Caffe for MNIST, and two CNNs for 32x32 images (CIFAR-10, or
MNIST zero-padded to 32x32): the VGG with BatchNorm of :cite:t:`louizos2017bayesian`
(:func:`vgg_bn_cifar`) and ResNet-20 of :cite:t:`he2016deep` (:func:`resnet20`). The CNNs are
classes with their own ``forward``, traceable by ``torch.fx``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "VGG16_CIFAR_CFG",
    "VGGBN",
    "BasicBlock",
    "ResNetCIFAR",
    "lenet5_caffe",
    "lenet_300_100",
    "mlp",
    "resnet20",
    "vgg_bn_cifar",
]


def mlp(sizes: list[int] | tuple[int, ...], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Build a plain multilayer perceptron of layer widths ``sizes``, with a leading Flatten.

    The layers are ``sizes[0] → sizes[1] → … → sizes[-1]``.

    Parameters
    ----------
    sizes
        Layer widths, inputs first; at least two positive integers.
    activation
        Module class inserted between consecutive Linear layers.

    Returns
    -------
    torch.nn.Sequential
        ``Flatten``, then ``Linear`` layers separated by ``activation()``.

    Raises
    ------
    ValueError
        If there are fewer than two sizes or one is not positive.

    Examples
    --------
    >>> import torch
    >>> from pyrocompress import mlp
    >>> net = mlp([4, 8, 2])
    >>> net
    Sequential(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=4, out_features=8, bias=True)
      (2): ReLU()
      (3): Linear(in_features=8, out_features=2, bias=True)
    )
    >>> sum(p.numel() for p in net.parameters())  # 4*8 + 8 + 8*2 + 2
    58
    >>> net(torch.zeros(5, 4)).shape
    torch.Size([5, 2])
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"an MLP needs at least two positive layer sizes, got {sizes}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def lenet_300_100(in_features: int = 784, num_classes: int = 10) -> nn.Sequential:
    """Build LeNet-300-100 :cite:p:`lecun1998gradient`: 784-300-100-10 with ReLU.

    Parameters
    ----------
    in_features
        Number of inputs (784 for flattened MNIST).
    num_classes
        Number of outputs.

    Returns
    -------
    torch.nn.Sequential
        The network, as :func:`mlp` builds it.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from pyrocompress import lenet_300_100
    >>> net = lenet_300_100()
    >>> [tuple(m.weight.shape) for m in net if isinstance(m, nn.Linear)]
    [(300, 784), (100, 300), (10, 100)]
    >>> sum(p.numel() for p in net.parameters())
    266610
    >>> net(torch.zeros(2, 1, 28, 28)).shape  # images are flattened
    torch.Size([2, 10])
    """
    return mlp([in_features, 300, 100, num_classes])


def lenet5_caffe(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """Build LeNet-5-Caffe: conv 5x5 20 → max-pool → conv 5x5 50 → max-pool → 800-500-10.

    The Caffe variant used by :cite:t:`louizos2017bayesian` and :cite:t:`molchanov2017variational`,
    for 28×28 inputs.

    Parameters
    ----------
    in_channels
        Number of input channels.
    num_classes
        Number of outputs.

    Returns
    -------
    torch.nn.Sequential
        The network.

    Examples
    --------
    >>> import torch
    >>> from pyrocompress import lenet5_caffe
    >>> net = lenet5_caffe()
    >>> [tuple(p.shape) for name, p in net.named_parameters() if name.endswith("weight")]
    [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]
    >>> sum(p.numel() for p in net.parameters())
    431080
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 20, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 500),
        nn.ReLU(),
        nn.Linear(500, num_classes),
    )


# --------------------------------------------------------------------------- CIFAR-style CNNs

#: The convolutional widths of the CIFAR VGG-16 of :cite:t:`louizos2017bayesian`, ``"M"`` a 2x2
#: max-pool: 13 convolutions in five blocks, each block ending in a pool (32 -> 1 pixel).
VGG16_CIFAR_CFG: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, "M"),
    *(512, 512, 512, "M"),
    *(512, 512, 512, "M"),
)


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class VGGBN(nn.Module):
    """A VGG-style CNN with BatchNorm for 32x32 images :cite:p:`louizos2017bayesian`.

    The network of the CIFAR-10 experiments of :cite:t:`louizos2017bayesian` (Table 1: BC-GNJ 8.6 %
    error and 14x compression by pruning, BC-GHS 9.0 % and 18x), after Zagoruyko's VGG for CIFAR-10:
    every entry of ``cfg`` is a 3x3 convolution (padding 1, no bias) followed by ``BatchNorm2d`` and
    ``ReLU``, or ``"M"``, a 2x2 max-pool; then ``Linear(c, hidden)`` (no bias) + ``BatchNorm1d`` +
    ``ReLU`` and ``Linear(hidden, num_classes)``, ``c`` the last convolution's width. With the
    default ``cfg`` (:data:`VGG16_CIFAR_CFG`) five pools take 32x32 inputs to 1x1, so the classifier
    reads ``c = 512`` features; in general the inputs must be ``2**p`` pixels square for ``p``
    pools. Dropout of the original VGG is left out (the group priors are the regularisers).

    Parameters
    ----------
    num_classes : int, default 10
        Number of outputs.
    in_channels : int, default 3
        Channels of the input images (3 for CIFAR-10, 1 for MNIST-32).
    cfg : sequence of int or "M", default VGG16_CIFAR_CFG
        Convolution widths and pools, in order; a pruned network is the same class with
        narrower widths.
    hidden : int, default 512
        Width of the hidden fully connected layer.

    Attributes
    ----------
    features : torch.nn.Sequential
        The convolutions, normalisations, activations and pools.
    classifier : torch.nn.Sequential
        ``Flatten``, the two fully connected layers and the normalisation between them.

    Raises
    ------
    ValueError
        If a count is not a positive integer, ``cfg`` holds anything but positive
        integers and ``"M"``, or has no convolution.

    Examples
    --------
    >>> import torch
    >>> VGGBN(num_classes=10, in_channels=1)(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        cfg: Sequence[int | str] = VGG16_CIFAR_CFG,
        hidden: int = 512,
    ) -> None:
        super().__init__()
        _check_count(num_classes, "num_classes")
        _check_count(in_channels, "in_channels")
        _check_count(hidden, "hidden")
        layers: list[nn.Module] = []
        width = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                raise ValueError(
                    f"cfg entries must be positive convolution widths or 'M' (max-pool), got "
                    f"{item!r}; e.g. (64, 'M', 128, 'M')"
                )
            layers += [nn.Conv2d(width, item, 3, padding=1, bias=False), nn.BatchNorm2d(item)]
            layers.append(nn.ReLU())
            width = item
        if not any(isinstance(m, nn.Conv2d) for m in layers):
            raise ValueError(f"cfg must hold at least one convolution width, got {tuple(cfg)}")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of a batch of images ``[N, in_channels, 32, 32]``."""
        return self.classifier(self.features(x))


def vgg_bn_cifar(num_classes: int = 10, in_channels: int = 3) -> VGGBN:
    """Build the CIFAR VGG-16 with BatchNorm of :cite:t:`louizos2017bayesian`.

    13 convolutions 3x3 (64, 64, M, 128, 128, M, 256 x3, M, 512 x3, M, 512 x3, M; each
    with BatchNorm and ReLU) and two fully connected layers, 512-512 with BatchNorm and
    ReLU and 512-``num_classes``: :class:`VGGBN` with its defaults, 14,987,210 parameters
    for 3 input channels and 10 classes (BatchNorm's affine parameters included).

    Parameters
    ----------
    num_classes : int, default 10
        Number of outputs.
    in_channels : int, default 3
        Channels of the 32x32 input images.

    Returns
    -------
    VGGBN
        The network, in training mode, initialised by torch's defaults.

    Examples
    --------
    >>> from torch import nn
    >>> from pyrocompress import vgg_bn_cifar
    >>> net = vgg_bn_cifar()
    >>> sum(p.numel() for p in net.parameters())
    14987210
    >>> sum(isinstance(m, nn.Conv2d) for m in net.modules())
    13
    >>> [m.out_features for m in net.modules() if isinstance(m, nn.Linear)]
    [512, 10]
    """
    return VGGBN(num_classes=num_classes, in_channels=in_channels)


class BasicBlock(nn.Module):
    """The basic residual block of :cite:t:`he2016deep`: two 3x3 convolutions and a shortcut.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, where ``conv1`` has stride
    ``stride``; the shortcut is the identity when the shape is kept and a 1x1 convolution
    with stride ``stride`` followed by BatchNorm otherwise (the projection shortcut,
    option B of :cite:t:`he2016deep{§3.3}`).

    Parameters
    ----------
    in_planes : int
        Input channels.
    planes : int
        Output channels (those of the residual sum).
    stride : int, default 1
        Stride of the first convolution and of the projection.
    mid_planes : int, optional
        Channels between the two convolutions (default ``planes``); a pruned block keeps
        the sum's width and narrows this one.

    Attributes
    ----------
    shortcut : torch.nn.Module
        ``nn.Identity()`` or ``nn.Sequential(Conv2d 1x1, BatchNorm2d)``, fixed at
        construction, so the forward has no data-dependent branch (``torch.fx`` traces it).
    """

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, mid_planes: int | None = None
    ) -> None:
        super().__init__()
        _check_count(in_planes, "in_planes")
        _check_count(planes, "planes")
        _check_count(stride, "stride")
        mid = planes if mid_planes is None else _check_count(mid_planes, "mid_planes")
        self.conv1 = nn.Conv2d(in_planes, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(mid, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``relu(residual(x) + shortcut(x))``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """The CIFAR ResNet of :cite:t:`he2016deep{§4.2}`: 6n + 2 layers in three stages.

    A 3x3 convolution to ``widths[0]`` channels with BatchNorm and ReLU, then three stages
    of :class:`BasicBlock` (``num_blocks[i]`` blocks of ``widths[i]`` channels; the first
    block of stages 2 and 3 has stride 2 and a projection shortcut), global average
    pooling (``AdaptiveAvgPool2d(1)``), flatten and a linear classifier. He et al. use
    zero-padding identity shortcuts on CIFAR (option A); projections (option B) are used
    here, so that every shortcut is a module the pruning can slice (+2,752 parameters for
    ResNet-20). Convolutions followed by BatchNorm have no bias.

    Parameters
    ----------
    num_blocks : sequence of int, default (3, 3, 3)
        Blocks per stage (n = 3 gives ResNet-20, n = 5 ResNet-32, ...).
    widths : sequence of int, default (16, 32, 64)
        Channels of each stage; as many as ``num_blocks``.
    num_classes : int, default 10
        Number of outputs.
    in_channels : int, default 3
        Channels of the input images.

    Raises
    ------
    ValueError
        If a count is not a positive integer or ``widths`` and ``num_blocks`` differ in
        length.

    Examples
    --------
    >>> import torch
    >>> ResNetCIFAR(num_blocks=(1, 1), widths=(4, 8))(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        num_blocks: Sequence[int] = (3, 3, 3),
        widths: Sequence[int] = (16, 32, 64),
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        num_blocks, widths = tuple(num_blocks), tuple(widths)
        if not widths or len(widths) != len(num_blocks):
            raise ValueError(
                f"widths and num_blocks must be non-empty and of the same length (one entry "
                f"per stage), got widths={widths} and num_blocks={num_blocks}"
            )
        for i, (n, w) in enumerate(zip(num_blocks, widths, strict=True)):
            _check_count(n, f"num_blocks[{i}]")
            _check_count(w, f"widths[{i}]")
        _check_count(num_classes, "num_classes")
        _check_count(in_channels, "in_channels")
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages: list[nn.Module] = []
        width = widths[0]
        for i, (n, w) in enumerate(zip(num_blocks, widths, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(width, w, stride=2 if i > 0 and j == 0 else 1))
                width = w
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of a batch of images ``[N, in_channels, H, W]``."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(self.flatten(self.avgpool(x)))


def resnet20(num_classes: int = 10, in_channels: int = 3) -> ResNetCIFAR:
    """Build ResNet-20 for CIFAR (:cite:t:`he2016deep{§4.2}`, n = 3) with projection shortcuts.

    Three stages of three :class:`BasicBlock` with 16, 32 and 64 channels: 19 convolutions
    and a linear layer: 269,722 parameters with He et al.'s parameter-free shortcuts
    (their "0.27M"); the two projection shortcuts used here (1x1 convolution and
    BatchNorm, option B) make it 272,474 for 3 input channels and 10 classes (272,186 for
    one input channel).

    Parameters
    ----------
    num_classes : int, default 10
        Number of outputs.
    in_channels : int, default 3
        Channels of the input images.

    Returns
    -------
    ResNetCIFAR
        The network, in training mode, initialised by torch's defaults.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from pyrocompress import resnet20
    >>> net = resnet20()
    >>> sum(p.numel() for p in net.parameters())
    272474
    >>> sum(isinstance(m, nn.Conv2d) for m in net.modules())  # 19 and two 1x1 shortcuts
    21
    >>> sum(p.numel() for p in resnet20(in_channels=1).parameters())
    272186
    >>> net.eval()(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 10])
    """
    return ResNetCIFAR((3, 3, 3), (16, 32, 64), num_classes=num_classes, in_channels=in_channels)
