"""Op rules of real models: activations, pooling and means, joins, normalisation, masks.

Every moment rule is checked against brute force: Monte Carlo draws of a Gaussian input
(tolerance ``Z`` Monte-Carlo standard errors), the exact Jacobian of a linear op, or
dense quadrature in float64. All randomness comes from local generators.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any, cast

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

import pyrocompress as pc
from pyrocompress.nn import rules as R
from pyrocompress.nn.moments import propagate
from pyrocompress.nn.rules import MC, MV, get_rule, mask_of

DRAWS = 200_000
Z = 4.5  # Monte-Carlo standard errors: a false alarm per comparison has p < 1e-5


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_moments(mean, var, samples, *, z: float = Z):
    """Mean and variance within ``z`` Monte-Carlo standard errors of the sample's.

    The standard error of the sample variance is sqrt((mu4 - s^4) / n). Events rarer
    than about 10 / n can be missing from n draws (a clipped Gaussian far in its flat
    part): they shift a moment by at most 10 / n times the output's range ``r`` (``r^2``
    for the variance), ``r`` taken as at least 1.
    """
    n = samples.shape[0]
    s_mean, s_var = samples.mean(0), samples.var(0)
    se_mean = (s_var / n).sqrt()
    se_var = (((samples - s_mean) ** 4).mean(0) - s_var**2).clamp_min(0).div(n).sqrt()
    r = (samples.amax(0) - samples.amin(0)).clamp_min(1.0)
    rare = 10.0 / n
    assert torch.all((mean - s_mean).abs() <= z * se_mean + rare * r), (mean - s_mean).abs().max()
    assert torch.all((var - s_var).abs() <= z * se_var + rare * r**2), (var - s_var).abs().max()


def _draws(m: torch.Tensor, v: torch.Tensor, seed: int = 1, n: int = DRAWS) -> torch.Tensor:
    eps = torch.randn(n, *m.shape, generator=_gen(seed), dtype=m.dtype)
    return m + v.sqrt() * eps


def _grid(dtype=torch.float64):
    """Means across every kink of the activations below, and variances small to large."""
    m = torch.tensor([-7.0, -3.2, -3.0, -1.0, -0.2, 0.0, 0.4, 1.5, 2.9, 3.0, 5.5, 6.3, 9.0])
    v = torch.tensor([0.01, 0.3, 1.0, 4.0])
    return m[:, None].expand(-1, 4).to(dtype), v[None, :].expand(13, -1).to(dtype)


# ------------------------------------------------------------------ the registry
MODULES = [
    nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Hardswish,
    nn.Hardsigmoid, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh,
    nn.AdaptiveAvgPool2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, R.Mean,
]  # fmt: skip
FUNCTIONS = [
    F.relu6, F.hardtanh, F.hardsigmoid, F.leaky_relu, F.gelu, F.silu, F.hardswish, F.mish,
    F.elu, F.celu, F.selu, F.softplus, torch.tanh, torch.sigmoid, "tanh", "sigmoid",
    F.adaptive_avg_pool2d, torch.mean, "mean", operator.add, operator.iadd, torch.add, "add",
    "add_", operator.sub, torch.sub, "sub", operator.mul, torch.mul, "mul",
    operator.truediv, torch.div, "div", operator.neg, torch.neg, "neg",
    torch.cat, torch.concat, torch.concatenate,
]  # fmt: skip


def _op_id(key) -> str:
    """A test id without a memory address, so that pytest-xdist's workers agree."""
    return key if isinstance(key, str) else f"{key.__module__}.{key.__qualname__}"


@pytest.mark.parametrize("key", MODULES + FUNCTIONS, ids=_op_id)
def test_every_listed_op_has_moments_and_a_covariance_rule(key):
    rule = get_rule(key)
    assert rule is not None and rule.moments is not None and rule.covariance is not None
    if isinstance(key, type):
        assert rule.args is not None  # writable to a compact-model file


def test_adaptive_max_pool_is_registered_without_moments_and_refused_by_name():
    rule = get_rule(nn.AdaptiveMaxPool2d)
    assert rule is not None and rule.moments is None and rule.mask == "same"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool = nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(1)

        def forward(self, x):
            return self.pool(self.conv(x)).flatten(1)

    bnn = pc.bayesianize(Net(), "gaussian", seed=0)
    with pytest.raises(TypeError, match="does not support AdaptiveMaxPool2d"):
        propagate(bnn, torch.zeros(2, 1, 5, 5))


def test_an_op_without_a_rule_is_refused_with_its_name():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return torch.exp(self.fc(x))

    # refused by name at bayesianize (or, were it let through, at moment propagation)
    with pytest.raises(TypeError, match=r"(unsupported op|does not support) exp\b"):
        propagate(pc.bayesianize(Net(), "gaussian", seed=0), torch.zeros(2, 3))


# ------------------------------------------------------------------------ masks
def test_mask_kinds_of_fixed_rules():
    for key in (nn.GELU, nn.Hardswish, nn.BatchNorm2d, nn.AdaptiveAvgPool2d, F.gelu, "tanh"):
        assert mask_of(get_rule(key), key) == "same"
    assert mask_of(get_rule(nn.LayerNorm), nn.LayerNorm(4)) is None
    assert mask_of(get_rule(nn.Flatten), nn.Flatten()) == "flatten"
    assert mask_of(None, "anything") is None


def test_mask_kinds_that_depend_on_the_call():
    x4, x2 = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3)
    for op in (operator.add, torch.add, "add", operator.sub, operator.mul, torch.mul):
        rule = get_rule(op)
        assert mask_of(rule, op, (x4, x4)) == "join"  # a residual sum, a gating
        assert mask_of(rule, op, (x4, 1.0)) == "same"  # x + 1 is elementwise
        assert mask_of(rule, op, (2.0, x4)) == "same"
        assert mask_of(rule, op, (3, 4)) is None  # shape arithmetic
        assert mask_of(rule, op, (None, None)) == "join"  # data nodes replaced by None
    div = get_rule(operator.truediv)
    assert mask_of(div, operator.truediv, (x4, 2.0)) == "same"
    assert mask_of(div, operator.truediv, (x4, x4)) is None
    cat = get_rule(torch.cat)
    assert mask_of(cat, torch.cat, ([x4, x4], 1)) == "concat"
    assert mask_of(cat, torch.cat, ([x4, x4],), {"dim": -3}) == "concat"
    assert mask_of(cat, torch.cat, ([x2, x2],), {"dim": -1}) == "concat"
    assert mask_of(cat, torch.cat, ([x4, x4],), {"dim": -1}) is None  # along the width
    assert mask_of(cat, torch.cat, ([x4, x4],)) is None  # along the batch
    assert mask_of(cat, torch.cat, ([None, None], -1)) is None  # number of dims unknown
    assert mask_of(cat, torch.cat, ([None, None], 1)) == "concat"
    mean = get_rule(torch.mean)
    assert mask_of(mean, torch.mean, (x4, (2, 3))) == "same"
    assert mask_of(mean, "mean", (x4, [-2, -1]), {"keepdim": True}) == "same"
    assert mask_of(mean, "mean", (x4,), {"dim": 1}) is None  # over the channels
    assert mask_of(mean, "mean", (x2, -1)) is None
    assert mask_of(mean, "mean", (x4,)) is None  # over everything
    assert mask_of(mean, "mean", (None, (2, 3))) == "same"
    assert mask_of(mean, "mean", (None, (-2, -1))) is None  # number of dims unknown
    module = get_rule(R.Mean)
    assert mask_of(module, R.Mean((2, 3))) == "same"
    assert mask_of(module, R.Mean((-2, -1)), (x4,)) == "same"
    assert mask_of(module, R.Mean(1)) is None


def test_mask_kinds_from_fx_nodes_with_shape_metadata():
    class Net(nn.Module):
        def forward(self, x):
            y = torch.cat([x, x], -1)
            return y.mean((-2, -1)) + y.mean(-1).sum(-1)

    graph = fx.symbolic_trace(Net())
    ShapeProp(graph).propagate(torch.zeros(2, 3, 4, 5))
    kinds = {}
    for node in graph.graph.nodes:
        if node.op in ("call_function", "call_method") and node.target in (torch.cat, "mean"):
            kinds[node.name] = mask_of(get_rule(node.target), node.target, node.args, node.kwargs)
    assert kinds == {"cat": None, "mean": "same", "mean_1": "same"}


def test_a_mask_function_must_return_a_kind():
    with pytest.raises(TypeError, match="returned 'bogus'"):
        mask_of(R.OpRule(mask=lambda op, *a: cast(Any, "bogus")), "op")


# -------------------------------------------------------------------- activations
PIECEWISE = [nn.ReLU(), nn.ReLU6(), nn.Hardtanh(-1.0, 0.5), nn.LeakyReLU(0.2),
             nn.LeakyReLU(-0.5), nn.Hardsigmoid(), nn.Hardswish()]  # fmt: skip


def _slope_samples(f, a: torch.Tensor) -> torch.Tensor:
    a = a.clone().requires_grad_()
    (grad,) = torch.autograd.grad(f(a).sum(), a)
    return grad


@pytest.mark.parametrize("act", PIECEWISE, ids=repr)
def test_piecewise_polynomial_activations_are_exact(act):
    m, v = _grid()
    _, moments = R._activation(act, (), {})
    mean, var, slope = moments(m, v)
    assert isinstance(moments, functools.partial)
    assert moments.func is R.piecewise_polynomial_moments  # the exact rule, not quadrature
    a = _draws(m, v)
    _assert_moments(mean, var, act(a))
    # the slope E f'(a): against the derivative's draws (bounded, so the same test)
    g = _slope_samples(act, a)
    _assert_moments(slope, g.var(0), g)  # the derivative's draws, for its mean


def test_piecewise_relu_is_the_rectified_gaussian_and_float32_is_stable():
    m, v = _grid()
    mean, var, _ = R.piecewise_polynomial_moments((0.0,), ((0.0,), (0.0, 1.0)), m, v)
    ref = R.relu_moments(m, v)
    torch.testing.assert_close((mean, var), ref, rtol=1e-10, atol=1e-12)
    # tiny variances in float32: mean -> f(m) and var -> f'(m)^2 v (centred computation)
    m32 = torch.tensor([-10.0, -2.0, 2.0, 2.9, 10.0, 100.0])
    v32 = torch.full_like(m32, 1e-6)
    act = nn.Hardswish()
    mean, var, _ = R._activation(act, (), {})[1](m32, v32)
    assert torch.allclose(mean, act(m32), atol=1e-6)
    slope = torch.tensor([0.0, -1 / 6, 7 / 6, 8.8 / 6, 1.0, 1.0])
    torch.testing.assert_close(var / v32, slope.square(), rtol=1e-3, atol=1e-6)


def test_piecewise_polynomial_moments_validate_their_pieces():
    m, v = torch.zeros(2), torch.ones(2)
    with pytest.raises(ValueError, match="2 breaks need 3 polys"):
        R.piecewise_polynomial_moments((0.0, 1.0), ((0.0,), (1.0,)), m, v)
    with pytest.raises(ValueError, match="strictly increasing"):
        R.piecewise_polynomial_moments((1.0, 0.0), ((0.0,), (1.0,), (2.0,)), m, v)
    with pytest.raises(ValueError, match="degree <= 2"):
        R.piecewise_polynomial_moments((0.0,), ((0.0,), (0.0, 0.0, 0.0, 1.0)), m, v)


QUADRATURE = [nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Mish(), nn.ELU(), nn.CELU(0.5),
              nn.SELU(), nn.Tanh(), nn.Sigmoid(), nn.Softplus(beta=2.0)]  # fmt: skip


@pytest.mark.parametrize("act", QUADRATURE, ids=repr)
def test_quadrature_activations_match_monte_carlo(act):
    m, v = _grid()
    out = R.elementwise_moments(act, MV(m, v))
    _assert_moments(out.mean, out.var, act(_draws(m, v)))


def test_a_new_activation_needs_only_its_registration(monkeypatch):
    """The module docstring's example: the generic rule gives a new activation moments."""
    monkeypatch.setattr(R, "_RULES", dict(R._RULES))  # dropped after the test
    R.register_op(nn.LogSigmoid, R.OpRule(moments=R.elementwise_moments, mask="same", args=()))
    rule = get_rule(nn.LogSigmoid)
    assert rule is not None and rule.moments is not None
    m, v = _grid()
    out = rule.moments(nn.LogSigmoid(), MV(m, v))
    _assert_moments(out.mean, out.var, nn.LogSigmoid()(_draws(m, v)))


def _dense(f, m: float, sd: float, points: int = 20_001):
    """Mean and sd of f(m + sd z) by the trapezoid rule on [-12, 12] in float64."""
    z = torch.linspace(-12.0, 12.0, points, dtype=torch.float64)
    w = torch.exp(-0.5 * z.square())
    y = f(m + sd * z)
    mean = (w * y).sum() / w.sum()
    return mean, ((w * (y - mean).square()).sum() / w.sum()).sqrt()


# the accuracy of 32-node Gauss-Hermite stated in gauss_hermite_moments, input sd <= 2
ACCURACY = [(nn.GELU(), 1e-4), (nn.SiLU(), 1e-4), (nn.Mish(), 1e-4), (nn.Sigmoid(), 1e-4),
            (nn.Softplus(), 1e-4), (nn.Tanh(), 1e-3), (nn.ELU(), 1e-3), (nn.SELU(), 1e-2),
            (torch.relu, 1e-2)]  # fmt: skip


@pytest.mark.parametrize(("act", "bound"), ACCURACY, ids=lambda a: repr(a)[:20])
def test_quadrature_accuracy_against_dense_quadrature(act, bound):
    """Errors in the mean and the sd, in units of the input sd, over means in [-4, 4]."""
    worst = 0.0
    for sd in (0.1, 0.5, 1.0, 2.0):
        for m in torch.linspace(-4.0, 4.0, 17, dtype=torch.float64).tolist():
            mean, var, _ = R.gauss_hermite_moments(
                act, torch.tensor([m], dtype=torch.float64), torch.tensor([sd * sd])
            )
            ref_mean, ref_sd = _dense(act, m, sd)
            err = max(abs(mean.item() - ref_mean.item()), abs(var.sqrt().item() - ref_sd.item()))
            worst = max(worst, err / sd)
    assert worst < bound


def test_quadrature_is_exact_for_polynomials_and_gives_the_slope():
    m = torch.tensor([-1.5, 0.0, 0.7, 3.0], dtype=torch.float64)
    v = torch.tensor([0.2, 1.0, 2.5, 0.01], dtype=torch.float64)
    mean, var, slope = R.gauss_hermite_moments(lambda t: t.square() + t, m, v)
    # a + a^2: E = m + m^2 + v, Var = v (1 + 2m)^2 + 2 v^2, E f' = 1 + 2m
    torch.testing.assert_close(mean, m + m.square() + v)
    torch.testing.assert_close(var, v * (1 + 2 * m).square() + 2 * v.square())
    torch.testing.assert_close(slope, 1 + 2 * m)
    with pytest.raises(ValueError, match="nodes must be"):
        R.gauss_hermite_moments(torch.tanh, m, v, nodes=1)


def test_functional_and_method_forms_use_their_module():
    m, v = _grid()
    x = MV(m, v)
    for fn, args, kwargs, module in [
        (F.gelu, (), {"approximate": "tanh"}, nn.GELU("tanh")),
        (F.leaky_relu, (0.3,), {}, nn.LeakyReLU(0.3)),
        (F.hardtanh, (-2.0, 2.0), {"inplace": True}, nn.Hardtanh(-2.0, 2.0)),
        (F.relu6, (), {}, nn.ReLU6()),
        (F.softplus, (), {"beta": 2.0}, nn.Softplus(2.0)),
        ("tanh", (), {}, nn.Tanh()),
        (torch.sigmoid, (), {}, nn.Sigmoid()),
    ]:
        rule = get_rule(fn)
        assert rule is not None and rule.moments is not None and rule.module is not None
        out = rule.moments(fn, x, *args, **kwargs)
        ref = R.elementwise_moments(module, x)
        torch.testing.assert_close((out.mean, out.var), (ref.mean, ref.var))
        built = rule.module(fn, None, *args, **kwargs)
        assert type(built) is type(module) and repr(built) == repr(module)
    with pytest.raises(ValueError, match="unexpected argument 'slope'"):
        get_rule(F.leaky_relu).module(F.leaky_relu, None, slope=0.1)  # type: ignore[union-attr]


def test_in_place_activations_leave_their_input_alone():
    m, v = _grid()
    x = MV(m.clone(), v.clone())
    for op, args in ((nn.ReLU6(inplace=True), ()), (nn.Hardswish(inplace=True), ()),
                     (nn.SiLU(inplace=True), ()), (F.hardswish, (True,))):  # fmt: skip
        rule = get_rule(type(op) if isinstance(op, nn.Module) else op)
        assert rule is not None and rule.moments is not None and rule.covariance is not None
        rule.moments(op, x, *args)
        rule.covariance(op, MC(x.mean, None), *args)
        assert torch.equal(x.mean, m) and torch.equal(x.var, v)


def _correlated(d: int = 4, n: int = 3, seed: int = 0, rho: float = 1.0):
    """Means and covariances [n, d, d]; ``rho`` shrinks the correlations towards 0."""
    g = _gen(seed)
    mean = torch.randn(n, d, generator=g, dtype=torch.float64)
    root = torch.randn(n, d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    cov = root @ root.transpose(-1, -2) + 0.05 * torch.eye(d, dtype=torch.float64)
    sd = cov.diagonal(0, -2, -1).sqrt()
    outer = sd[..., :, None] * sd[..., None, :]
    eye = torch.eye(d, dtype=torch.float64)
    return mean, (rho * cov / outer + (1 - rho) * eye) * outer


@pytest.mark.parametrize("act", [nn.GELU(), nn.Hardswish(), nn.Tanh(), nn.LeakyReLU(0.1)])
def test_elementwise_covariance_is_positive_semi_definite_with_exact_diagonal(act):
    rule = get_rule(type(act))
    assert rule is not None and rule.covariance is not None
    mean, cov = _correlated()  # strong correlations (up to 0.9)
    out = rule.covariance(act, MC(mean, cov))
    diag = R.elementwise_moments(act, MV(mean, cov.diagonal(0, -2, -1)))
    torch.testing.assert_close(out.mean, diag.mean)
    torch.testing.assert_close(out.cov.diagonal(0, -2, -1), diag.var)
    assert torch.linalg.eigvalsh(out.cov).min() > -1e-12
    # against Monte Carlo for correlations up to 0.26: the first-order (Price) term leaves
    # the second-order one, rho^2 / 2 E f''_i E f''_j var_i var_j < 0.035 sd_i sd_j here,
    # and the Monte-Carlo error of 100k draws is below 0.02 sd_i sd_j (4.5 s.e.)
    mean, cov = _correlated(rho=0.3)
    out = rule.covariance(act, MC(mean, cov))
    eps = torch.randn(100_000, *mean.shape, generator=_gen(7), dtype=torch.float64)
    mc = act(mean + torch.einsum("nij,snj->sni", torch.linalg.cholesky(cov), eps))
    centred = mc - mc.mean(0)
    mc_cov = torch.einsum("sni,snj->nij", centred, centred) / (len(mc) - 1)
    scale = mc_cov.diagonal(0, -2, -1).sqrt()
    assert ((out.cov - mc_cov).abs() / (scale[..., :, None] * scale[..., None, :])).max() < 0.055


def test_elementwise_covariance_of_a_linear_map_is_exact():
    mean, cov = _correlated()
    out = R.elementwise_covariance(mean, cov, lambda m, v: (2 * m + 1, 4 * v, 2 + 0 * m))
    torch.testing.assert_close(out.cov, 4 * cov)
    # and a deterministic input stays deterministic
    rule = get_rule(nn.GELU)
    assert rule is not None and rule.covariance is not None
    out = rule.covariance(nn.GELU(), MC(mean, None))
    assert out.cov is None and torch.equal(out.mean, F.gelu(mean))


# ------------------------------------------------------------------- sums and products
def _two_inputs(shape=(2, 3, 2, 2)):
    g = _gen(3)
    a = MV(torch.randn(shape, generator=g, dtype=torch.float64),
           torch.rand(shape, generator=g, dtype=torch.float64) + 0.1)  # fmt: skip
    b = MV(torch.randn(shape, generator=g, dtype=torch.float64),
           torch.rand(shape, generator=g, dtype=torch.float64) + 0.1)  # fmt: skip
    return a, b


@pytest.mark.parametrize(
    ("op", "args", "kwargs", "f"),
    [
        (operator.add, ("a", "b"), {}, lambda a, b: a + b),
        (torch.add, ("a", "b"), {"alpha": 2.0}, lambda a, b: a + 2.0 * b),
        ("add_", ("a", "b"), {}, lambda a, b: a + b),
        (operator.add, (1.5, "a"), {}, lambda a, b: 1.5 + a),
        (operator.sub, ("a", "b"), {}, lambda a, b: a - b),
        (torch.sub, ("a", 2.0), {"alpha": 3.0}, lambda a, b: a - 6.0),
        (operator.mul, ("a", "b"), {}, lambda a, b: a * b),
        (operator.mul, (-3.0, "a"), {}, lambda a, b: -3.0 * a),
        ("mul", ("a", 0.5), {}, lambda a, b: 0.5 * a),
        (operator.truediv, ("a", 4.0), {}, lambda a, b: a / 4.0),
        (operator.neg, ("a",), {}, lambda a, b: -a),
    ],
)
def test_sums_and_products_of_independent_inputs_match_monte_carlo(op, args, kwargs, f):
    a, b = _two_inputs()
    values = {"a": a, "b": b}
    rule = get_rule(op)
    assert rule is not None and rule.moments is not None
    out = rule.moments(op, *[values.get(x, x) for x in args], **kwargs)  # type: ignore[arg-type]
    samples = f(_draws(a.mean, a.var, seed=1), _draws(b.mean, b.var, seed=2))
    _assert_moments(out.mean, out.var, samples)


def test_sums_broadcast_a_gate_and_compute_shape_arithmetic():
    a, _ = _two_inputs()
    gate = MV(torch.rand(2, 3, 1, 1, dtype=torch.float64), torch.zeros(2, 3, 1, 1))
    out = get_rule(operator.mul).moments(operator.mul, a, gate)  # type: ignore[union-attr]
    torch.testing.assert_close(out.var, a.var * gate.mean.square())
    assert get_rule(operator.mul).moments(operator.mul, 3, 4) == 12  # type: ignore[union-attr]
    assert get_rule(operator.add).moments(operator.add, 3, 4) == 7  # type: ignore[union-attr]
    div = get_rule(torch.div)
    assert div is not None and div.moments is not None
    with pytest.raises(TypeError, match="not by a tensor"):
        div.moments(torch.div, a, a)
    with pytest.raises(TypeError, match="rounding_mode='floor'"):
        div.moments(torch.div, a, 2.0, rounding_mode="floor")


def test_full_covariance_sums_and_products_with_one_random_input():
    mean, cov = _correlated()
    det = torch.randn(3, 4, generator=_gen(5), dtype=torch.float64)
    add, mul = get_rule(operator.add), get_rule(operator.mul)
    assert add is not None and add.covariance is not None
    assert mul is not None and mul.covariance is not None
    out = add.covariance(operator.add, MC(mean, cov), MC(det, None))
    torch.testing.assert_close(out.mean, mean + det)
    torch.testing.assert_close(out.cov, cov)
    out = mul.covariance(operator.mul, MC(det, None), MC(mean, cov))
    torch.testing.assert_close(out.cov, det[:, :, None] * cov * det[:, None, :])
    out = add.covariance(operator.add, 2.0, MC(mean, cov))
    torch.testing.assert_close(out.mean, mean + 2.0)
    with pytest.raises(TypeError, match="two random tensors"):
        add.covariance(operator.add, MC(mean, cov), MC(mean, cov))
    with pytest.raises(TypeError, match="two random tensors"):
        mul.covariance(operator.mul, MC(mean, cov), MC(mean, cov))


# ---------------------------------------------------------------------- concatenation
def test_cat_concatenates_means_and_variances_along_a_valid_dim():
    a, b = _two_inputs()
    rule = get_rule(torch.cat)
    assert rule is not None and rule.moments is not None and rule.covariance is not None
    out = rule.moments(torch.cat, [a, b], dim=1)
    assert torch.equal(out.mean, torch.cat([a.mean, b.mean], 1))
    assert torch.equal(out.var, torch.cat([a.var, b.var], 1))
    out = rule.moments(torch.cat, [a, b], -1)  # along the width: moments are fine
    assert out.mean.shape == (2, 3, 2, 4)
    with pytest.raises(TypeError, match="batch dimension"):
        rule.moments(torch.cat, [a, b])
    with pytest.raises(TypeError, match=r"dim must be an int in \[-4, 4\)"):
        rule.moments(torch.cat, [a, b], 4)
    # full covariance: one random piece is exact (block diagonal), two are refused
    mean, cov = _correlated()
    det = torch.randn(3, 2, dtype=torch.float64, generator=_gen(1))
    out = rule.covariance(torch.cat, [MC(det, None), MC(mean, cov)], 1)
    assert torch.equal(out.cov[:, 2:, 2:], cov) and torch.all(out.cov[:, :2] == 0)
    assert rule.covariance(torch.cat, [MC(det, None), MC(det, None)], 1).cov is None
    with pytest.raises(TypeError, match="several random"):
        rule.covariance(torch.cat, [MC(mean, cov), MC(mean, cov)], 1)


# ------------------------------------------------------------------ pooling and means
def _linear_moments(fn, m: torch.Tensor, v: torch.Tensor):
    """Exact moments of a linear map of uncorrelated inputs: J m and (J ∘ J) v."""
    jac = torch.autograd.functional.jacobian(fn, m)  # [*out, *in]
    flat = jac.reshape(math.prod(jac.shape[: jac.dim() - m.dim()]), -1)
    out_shape = jac.shape[: jac.dim() - m.dim()]
    return (flat @ m.reshape(-1)).reshape(out_shape), (flat.square() @ v.reshape(-1)).reshape(
        out_shape
    )


@pytest.mark.parametrize(
    ("in_hw", "size"), [((7, 5), (3, 2)), ((6, 6), 4), ((5, 7), (None, 3)), ((5, 5), 1)]
)
def test_adaptive_avg_pool_is_exact_for_uncorrelated_inputs(in_hw, size):
    g = _gen(0)
    m = torch.randn(2, 3, *in_hw, generator=g, dtype=torch.float64)
    v = torch.rand(2, 3, *in_hw, generator=g, dtype=torch.float64)
    mean, var = R.adaptive_avgpool2d_moments(size, m, v)
    ref = _linear_moments(lambda t: F.adaptive_avg_pool2d(t, size), m, v)
    torch.testing.assert_close((mean, var), ref)
    module, functional = get_rule(nn.AdaptiveAvgPool2d), get_rule(F.adaptive_avg_pool2d)
    assert module is not None and module.moments is not None
    assert functional is not None and functional.moments is not None
    out = module.moments(nn.AdaptiveAvgPool2d(size), MV(m, v))
    torch.testing.assert_close((out.mean, out.var), ref)
    out = functional.moments(F.adaptive_avg_pool2d, MV(m, v), size)
    torch.testing.assert_close((out.mean, out.var), ref)
    assert isinstance(functional.module, object) and functional.module is not None
    assert functional.module(F.adaptive_avg_pool2d, None, size).output_size == size


def test_adaptive_avg_pool_matches_monte_carlo_and_validates():
    g = _gen(2)
    m, v = torch.randn(1, 2, 5, 3, generator=g), torch.rand(1, 2, 5, 3, generator=g)
    mean, var = R.adaptive_avgpool2d_moments((2, 2), m, v)
    _assert_moments(mean, var, F.adaptive_avg_pool2d(_draws(m, v, n=50_000)[:, 0], (2, 2))[:, None])
    with pytest.raises(TypeError, match="output_size must hold positive ints"):
        R.adaptive_avgpool2d_moments((0, 2), m, v)
    with pytest.raises(TypeError, match=r"\[n, c, h, w\]"):
        R.adaptive_avgpool2d_moments(1, m[0, 0, 0], v[0, 0, 0])


@pytest.mark.parametrize(
    ("op", "args", "kwargs"),
    [
        ("mean", ((2, 3),), {}),
        ("mean", ([-2, -1],), {"keepdim": True}),
        (torch.mean, (), {"dim": (2, 3)}),
        (torch.mean, (1,), {}),  # over channels: moments are fine (the mask is not)
        ("mean", (-1,), {}),
    ],
)
def test_means_are_exact_for_uncorrelated_inputs(op, args, kwargs):
    g = _gen(1)
    m = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    v = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    rule = get_rule(op)
    assert rule is not None and rule.moments is not None
    out = rule.moments(op, MV(m, v), *args, **kwargs)
    ref = _linear_moments(lambda t: torch.mean(t, *args, **kwargs), m, v)
    torch.testing.assert_close((out.mean, out.var), ref)
    if rule.module is not None and 1 not in args:
        module = rule.module(op, None, *args, **kwargs)
        torch.testing.assert_close(module(m), torch.mean(m, *args, **kwargs))
        out = get_rule(R.Mean).moments(module, MV(m, v))  # type: ignore[union-attr]
        torch.testing.assert_close((out.mean, out.var), ref)


def test_means_that_mix_examples_are_refused():
    x = MV(torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4))
    with pytest.raises(TypeError, match="over every dimension"):
        R.mean_moments(x, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch dimension"):
        R.mean_moments(x, (0, 2))
    with pytest.raises(TypeError, match="dim is empty"):
        R.mean_moments(x, ())
    with pytest.raises(ValueError, match="batch dimension 0"):
        R.Mean((0, 1))


def test_a_global_mean_module_saves_and_loads(tmp_path):
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.GELU(), R.Mean((2, 3)), nn.Linear(3, 2))
    x = torch.randn(4, 2, 6, 6, generator=_gen(0))
    pc.save_compact(net, tmp_path / "m.pt")
    torch.testing.assert_close(pc.load_compact(tmp_path / "m.pt")(x), net(x))


# ------------------------------------------------------------------------ normalisation
def _batchnorm(cls, features: int, seed: int = 0) -> nn.Module:
    g = _gen(seed)
    bn = cls(features).double()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(features, generator=g))
        bn.running_var.copy_(torch.rand(features, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(features, generator=g))
        bn.bias.copy_(torch.randn(features, generator=g))
    return bn


@pytest.mark.parametrize(("cls", "shape"), [(nn.BatchNorm1d, (3, 4)), (nn.BatchNorm1d, (3, 4, 5)),
                                            (nn.BatchNorm2d, (2, 4, 3, 3))])  # fmt: skip
def test_batchnorm_is_its_evaluation_mode_affine_map(cls, shape):
    bn = _batchnorm(cls, 4)
    g = _gen(1)
    m = torch.randn(shape, generator=g, dtype=torch.float64)
    v = torch.rand(shape, generator=g, dtype=torch.float64)
    rule = get_rule(cls)
    assert rule is not None and rule.moments is not None and rule.mask == "same"
    buffers = {k: b.clone() for k, b in bn.named_buffers()}
    for training in (False, True):  # the running statistics in both modes (docstring)
        bn.train(training)
        out = rule.moments(bn, MV(m, v))
        bn.eval()
        _assert_moments(out.mean, out.var, bn(_draws(m, v, n=50_000).reshape(-1, *shape[1:]))
                        .reshape(50_000, *shape))  # fmt: skip
    assert all(torch.equal(b, buffers[k]) for k, b in bn.named_buffers())


def test_batchnorm_refusals_and_full_covariance():
    rule = get_rule(nn.BatchNorm1d)
    assert rule is not None and rule.moments is not None and rule.covariance is not None
    x = MV(torch.zeros(3, 4), torch.ones(3, 4))
    with pytest.raises(TypeError, match="track_running_stats=False"):
        rule.moments(nn.BatchNorm1d(4, track_running_stats=False), x)
    with pytest.raises(TypeError, match="has 5 features"):
        rule.moments(nn.BatchNorm1d(5), x)
    with pytest.raises(TypeError, match="expected 4D input"):
        get_rule(nn.BatchNorm2d).moments(nn.BatchNorm2d(4), x)  # type: ignore[union-attr]
    bn = _batchnorm(nn.BatchNorm1d, 4).eval()
    mean, cov = _correlated()
    out = rule.covariance(bn, MC(mean, cov))
    a, b = R.batchnorm_affine(bn)
    torch.testing.assert_close(out.mean, bn(mean))
    torch.testing.assert_close(out.cov, a[:, None] * cov * a[None, :])


def test_layernorm_is_exact_when_deterministic_and_close_for_wide_layers():
    g = _gen(4)
    ln = nn.LayerNorm(64).double()
    with torch.no_grad():
        ln.weight.copy_(torch.randn(64, generator=g))
        ln.bias.copy_(torch.randn(64, generator=g))
    m = torch.randn(3, 64, generator=g, dtype=torch.float64)
    mean, var = R.layernorm_moments(ln, m, torch.zeros_like(m))
    torch.testing.assert_close(mean, ln(m))
    assert torch.all(var == 0)
    # random inputs with sd up to 1/2 of the spread of the means: the stated accuracy,
    # 0.01 |gamma| in the mean and the sd, plus Z Monte-Carlo standard errors
    v = 0.25 * torch.rand(3, 64, generator=g, dtype=torch.float64)
    mean, var = R.layernorm_moments(ln, m, v)
    n = 50_000
    with torch.no_grad():
        samples = ln(_draws(m, v, n=n))
    sd, scale = samples.std(0), ln.weight.detach().abs()
    assert torch.all((mean - samples.mean(0)).abs() <= 0.01 * scale + Z * sd / math.sqrt(n))
    assert torch.all((var.sqrt() - sd).abs() <= 0.01 * scale + Z * sd / math.sqrt(2 * n))
    assert get_rule(nn.LayerNorm).mask is None  # type: ignore[union-attr]
    with pytest.raises(TypeError, match=r"LayerNorm over \(64,\)"):
        R.layernorm_moments(ln, m[:, :10], v[:, :10])


# ----------------------------------------------------------------- through the walker
class _Branches(nn.Module):
    """A BatchNorm on the input, a sum and a concatenation of independent branches, a
    Hardswish, a global mean: per unit exact moments (the branches have their own
    weights and read the deterministic input; the mean reads one position per channel)."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(2)
        self.a, self.b, self.c = nn.Conv2d(2, 3, 3), nn.Conv2d(2, 3, 3), nn.Conv2d(2, 2, 3)

    def forward(self, x):
        x = self.norm(x)
        h = torch.cat([self.a(x) + 0.5 * self.b(x), self.c(x)], dim=1)
        return F.hardswish(h).mean((2, 3))


def test_the_walker_propagates_joins_concatenations_and_means():
    model = _Branches()
    with torch.no_grad():
        model.norm.running_mean = torch.tensor([0.5, -1.0])
        model.norm.running_var = torch.tensor([2.0, 0.5])
    model.eval()
    bnn = pc.bayesianize(model, "gaussian", seed=0)
    g = _gen(0)
    with torch.no_grad():
        for q in (bnn.guide[name] for name in bnn.bayesian_layers()):
            q.weight_log_var.fill_(-2.0)
            q.bias_log_var.fill_(-2.0)
    x = torch.randn(2, 2, 3, 3, generator=g)  # one output position per channel
    out = propagate(bnn, x)
    mean, var = out[0], out[1]
    assert mean.shape == (2, 5)
    # Monte Carlo: the plain model with weights drawn from the guide
    draws = 40_000
    params = {}
    for name in bnn.bayesian_layers():
        q = bnn.guide[name]
        for part in ("weight", "bias"):
            loc, log_var = getattr(q, f"{part}_loc"), getattr(q, f"{part}_log_var")
            eps = torch.randn(draws, *loc.shape, generator=g)
            params[f"{name}.{part}"] = (loc + (0.5 * log_var).exp() * eps).detach()
    with torch.no_grad():
        samples = torch.vmap(lambda p: torch.func.functional_call(model, p, (x,)))(params)
    _assert_moments(mean, var, samples)
