import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.nn import BayesianConv2d, BayesianLinear


def test_bayesianize_sequential_and_module_tree():
    class Tree(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(4 * 3 * 3, 5))

        def forward(self, x):
            return self.head(self.features(x))

    original = Tree()
    bnn = pc.bayesianize(original, prior="group-nj")
    layers = bnn.bayesian_layers()
    assert list(layers) == ["features.0", "head.2"]
    assert isinstance(layers["features.0"], BayesianConv2d)
    assert isinstance(layers["head.2"], BayesianLinear)
    assert isinstance(original.features[0], nn.Conv2d)  # the original is untouched
    out = bnn.predict_point(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 5)


@pytest.mark.parametrize(
    "bad, name",
    [
        (nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 3)), "LSTM"),
        (nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")), "reflect"),
        (nn.Sequential(nn.Linear(3, 3), nn.GroupNorm(1, 3)), "GroupNorm"),
        (nn.Sequential(nn.Linear(3, 3), nn.PReLU()), "PReLU"),
    ],
)
def test_unsupported_layer_is_named(bad, name):
    with pytest.raises(TypeError, match=name):
        pc.bayesianize(bad)


def test_bayesianize_validates_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        pc.bayesianize("not a model")
    with pytest.raises(ValueError, match="no Linear or Conv2d"):
        pc.bayesianize(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="unknown prior"):
        pc.bayesianize(nn.Linear(2, 2), prior="laplace")
    with pytest.raises(ValueError, match="feature_names has 2 names"):
        pc.bayesianize(nn.Linear(3, 2), feature_names=["a", "b"])


def test_ready_made_models_shapes():
    assert pc.lenet_300_100()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert pc.lenet5_caffe()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    sizes = [m.out_features for m in pc.lenet_300_100() if isinstance(m, nn.Linear)]
    assert sizes == [300, 100, 10]
    convs = [m.out_channels for m in pc.lenet5_caffe() if isinstance(m, nn.Conv2d)]
    assert convs == [20, 50]
    with pytest.raises(ValueError, match="at least two"):
        pc.mlp([5])


@pytest.mark.parametrize("prior", ["gaussian", "group-nj", "group-horseshoe", "spike-slab"])
def test_guide_parameters_are_module_local_and_round_trip(prior, tmp_path):
    import pyro

    bnn = pc.bayesianize(pc.mlp([4, 6, 3]), prior=prior, seed=1)
    X, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    pc.fit(bnn, (X, y), epochs=2, batch_size=16, progress=False)
    assert len(pyro.get_param_store()) == 0
    path = tmp_path / "bnn.pt"
    torch.save(bnn.state_dict(), path)
    other = pc.bayesianize(pc.mlp([4, 6, 3]), prior=prior, seed=2)
    other.load_state_dict(torch.load(path, weights_only=True))
    torch.testing.assert_close(other.predict_point(X), bnn.predict_point(X))
    for k, v in pc.Posterior(bnn).log_alpha().items():
        torch.testing.assert_close(pc.Posterior(other).log_alpha()[k], v)


def test_model_runs_without_guide_under_plain_pyro():
    """The model is an ordinary Pyro program: it runs under Predictive with the guide."""
    from pyro.infer import Predictive

    bnn = pc.bayesianize(pc.mlp([4, 6, 3]), prior="group-horseshoe", seed=0)
    pred = Predictive(bnn, guide=bnn.guide, num_samples=5, return_sites=["obs"])
    samples = pred(torch.randn(7, 4))
    assert samples["obs"].shape == (5, 7)


def test_differentiable_point_estimate_trains_the_means():
    bnn = pc.bayesianize(pc.mlp([3, 4, 2]), prior="spike-slab", seed=0)
    x = torch.randn(5, 3)
    with bnn.point_estimate(differentiable=True):
        out = bnn.net(x)
    out.sum().backward()
    assert bnn.guide["1"].weight_loc.grad is not None
    assert bnn.guide["1"].weight_loc.grad.abs().sum() > 0
    bnn.zero_grad(set_to_none=True)
    with bnn.point_estimate():
        out = bnn.net(x)
    out.sum().backward()  # reaches the (ungated) output bias only
    assert bnn.guide["1"].weight_loc.grad is None
