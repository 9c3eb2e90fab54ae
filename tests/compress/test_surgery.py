"""Export of any traced architecture: BatchNorm, residual sums, concatenations, torchvision."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import dense_module, network_groups, tie_masks

torchvision = pytest.importorskip("torchvision")


class Block(nn.Module):
    """A residual block: two conv+BN, an identity skip, a ReLU after the sum."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + x)


class SmallResNet(nn.Module):
    """Stem, two residual blocks, a concatenation with a side branch, global pooling."""

    def __init__(self, c: int = 6, k: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.block1 = Block(c)
        self.block2 = Block(c)
        self.side = nn.Conv2d(c, 4, 1)
        self.dw = nn.Conv2d(c + 4, c + 4, 3, padding=1, groups=c + 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c + 4, k)

    def forward(self, x):
        h = F.relu(self.bn(self.stem(x)))
        h = self.block2(self.block1(h))
        h = torch.cat([h, F.relu(self.side(h))], dim=1)
        h = F.relu(self.dw(h))
        return self.fc(torch.flatten(self.pool(h), 1))


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def _fitted(model, x, y, epochs=2, prior="group-horseshoe"):
    bnn = pc.bayesianize(model, prior, seed=0)
    pc.fit(bnn, (x, y), epochs=epochs, batch_size=12, seed=0, progress=False)
    return bnn


def _assert_exact(result, bnn, x, cls):
    module = result.module
    assert type(module) is cls
    held_out = 1.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(99))
    for inputs in (x, held_out):  # the inputs export checked on, and others
        out = module.eval()(inputs)
        ref = bnn.predict_point(inputs, result.plan.masks)
        assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_batchnorm_is_attached_to_its_layer_and_the_gate_follows_it():
    bnn = pc.bayesianize(SmallResNet(), "group-horseshoe", seed=0)
    layers = bnn.bayesian_layers()
    assert layers["stem"].norm_path == "bn"
    assert layers["block1.conv2"].norm_path == "block1.bn2"
    assert isinstance(bnn.net.block1.bn2, nn.Identity)
    assert layers["side"].norm is None
    # a gate before the norm would be normalised away: the gate multiplies its output
    assert layers["stem"].gate_after_norm and not layers["fc"].gate_after_norm


@pytest.mark.parametrize(
    "prior",
    ["group-horseshoe", "group-nj", "gaussian", "spike-slab",
     pc.priors.SpikeAndSlab(estimator="straight-through")],
    ids=["horseshoe", "nj", "gaussian", "spike-slab-moments", "spike-slab-st"],
)  # fmt: skip
def test_compact_small_resnet_is_the_users_class_and_equals_the_masked_network(prior):
    x, y = _data()
    bnn = _fitted(SmallResNet(), x, y, prior=prior)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)
    _assert_exact(result, bnn, x, SmallResNet)
    assert result.report["params_after"] < result.report["params_before"]
    assert result.report["flops_after"] < result.report["flops_before"]


def test_dense_copy_equals_the_masked_posterior_mean_network():
    x, y = _data()
    bnn = _fitted(SmallResNet(), x, y, epochs=1)
    g = torch.Generator().manual_seed(1)
    masks = {
        n: torch.rand(layer.spec.num_groups, generator=g) > 0.4
        for n, layer in bnn.bayesian_layers().items()
    }
    dense = dense_module(bnn, masks)
    assert type(dense) is SmallResNet
    ref = bnn.predict_point(x, masks)
    assert torch.allclose(dense(x), ref, atol=1e-5 * ref.abs().max().item())


def test_residual_channels_are_kept_or_removed_together():
    x, y = _data()
    bnn = _fitted(SmallResNet(c=6), x, y, epochs=1)
    layers = bnn.bayesian_layers()
    # the residual stream: stem, block1.conv2, block2.conv2 write the same six channels,
    # which the concatenation passes to the depthwise convolution (its output gate) and
    # through the pooling to fc (its input gate): one coupled group of six channels
    stream = ("stem", "block1.conv2", "block2.conv2", "dw", "fc")
    masks = {n: torch.ones(layer.spec.num_groups, dtype=torch.bool) for n, layer in layers.items()}
    for name in stream:
        masks[name][0] = False  # every writer drops channel 0: it goes
    masks["block1.conv2"][1] = False  # one writer of three drops channel 1: it stays
    tied = tie_masks(bnn, masks, network_groups(bnn, x))
    for name in stream:
        assert not tied[name][0]
        assert tied[name][1]  # the decision is tied: kept by all
    from pyrocompress.compress import export_module

    module, info, used = export_module(bnn, masks, x)
    assert module.stem.out_channels == 5
    assert module.bn.num_features == 5
    for block in (module.block1, module.block2):
        assert block.conv1.in_channels == 5 and block.conv2.out_channels == 5
        assert block.bn2.num_features == 5
    assert module.side.in_channels == 5
    # the concatenation and the depthwise convolution lose the same channel
    assert module.dw.in_channels == module.dw.out_channels == module.dw.groups == 9
    assert info.kept_outputs["stem"] == [1, 2, 3, 4, 5]
    ref = bnn.predict_point(x, used)
    assert torch.allclose(module(x), ref, atol=1e-5 * ref.abs().max().item())


def test_a_model_with_an_op_no_rule_covers_is_refused_at_bayesianize():
    class Sorts(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.sort(x, dim=1).values)

    with pytest.raises(TypeError, match="unsupported op sort"):
        pc.bayesianize(Sorts())


def test_conditional_guide_is_refused_for_layers_followed_by_a_norm():
    with pytest.raises(ValueError, match="guide='conditional'"):
        pc.bayesianize(SmallResNet(), "group-horseshoe", guide="conditional")


def _pipeline(model, cls, n=8, epochs=1):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    bnn = pc.bayesianize(model, "group-horseshoe", seed=0)
    pc.fit(bnn, (x, y), epochs=epochs, batch_size=n // 2, seed=0, progress=False)
    result = pc.prune(bnn, rule="sparsity", sparsity=0.5, example_input=x)
    _assert_exact(result, bnn, x, cls)
    assert result.report["params_after"] < result.report["params_before"]
    return result


def test_ready_made_resnet20_prunes_to_a_smaller_resnet20():
    _pipeline(pc.resnet20(num_classes=10), type(pc.resnet20()))


@pytest.mark.slow
def test_ready_made_vgg_bn_cifar_prunes_to_a_smaller_vgg():
    _pipeline(pc.vgg_bn_cifar(num_classes=10), type(pc.vgg_bn_cifar()))


@pytest.mark.slow
def test_torchvision_resnet18_prunes_to_a_smaller_resnet():
    _pipeline(torchvision.models.resnet18(num_classes=10), torchvision.models.ResNet)


@pytest.mark.slow
def test_torchvision_mobilenet_v2_prunes_to_a_smaller_mobilenet():
    _pipeline(torchvision.models.mobilenet_v2(num_classes=10), torchvision.models.MobileNetV2)


def test_compact_user_class_saves_and_loads_through_its_factory(tmp_path):
    from pyrocompress.compress import load_compact, save_compact

    result = _pipeline(pc.resnet20(num_classes=10), type(pc.resnet20()))
    file = tmp_path / "resnet20.pt"
    with pytest.raises(TypeError, match="factory="):
        save_compact(result.module, file)
    save_compact(
        result.module,
        file,
        factory="pyrocompress.nn.models:resnet20",
        factory_kwargs={"num_classes": 10},
        note="x",
    )
    payload = torch.load(file, weights_only=True)  # plain data, no pickled code
    assert payload["factory"] == "pyrocompress.nn.models:resnet20"
    loaded = load_compact(file)
    assert type(loaded) is type(result.module)
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(loaded(x), result.module.eval()(x), atol=1e-6)
    # a factory given at load time replaces the stored one
    again = load_compact(file, factory=pc.resnet20)
    assert torch.allclose(again(x), loaded(x))


def test_factory_files_refuse_bad_factories(tmp_path):
    from pyrocompress.compress import load_compact, save_compact

    module = SmallResNet()
    with pytest.raises(TypeError, match="package.module:function"):
        save_compact(module, tmp_path / "a.pt", factory="nocolon")
    with pytest.raises(ValueError, match="must be"):
        save_compact(module, tmp_path / "a.pt", factory="model.py:not an identifier")
    assert not (tmp_path / "a.pt").exists()
    # a factory outside the trusted models is never called unasked
    source = tmp_path / "model.py"
    source.write_text("import torch\ndef build():\n    return torch.nn.Linear(2, 2)\n")
    plain = torch.nn.Linear(2, 2)
    save_compact(plain, tmp_path / "b.pt", factory=f"{source}:build")
    with pytest.raises(ValueError, match="does not call unasked"):
        load_compact(tmp_path / "b.pt")
    with pytest.raises(ValueError, match="not the file's factory"):
        load_compact(tmp_path / "b.pt", factory="subprocess:run")
    loaded = load_compact(tmp_path / "b.pt", factory=f"{source}:build")
    assert torch.equal(loaded.weight, plain.weight)


class Bag(nn.Module):
    """Bag of embeddings: mean over the sequence, then a classifier."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, tokens):
        return self.fc(F.relu(self.emb(tokens)).mean(1))


def test_an_embedding_loses_whole_dimensions_and_stays_exact():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 20, (48, 5), generator=g)
    y = (tokens[:, 0] < 10).long()
    bnn = pc.bayesianize(Bag(), "group-horseshoe", seed=0)
    pc.fit(bnn, (tokens, y), epochs=2, batch_size=16, seed=0, progress=False)
    info = pc.Posterior(bnn).information()["emb"]
    assert bool((info > 0).all())  # the table's gradients reach the information
    masks = {"emb": torch.arange(8) % 2 == 0, "fc": torch.ones(8, dtype=torch.bool)}
    from pyrocompress.compress import export_module

    module, info, used = export_module(bnn, masks, tokens)
    assert type(module) is Bag and module.emb.embedding_dim == 4 and module.fc.in_features == 4
    ref = bnn.predict_point(tokens, used)
    assert torch.allclose(module(tokens), ref, atol=1e-5 * ref.abs().max().item())
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=tokens, test=(tokens, y))
    assert result.report["test_error_compact"] is not None
    assert torch.allclose(result.module(tokens), bnn.predict_point(tokens, result.plan.masks))


def test_factory_files_never_download_or_call_unlisted_functions(tmp_path):
    from pyrocompress.compress import load_compact, save_compact

    module = torchvision.models.resnet18(num_classes=10)
    save_compact(
        module,
        tmp_path / "w.pt",
        factory="torchvision.models:resnet18",
        factory_kwargs={"num_classes": 10, "weights": "DEFAULT"},
    )
    with pytest.raises(ValueError, match="download"):
        load_compact(tmp_path / "w.pt")
    save_compact(module, tmp_path / "o.pt", factory="os.path:join", factory_kwargs={})
    with pytest.raises(ValueError, match="does not call unasked"):
        load_compact(tmp_path / "o.pt")
    payload = torch.load(tmp_path / "o.pt", weights_only=True)
    del payload["modules"]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="'modules' is missing"):
        load_compact(tmp_path / "bad.pt")


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.BatchNorm1d(5), nn.Linear(5, 3)),
        lambda: nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, 3)),
    ],
    ids=["batchnorm-after-activation", "layernorm"],
)
def test_chains_with_a_norm_that_follows_no_layer_export_exactly(make):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    bnn = _fitted(make(), x, y, prior="group-nj")
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)
    _assert_exact(result, bnn, x, nn.Sequential)


def test_a_layer_called_twice_is_refused():
    """Issue 25: one set of gates for two uses cannot be pruned per use."""

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.bn = nn.BatchNorm1d(4)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            return self.out(torch.cat([self.bn(self.fc(x)), self.fc(2 * x)], dim=1))

    with pytest.raises(TypeError, match="'fc' is called 2 times"):
        pc.bayesianize(Shared(), "group-nj", seed=0)


def test_a_tied_layer_is_refused_before_training():
    """Issue 25: a Linear used twice in a Sequential used to train, then fail in prune."""
    tied = nn.Linear(4, 4)
    net = nn.Sequential(tied, nn.ReLU(), tied, nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="'0' is also at '2'"):
        pc.bayesianize(net, "group-nj", seed=0)
