"""Conv1d and Embedding as Bayesian layers, 1-d pooling, padded max pooling, and compact
files of grouped convolutions."""

from __future__ import annotations

import copy

import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

import pyrocompress as pc
from pyrocompress.compress import dense_module, load_compact, save_compact
from pyrocompress.infer import LocalReparameterization
from pyrocompress.nn import BayesianConv1d, BayesianEmbedding, BayesianLayer, product_moments
from pyrocompress.nn.rules import get_rule, maxpool2d_moments
from pyrocompress.priors import GroupNormalJeffreys

DRAWS = 40_000


# ------------------------------------------------------------------------- helpers
def _gaussian_bnn(net: nn.Module, seed: int = 0, log_var: float = -3.0):
    """A Gaussian-prior network with visible guide variances, and a plain copy of ``net``."""
    plain = copy.deepcopy(net)
    bnn = pc.bayesianize(net, "gaussian", seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in bnn.bayesian_layers():
            q = bnn.guide[name]
            q.weight_log_var.copy_(log_var + 0.5 * torch.randn(q.weight_log_var.shape, generator=g))
            if hasattr(q, "bias_loc"):
                q.bias_log_var.copy_(log_var + 0.5 * torch.randn(q.bias_log_var.shape, generator=g))
                q.bias_loc.copy_(0.3 * torch.randn(q.bias_loc.shape, generator=g))
    return bnn, plain


def _monte_carlo(bnn, net: nn.Module, x: torch.Tensor, draws: int = DRAWS) -> torch.Tensor:
    """Outputs of the plain ``net`` with weights drawn from ``bnn``'s guide: [draws, *out]."""
    g = torch.Generator().manual_seed(1)
    params = {}
    for name in bnn.bayesian_layers():
        q = bnn.guide[name]
        for part in ("weight", "bias"):
            loc, log_var = getattr(q, f"{part}_loc"), getattr(q, f"{part}_log_var")
            eps = torch.randn(draws, *loc.shape, generator=g)
            params[f"{name}.{part}"] = (loc + (0.5 * log_var).exp() * eps).detach()
    with torch.no_grad():
        return vmap(lambda p: functional_call(net, p, (x,)), chunk_size=5000)(params)


def _assert_moments(mean, var, samples, *, z: float = 4.5):
    """Mean and variance within ``z`` Monte-Carlo standard errors of the sample's (the
    variance's standard error from the sample's fourth central moment)."""
    n = samples.shape[0]
    s_mean, s_var = samples.mean(0), samples.var(0)
    se_mean = (s_var / n).sqrt()
    se_var = (((samples - s_mean) ** 4).mean(0) - s_var**2).clamp_min(0).div(n).sqrt()
    assert torch.all((mean - s_mean).abs() <= z * se_mean + 1e-6), (mean - s_mean).abs().max()
    assert torch.all((var - s_var).abs() <= z * se_var + 1e-6), (var - s_var).abs().max()


def _lrt_samples(layer, guide, x, n: int) -> torch.Tensor:
    """``n`` locally reparametrised outputs of ``layer`` for the batch ``x`` (each independent)."""
    lrt = LocalReparameterization()
    trace = poutine.trace(lrt.guide(guide)).get_trace()
    x_rep = x.repeat(n, *([1] * (x.dim() - 1)))
    with torch.no_grad():
        out = poutine.replay(lrt.model(layer), trace=trace)(x_rep)
    return out.reshape(n, x.shape[0], *out.shape[1:])


def _perturb_nj(guide, seed: int = 0) -> None:
    """Visible variances and gates of a group normal-Jeffreys guide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in guide.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name == "scale_loc":
                p.copy_(1.0 + 0.3 * noise)
            elif name.endswith("_log_var"):
                p.copy_(-1.5 + 0.3 * noise)
            else:
                p.copy_(0.5 * noise)


def _data(shape, n=24, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def _assert_exact(result, bnn, x, cls):
    module = result.module
    assert type(module) is cls
    out = module.eval()(x)
    ref = bnn.predict_point(x, result.plan.masks)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


# -------------------------------------------------------------------------- Conv1d
@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv1d(3, 4, 3),
        nn.Conv1d(3, 4, 3, stride=2, padding=2, dilation=2),
        nn.Conv1d(4, 4, 3, padding=1, groups=4),  # depthwise
        nn.Conv1d(4, 6, 1, groups=2, bias=False),
        nn.Conv1d(3, 4, 3, padding="same"),
    ],
)
def test_conv1d_layer_equals_nn_conv1d_under_the_point_estimate(conv):
    bnn = pc.bayesianize(nn.Sequential(conv), "gaussian", seed=0)
    layer, q = bnn.net[0], bnn.guide["0"]
    assert isinstance(layer, BayesianConv1d) and layer.spec.kind == "conv1d"
    assert layer.spec.num_groups == conv.out_channels and layer.groups_on_outputs
    x = torch.randn(2, conv.in_channels, 9, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = copy.deepcopy(conv)
        plain.weight.copy_(q.weight_loc)
        if conv.bias is not None:
            plain.bias.copy_(q.bias_loc)
        expected = plain(x)
        # the exported plain layer is the same convolution
        weight, bias = bnn.point_weights()[layer][:2]
        exported = layer.to_plain(weight, bias)
    assert type(exported) is nn.Conv1d and exported.groups == conv.groups
    torch.testing.assert_close(bnn.predict_point(x), expected)
    torch.testing.assert_close(exported(x), expected)
    assert "prior=Gaussian" in repr(layer)


def test_conv1d_moments_match_monte_carlo():
    """Conv1d then ReLU then a flatten: exact per unit."""
    net = nn.Sequential(nn.Conv1d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
    bnn, plain = _gaussian_bnn(net)
    x = torch.randn(2, 2, 7, generator=torch.Generator().manual_seed(2))
    mean, var = pc.propagate(bnn, x)
    assert mean.shape == (2, 12)
    _assert_moments(mean.detach(), var.detach(), _monte_carlo(bnn, plain, x))


def test_conv1d_local_reparametrisation_matches_the_exact_moments():
    """A gated channel (group normal-Jeffreys): the locally reparametrised output's mean and
    variance are the exact ones, g times the channel: E = E g * M x, and
    Var = E g^2 (S x^2 + (M x)^2) - (E g M x)^2, checked by Monte Carlo."""
    bnn = pc.bayesianize(
        nn.Sequential(nn.Conv1d(2, 3, 3, padding=1)), GroupNormalJeffreys(), seed=0
    )
    layer, q = bnn.net[0], bnn.guide["0"]
    _perturb_nj(q)
    x = torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        m_g, v_g = q.scale_loc, q.scale_log_var.exp()
        w = (q.weight_loc, q.weight_log_var.exp())
        b = (q.bias_loc, q.bias_log_var.exp())
        mean, var = F.conv1d(x, w[0], b[0], padding=1), F.conv1d(x.square(), w[1], b[1], padding=1)
        e_mean, e_var = product_moments(m_g[:, None], (m_g.square() + v_g)[:, None], mean, var)
    samples = _lrt_samples(layer, q, x, 20_000)
    _assert_moments(e_mean, e_var, samples, z=5.0)


def test_conv1d_closed_form_information_equals_the_generic_path():
    bnn = pc.bayesianize(nn.Sequential(nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2)))
    layer = bnn.net[0]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 11, generator=g)
    delta = torch.randn(5, 4, 5, generator=g)
    closed = layer.weight_information(x, delta)
    generic = BayesianLayer.weight_information(layer, x, delta)
    torch.testing.assert_close(closed, generic, rtol=1e-5, atol=1e-6)


def test_conv1d_with_other_padding_modes_is_refused():
    with pytest.raises(TypeError, match="Conv1d with padding_mode='reflect'"):
        pc.bayesianize(nn.Sequential(nn.Conv1d(2, 3, 3, padding_mode="reflect")))


class Signal(nn.Module):
    """Conv1d + BatchNorm1d + ReLU, a depthwise Conv1d, global average pooling, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.dw = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = F.relu(self.dw(h))
        return self.fc(torch.flatten(self.pool(h), 1))


def test_conv1d_with_batchnorm1d_fits_and_prunes_to_the_users_class():
    model = Signal()
    assert pc.nn.norm_pairs(model) == {"conv": "bn"}
    x, y = _data((2, 16))
    bnn = pc.bayesianize(model, "group-horseshoe", seed=0)
    assert bnn.bayesian_layers()["conv"].gate_after_norm
    pc.fit(bnn, (x, y), epochs=1, batch_size=12, seed=0, progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)
    _assert_exact(result, bnn, x, Signal)
    assert result.report["params_after"] < result.report["params_before"]
    assert result.module.bn.num_features == result.module.conv.out_channels


def test_conv1d_chain_with_1d_pools_prunes_and_round_trips_through_a_file(tmp_path):
    net = nn.Sequential(
        nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(6, 5, 3, dilation=2), nn.ReLU(), nn.AvgPool1d(2), nn.Flatten(),
        nn.Linear(10, 3),
    )  # fmt: skip
    x, y = _data((2, 16))
    bnn = pc.bayesianize(net, "group-horseshoe", seed=0)
    pc.fit(bnn, (x, y), epochs=1, batch_size=12, seed=0, progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)
    _assert_exact(result, bnn, x, nn.Sequential)
    assert result.report["flops_after"] < result.report["flops_before"]
    save_compact(result.module, tmp_path / "c.pt")
    loaded = load_compact(tmp_path / "c.pt")
    torch.testing.assert_close(loaded(x), result.module(x))


# ------------------------------------------------------------------ 1-d pooling rules
@pytest.mark.parametrize(
    "pool",
    [
        nn.AvgPool1d(2),
        nn.AvgPool1d(3, stride=1),
        nn.AdaptiveAvgPool1d(3),  # windows of 3 and 4 over a length of 7
        nn.MaxPool1d(2),  # windows of two: Clark's maximum is exact
        nn.MaxPool1d(2, stride=1, padding=1),
    ],
)
def test_1d_pool_moments_match_monte_carlo(pool):
    g = torch.Generator().manual_seed(0)
    m, v = torch.randn(1, 2, 7, generator=g), torch.rand(1, 2, 7, generator=g) + 0.1
    samples = pool(m + v.sqrt() * torch.randn(DRAWS, 2, 7, generator=g))
    rule = get_rule(type(pool))
    assert rule is not None and rule.moments is not None
    out = rule.moments(pool, pc.nn.MV(m, v))
    _assert_moments(out.mean, out.var, samples)


def test_1d_pools_refuse_what_their_moments_do_not_cover():
    rule = get_rule(nn.AvgPool1d)
    assert rule is not None and rule.moments is not None
    mv = pc.nn.MV(torch.zeros(1, 2, 6), torch.ones(1, 2, 6))
    with pytest.raises(TypeError, match="without padding"):
        rule.moments(nn.AvgPool1d(2, padding=1), mv)
    rule = get_rule(nn.MaxPool1d)
    assert rule is not None and rule.moments is not None
    with pytest.raises(TypeError, match="without ceil_mode"):
        rule.moments(nn.MaxPool1d(2, ceil_mode=True), mv)


# ------------------------------------------------------------- padded max pooling
@pytest.mark.parametrize(
    "pool",
    [
        nn.MaxPool2d((1, 2), padding=(0, 1)),  # [pad, x0], [x1, x2], ...
        nn.MaxPool2d((2, 1), stride=1, padding=(1, 0)),
        nn.MaxPool2d((1, 2), stride=1, padding=(0, 1), dilation=(1, 2)),
    ],
)
def test_padded_maxpool_is_exact_for_windows_of_two(pool):
    """Every window holds at most two positions inside the input: the padded ones never win
    (torch pads with minus infinity) and Clark's maximum of two is exact."""
    g = torch.Generator().manual_seed(0)
    m, v = torch.randn(1, 3, 3, 5, generator=g), torch.rand(1, 3, 3, 5, generator=g) + 0.1
    samples = pool(m + v.sqrt() * torch.randn(DRAWS, 3, 3, 5, generator=g))
    _assert_moments(*maxpool2d_moments(pool, m, v), samples)


def test_padded_maxpool_skips_padding():
    """A deterministic input gives the pool itself, negative means included (a zero pad
    would win there), and a padded corner window is the window of its inside positions."""
    pool = nn.MaxPool2d(3, 2, padding=1)  # torchvision's ResNet stem
    g = torch.Generator().manual_seed(0)
    m = -1.0 - torch.rand(2, 3, 6, 7, generator=g)
    mean, var = maxpool2d_moments(pool, m, torch.zeros_like(m))
    torch.testing.assert_close(mean, pool(m))
    assert var.abs().max() < 1e-10
    v = torch.rand(2, 3, 6, 7, generator=g) + 0.1
    mean, var = maxpool2d_moments(pool, m, v)
    corner = maxpool2d_moments(nn.MaxPool2d(2), m[:, :, :2, :2], v[:, :, :2, :2])
    torch.testing.assert_close(mean[:, :, :1, :1], corner[0])
    torch.testing.assert_close(var[:, :, :1, :1], corner[1])
    assert torch.isfinite(mean).all() and torch.isfinite(var).all()


def test_propagate_runs_through_torchvision_resnet18():
    """Its stem pools with MaxPool2d(3, 2, padding=1); BatchNorms are attached to layers."""
    torchvision = pytest.importorskip("torchvision")
    bnn = pc.bayesianize(torchvision.models.resnet18(num_classes=10), "gaussian", seed=0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mean, var = pc.propagate(bnn, x)
    assert mean.shape == var.shape == (2, 10)
    assert torch.isfinite(mean).all() and (var > 0).all()


# ----------------------------------------------------------------------- Embedding
class Bag(nn.Module):
    """A bag of embeddings: lookup, ReLU, mean over the sequence, Linear."""

    def __init__(self, num=20, dim=6):
        super().__init__()
        self.emb = nn.Embedding(num, dim, padding_idx=0)
        self.fc = nn.Linear(dim, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.emb(x)).mean(1))


def _tokens(n=32, length=5, num=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num, (n, length), generator=g), torch.randint(0, 3, (n,), generator=g)


def test_embedding_layer_looks_up_its_posterior_mean():
    bnn = pc.bayesianize(nn.Sequential(nn.Embedding(10, 4, padding_idx=0)), "gaussian", seed=0)
    layer, q = bnn.net[0], bnn.guide["0"]
    assert isinstance(layer, BayesianEmbedding)
    # groups are the embedding dimensions, the weight is held output-first
    assert layer.spec.weight_shape == (4, 10) and layer.spec.num_groups == 4
    assert layer.groups_on_outputs and layer.flops(torch.Size([1, 3, 4])) == 0
    idx = torch.tensor([[0, 3, 9], [3, 3, 1]])
    table = q.weight_loc.detach().T.clone()
    table[0] = 0.0  # the padding row
    torch.testing.assert_close(bnn.predict_point(idx), table[idx])
    torch.testing.assert_close(bnn.predict_point(idx.float()), table[idx])  # as fit hands it
    with pytest.raises(ValueError, match="non-integer"):
        bnn.predict_point(idx.float() + 0.5)
    plain = layer.to_plain(q.weight_loc.detach(), None)
    assert type(plain) is nn.Embedding and plain.padding_idx == 0
    torch.testing.assert_close(plain(idx), table[idx])
    assert "padding_idx=0" in repr(layer)


def test_embedding_moments_are_the_looked_up_entries():
    bnn, _ = _gaussian_bnn(nn.Sequential(nn.Embedding(10, 4, padding_idx=2)))
    q = bnn.guide["0"]
    idx = torch.tensor([[2, 3, 9], [3, 3, 1]])
    mean, var = pc.propagate(bnn, idx)
    loc, v = q.weight_loc.detach().T.clone(), q.weight_log_var.detach().exp().T.clone()
    loc[2] = v[2] = 0.0
    torch.testing.assert_close(mean.detach(), loc[idx])
    torch.testing.assert_close(var.detach(), v[idx])
    layer = bnn.net[0]
    with pytest.raises(ValueError, match="not random"):
        layer.output_moments(idx.float(), torch.ones(2, 3), (q.weight_loc, v.T), None)


def test_embedding_local_reparametrisation_matches_the_exact_moments():
    """Per position, the looked-up entry times its dimension's gate: E = E g M_ji and
    Var = E g^2 (S_ji + M_ji^2) - (E g M_ji)^2 (group normal-Jeffreys)."""
    bnn = pc.bayesianize(nn.Sequential(nn.Embedding(10, 4)), GroupNormalJeffreys(), seed=0)
    layer, q = bnn.net[0], bnn.guide["0"]
    _perturb_nj(q)
    idx = torch.tensor([[0, 3, 9], [3, 3, 1]])
    with torch.no_grad():
        m_g, v_g = q.scale_loc, q.scale_log_var.exp()
        mean, var = q.weight_loc.T[idx], q.weight_log_var.exp().T[idx]
        e_mean, e_var = product_moments(m_g, m_g.square() + v_g, mean, var)
    samples = _lrt_samples(layer, q, idx, 20_000)
    assert samples.shape == (20_000, 2, 3, 4)
    _assert_moments(e_mean, e_var, samples, z=5.0)


def test_embedding_information_equals_the_generic_path():
    bnn = pc.bayesianize(nn.Sequential(nn.Embedding(7, 3, padding_idx=1)))
    layer = bnn.net[0]
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 7, (6, 4), generator=g)
    delta = torch.randn(6, 4, 3, generator=g)
    closed = layer.weight_information(idx, delta)
    generic = BayesianLayer.weight_information(layer, idx.float(), delta)
    torch.testing.assert_close(closed, generic)
    assert closed[:, 1].abs().max() == 0  # the padding row: no gradient


def test_embedding_network_fits_and_exports_its_dense_copy():
    """Indices flow through fit (handed over as floats); the masked posterior-mean network
    copied into the user's class equals predict_point, removed dimensions zero."""
    x, y = _tokens()
    bnn = pc.bayesianize(Bag(), "group-horseshoe", seed=0)
    history = pc.fit(bnn, (x, y), epochs=1, batch_size=16, seed=0, progress=False)
    assert all(torch.isfinite(torch.tensor(history.loss)))
    masks = {n: torch.ones(layer.spec.num_groups, dtype=torch.bool)
             for n, layer in bnn.bayesian_layers().items()}  # fmt: skip
    masks["emb"][[1, 4]] = False
    dense = dense_module(bnn, masks)
    assert type(dense) is Bag and type(dense.emb) is nn.Embedding
    assert dense.emb.weight[:, [1, 4]].abs().max() == 0
    ref = bnn.predict_point(x, masks)
    torch.testing.assert_close(dense(x), ref, rtol=1e-5, atol=1e-6)


def test_embedding_refusals():
    with pytest.raises(TypeError, match="max_norm"):
        pc.bayesianize(nn.Sequential(nn.Embedding(5, 3, max_norm=1.0)))

    class Normed(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.bn = nn.BatchNorm1d(3)

        def forward(self, x):
            return self.bn(self.emb(x))

    with pytest.raises(TypeError, match="BatchNorm normalises axis 1"):
        pc.bayesianize(Normed())


def test_embedding_saves_as_a_compact_file(tmp_path):
    net = nn.Sequential(nn.Embedding(9, 4, padding_idx=3), nn.Flatten(), nn.Linear(8, 2))
    save_compact(net, tmp_path / "e.pt")
    loaded = load_compact(tmp_path / "e.pt")
    assert loaded[0].padding_idx == 3
    idx = torch.tensor([[1, 3], [8, 0]])
    torch.testing.assert_close(loaded(idx), net.eval()(idx))


# ---------------------------------------------------------- grouped convolutions in files
def test_compact_depthwise_sequential_round_trips_through_a_file(tmp_path):
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    )  # fmt: skip
    x, y = _data((3, 8, 8))
    bnn = pc.bayesianize(net, "group-horseshoe", seed=0)
    pc.fit(bnn, (x, y), epochs=1, batch_size=12, seed=0, progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)
    _assert_exact(result, bnn, x, nn.Sequential)
    depthwise = result.module[2]
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
    save_compact(result.module, tmp_path / "dw.pt")
    loaded = load_compact(tmp_path / "dw.pt")
    assert loaded[2].groups == depthwise.groups
    torch.testing.assert_close(loaded(x), result.module(x))


def test_compact_grouped_convolutions_round_trip_through_a_factory_file(tmp_path):
    source = tmp_path / "model.py"
    source.write_text(
        "from torch import nn\n"
        "def build(width=8):\n"
        "    return nn.ModuleDict({\n"
        "        'dw': nn.Conv2d(width, width, 3, padding=1, groups=width),\n"
        "        'g1': nn.Conv1d(width, 4, 1, groups=2, bias=False),\n"
        "        'emb': nn.Embedding(10, width, padding_idx=0),\n"
        "    })\n"
    )
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("_user_model", source)
    assert spec is not None and spec.loader is not None
    user = module_from_spec(spec)
    spec.loader.exec_module(user)
    compact = user.build(width=6)  # a "smaller" instance than the factory's default
    save_compact(compact, tmp_path / "m.pt", factory=f"{source}:build")
    loaded = load_compact(tmp_path / "m.pt", factory=user.build)
    assert loaded["dw"].groups == 6 and loaded["g1"].groups == 2 and loaded["g1"].bias is None
    assert loaded["emb"].padding_idx == 0
    for key in ("dw", "g1", "emb"):
        for name, p in compact[key].named_parameters():
            torch.testing.assert_close(loaded[key].get_parameter(name), p)
