"""Ready-made plain torch models of the compression literature."""

from __future__ import annotations

from torch import nn

__all__ = ["lenet5_caffe", "lenet_300_100", "mlp"]


def mlp(sizes: list[int] | tuple[int, ...], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Build a plain multilayer perceptron ``sizes[0] -> ... -> sizes[-1]`` with a leading Flatten.

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
    """Build LeNet-300-100 (LeCun et al. 1998): 784-300-100-10 with ReLU.

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
    """
    return mlp([in_features, 300, 100, num_classes])


def lenet5_caffe(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """Build LeNet-5-Caffe: conv 5x5 20 → max-pool → conv 5x5 50 → max-pool → 800-500-10.

    The Caffe variant used by Louizos et al. (2017) and Molchanov et al. (2017), for
    28×28 inputs.

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
