"""The README's quickstart, as written."""

import torch

import pyrocompress as pc
from pyrocompress.data import load_digits


def test_quickstart():
    s = load_digits()
    X_train, y_train = s.train.X, s.train.y
    X_val, y_val = s.val.X, s.val.y

    net = torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    bnn = pc.bayesianize(net, prior=pc.priors.GroupHorseshoe())
    history = pc.fit(bnn, (X_train, y_train), epochs=50, batch_size=128, progress=False)
    post = pc.Posterior(bnn)
    assert isinstance(post, pc.Posterior)
    pip = post.inclusion_probabilities()
    assert set(pip) == {"0", "2"} and pip["0"].shape == (64,)
    result = pc.prune(bnn, rule="auto", validation=(X_val, y_val))
    assert isinstance(result.module, torch.nn.Module)
    assert set(pc.REPORT_KEYS) <= set(result.report)
    assert len(history) == 50
    with torch.no_grad():
        acc = (result.module(s.test.X).argmax(-1) == s.test.y).float().mean()
    assert acc > 0.8


def test_public_api_names():
    for name in pc.__all__:
        assert hasattr(pc, name), name
