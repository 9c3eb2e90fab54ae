"""Tests for the ready-made CIFAR-style models: VGG-BN (Louizos et al.) and ResNet-20."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.nn import VGGBN, BasicBlock, ResNetCIFAR, resnet20, vgg_bn_cifar


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _modules(model: nn.Module, kind: type[nn.Module]) -> list:
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.fixture(scope="module")
def vgg3() -> VGGBN:
    torch.manual_seed(0)
    return vgg_bn_cifar()


@pytest.mark.parametrize("factory", [vgg_bn_cifar, resnet20])
@pytest.mark.parametrize("channels", [1, 3])
def test_outputs_for_one_and_three_channel_32x32_images(factory, channels) -> None:
    torch.manual_seed(0)
    model = factory(num_classes=7, in_channels=channels)
    out = model(torch.randn(4, channels, 32, 32))
    assert out.shape == (4, 7) and torch.isfinite(out).all()
    model.eval()
    assert model(torch.randn(1, channels, 32, 32)).shape == (1, 7)


# Exact counts, by hand: VGG-BN's 13 bias-free convolutions hold 14,710,464 weights with 3
# input channels, their BatchNorms 8,448, Linear(512, 512) (no bias) 262,144, BatchNorm1d
# 1,024 and Linear(512, 10) 5,130. ResNet-20 is 269,722 with He et al.'s parameter-free
# shortcuts; the projections 16->32 and 32->64 (1x1 convolution + BatchNorm) add
# 512 + 64 + 2,048 + 128 = 2,752. One input channel saves 9 * 64 weights (VGG) or 9 * 16.
@pytest.mark.parametrize(
    "factory, channels, expected",
    [
        (vgg_bn_cifar, 3, 14_710_464 + 8_448 + 262_144 + 1_024 + 5_130),
        (vgg_bn_cifar, 1, 14_987_210 - 2 * 9 * 64),
        (resnet20, 3, 269_722 + 2_752),
        (resnet20, 1, 272_474 - 2 * 9 * 16),
    ],
)
def test_parameter_counts(factory, channels, expected) -> None:
    assert _count(factory(in_channels=channels)) == expected


def test_vgg_bn_architecture(vgg3: VGGBN) -> None:
    convs = _modules(vgg3, nn.Conv2d)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, *[256] * 3, *[512] * 6]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert len(_modules(vgg3, nn.BatchNorm2d)) == 13 and len(_modules(vgg3, nn.MaxPool2d)) == 5
    linears = _modules(vgg3, nn.Linear)
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 512), (512, 10)]
    assert len(_modules(vgg3, nn.BatchNorm1d)) == 1
    # every convolution is followed by its BatchNorm, then a ReLU
    layers = list(vgg3.features)
    for i, m in enumerate(layers):
        if isinstance(m, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d)
            assert isinstance(layers[i + 2], nn.ReLU)


def test_resnet20_architecture() -> None:
    model = resnet20()
    blocks = _modules(model, BasicBlock)
    assert len(blocks) == 9
    assert [b.conv2.out_channels for b in blocks] == [16] * 3 + [32] * 3 + [64] * 3
    assert [b.conv1.stride for b in blocks] == [(1, 1)] * 3 + [(2, 2), (1, 1), (1, 1)] * 2
    projections = [i for i, b in enumerate(blocks) if not isinstance(b.shortcut, nn.Identity)]
    assert projections == [3, 6]
    for i in projections:
        conv, bn = blocks[i].shortcut
        assert (
            conv.kernel_size == (1, 1) and conv.stride == (2, 2) and isinstance(bn, nn.BatchNorm2d)
        )
    convs3 = [c for c in _modules(model, nn.Conv2d) if c.kernel_size == (3, 3)]
    assert len(convs3) == 19  # 6n + 1 convolutions and one linear layer: 20 layers
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d) and model.fc.in_features == 64


@pytest.mark.parametrize("factory", [vgg_bn_cifar, resnet20])
def test_models_are_fx_traceable_and_the_trace_computes_the_same(factory) -> None:
    torch.manual_seed(0)
    model = factory(in_channels=3).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))


def test_the_residual_sums_are_in_the_traced_graph() -> None:
    graph = torch.fx.symbolic_trace(resnet20()).graph
    adds = [n for n in graph.nodes if n.op == "call_function" and n.target is operator.add]
    assert len(adds) == 9  # one per block


def test_a_block_changes_shape_only_with_a_projection() -> None:
    x = torch.randn(2, 8, 16, 16)
    same = BasicBlock(8, 8)
    assert isinstance(same.shortcut, nn.Identity) and same(x).shape == (2, 8, 16, 16)
    down = BasicBlock(8, 16, stride=2, mid_planes=5)
    assert down.conv1.out_channels == 5 and down(x).shape == (2, 16, 8, 8)


def test_narrower_configurations() -> None:
    small = VGGBN(num_classes=3, in_channels=1, cfg=(8, "M", 16, "M"), hidden=12)
    assert small(torch.randn(2, 1, 4, 4)).shape == (2, 3)  # two pools: 4x4 -> 1x1
    net = ResNetCIFAR(num_blocks=(1, 2), widths=(4, 8), num_classes=5, in_channels=2)
    assert net(torch.randn(2, 2, 12, 12)).shape == (2, 5)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: VGGBN(cfg=("M",)), "at least one convolution"),
        (lambda: VGGBN(cfg=(64, "A")), "cfg entries must be positive"),
        (lambda: VGGBN(cfg=(0,)), "cfg entries must be positive"),
        (lambda: vgg_bn_cifar(num_classes=0), "num_classes must be a positive integer"),
        (lambda: resnet20(in_channels=0), "in_channels must be a positive integer"),
        (lambda: ResNetCIFAR(num_blocks=(3,), widths=(16, 32)), "one entry per stage"),
        (lambda: ResNetCIFAR(num_blocks=(3, 0), widths=(16, 32)), r"num_blocks\[1\]"),
        (lambda: BasicBlock(4, 4, mid_planes=True), "mid_planes"),
    ],
)
def test_bad_arguments_are_named(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_public_names() -> None:
    assert pc.vgg_bn_cifar is vgg_bn_cifar and pc.resnet20 is resnet20
    assert {"vgg_bn_cifar", "resnet20"} <= set(pc.__all__)
    assert {"VGGBN", "ResNetCIFAR", "BasicBlock", "vgg_bn_cifar", "resnet20"} <= set(pc.nn.__all__)
