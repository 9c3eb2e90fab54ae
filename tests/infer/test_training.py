import math

import pytest
import torch

import pyrocompress as pc

RELEVANT, IRRELEVANT = [0, 1, 2], [3, 4, 5, 6, 7]


@pytest.mark.parametrize("prior", ["group-nj", "group-horseshoe", "spike-slab", "gaussian"])
def test_irrelevant_inputs_get_lower_inclusion(prior, relevant_data):
    """Inputs 3..7 carry no signal: every one of them must rank below every relevant input.

    Inclusion probabilities for the group priors; group SNR for the Gaussian prior, which
    has no inclusion variable.
    """
    X, y = relevant_data
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    bnn = pc.bayesianize(net, prior=prior, seed=0)
    # log-variances start at -9 (Louizos et al.'s initialisation): the spike-and-slab gates
    # and the horseshoe's log-normal scale factors need more steps to move than the
    # normal-Jeffreys scales
    epochs = {"group-horseshoe": 400, "spike-slab": 300}.get(prior, 120)
    pc.fit(bnn, (X, y), epochs=epochs, batch_size=100, lr=1e-2, progress=False)
    post = pc.Posterior(bnn)
    if prior == "gaussian":
        score = post.snr("group")["0"]
    else:
        score = post.inclusion_probabilities()["0"]
    assert score[RELEVANT].min() > score[IRRELEVANT].max(), score
    if prior in ("group-nj", "spike-slab"):
        # the median-probability model selects exactly the relevant inputs
        assert torch.equal(score >= 0.5, torch.arange(8) < 3), score
    elif prior == "group-horseshoe":
        # its dropout-rate PIP separates slowly (see GroupHorseshoe.group_log_alpha):
        # the relevant inputs are selected, the irrelevant ones rank below them
        assert bool((score[RELEVANT] >= 0.5).all()), score


def test_fit_history_and_validation(relevant_data):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 8, 2]), prior="group-nj", seed=0)
    h = pc.fit(
        bnn, (X, y), epochs=4, batch_size=128, kl_warmup=2, validation=(X, y), progress=False
    )
    assert h.epoch == [1, 2, 3, 4]
    assert len(h.loss) == len(h.val_metric) == len(h.lr) == 4
    assert h.kl_scale[0] < 1.0 and h.kl_scale[-1] == 1.0
    assert h.lr[-1] < h.lr[0]  # cosine schedule
    assert all(math.isfinite(v) for v in h.loss)
    assert 0.0 <= h.val_metric[-1] <= 1.0


def test_fit_is_reproducible_with_a_seed(relevant_data):
    X, y = relevant_data
    losses = []
    for _ in range(2):
        bnn = pc.bayesianize(pc.mlp([8, 8, 2]), prior="group-horseshoe", seed=0)
        losses.append(pc.fit(bnn, (X, y), epochs=2, progress=False, seed=3).loss)
    assert losses[0] == losses[1]


def test_fit_rejects_bad_input(relevant_data):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 4, 2]), prior="group-nj")
    with pytest.raises(ValueError, match="batch_size"):
        pc.fit(bnn, (X, y), batch_size=0)
    with pytest.raises(ValueError, match="epochs"):
        pc.fit(bnn, (X, y), epochs=-1)
    with pytest.raises(ValueError, match="lr"):
        pc.fit(bnn, (X, y), lr=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        pc.fit(bnn, (X, y), lr_schedule="linear")
    bad = X.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        pc.fit(bnn, (bad, y))
    with pytest.raises(ValueError):
        pc.fit(bnn, (X, y + 5))
    with pytest.raises(TypeError):
        pc.fit(bnn, X)
    ss = pc.bayesianize(pc.mlp([8, 4, 2]), prior="spike-slab")
    with pytest.raises(ValueError, match="local_reparam"):
        pc.fit(ss, (X, y), local_reparam=False)


def test_plain_weight_sampling_path_trains(relevant_data):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 8, 2]), prior="group-nj", seed=0)
    h = pc.fit(bnn, (X, y), epochs=3, local_reparam=False, progress=False)
    assert all(math.isfinite(v) for v in h.loss)


def test_minibatch_likelihood_is_scaled_to_the_data_set_and_kl_by_warmup():
    import pyro.poutine as poutine

    bnn = pc.bayesianize(pc.mlp([3, 4, 2]), prior="group-nj", seed=0)
    X, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    idx = torch.arange(10)
    guide_tr = poutine.trace(bnn.guide).get_trace(X, y, kl_scale=0.25)
    model_tr = poutine.trace(poutine.replay(bnn, trace=guide_tr)).get_trace(
        X, y, dataset_size=1000, subsample=idx, kl_scale=0.25
    )
    assert model_tr.nodes["obs"]["scale"] == 100.0
    latent = [
        s
        for name, s in model_tr.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and name != "data"  # plate site
    ]
    assert latent and all(s["scale"] == 0.25 for s in latent)
    assert all(
        s["scale"] == 0.25
        for s in guide_tr.nodes.values()
        if s["type"] == "sample" and not s["is_observed"]
    )


def _sparse_regression(n=400, p=10, seed=0):
    """y = 2 x0 - x1 + noise 0.1, standardised; inputs 2..p-1 are nulls."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g)
    y = 2 * X[:, 0] - X[:, 1] + 0.1 * torch.randn(n, generator=g)
    return X, (y - y.mean()) / y.std()


def test_pretrain_fits_the_mean_network_and_shrinks_null_groups():
    X, y = _sparse_regression()
    bnn = pc.bayesianize(pc.mlp([10, 1]), prior="spike-slab", likelihood="gaussian", seed=0)
    guide = bnn.guide["1"]
    gates = guide.inclusion_logit.detach().clone()
    log_var = guide.weight_log_var.detach().clone()
    h = pc.pretrain(bnn, (X, y), group_penalty=0.05, epochs=150, batch_size=100, lr=0.02)
    assert len(h) == 150 and h.loss[-1] < h.loss[0]
    # only the means moved: gates and variances are those of the initialisation
    assert torch.equal(guide.inclusion_logit, gates)
    assert torch.equal(guide.weight_log_var, log_var)
    w, _ = bnn.bayesian_layers()["1"].point_weights(guide)
    w = w.detach().squeeze(0)
    # the group lasso of a linear model soft-thresholds: the true slopes (2 and -1 over
    # the target's sd, about 2.24) survive, shrunk by about lambda; the nulls are ~0
    sd = math.sqrt(5 + 0.01)
    assert abs(w[0] - 2 / sd) < 0.1 and abs(w[1] + 1 / sd) < 0.1, w
    assert w[2:].abs().max() < 0.02, w
    # and the posterior-mean network predicts well
    assert bnn.point_error(X, y) < 0.15


def test_pretrain_without_penalty_is_least_squares_and_training_continues():
    X, y = _sparse_regression()
    bnn = pc.bayesianize(pc.mlp([10, 1]), prior="group-nj", likelihood="gaussian", seed=0)
    pc.pretrain(bnn, (X, y), group_penalty=0.0, epochs=200, batch_size=400, lr=0.05)
    w, b = bnn.bayesian_layers()["1"].point_weights(bnn.guide["1"])
    ols = torch.linalg.lstsq(torch.cat([X, torch.ones(len(X), 1)], 1), y[:, None]).solution
    assert torch.allclose(w.detach().squeeze(0), ols[:-1, 0], atol=5e-3)
    assert torch.allclose(b.detach(), ols[-1], atol=5e-3)
    h = pc.fit(bnn, (X, y), epochs=2, progress=False)
    assert all(math.isfinite(v) for v in h.loss)


def test_pretrain_rejects_bad_arguments(relevant_data):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 4, 2]), prior="group-nj")
    with pytest.raises(ValueError, match="group_penalty"):
        pc.pretrain(bnn, (X, y), group_penalty=-1)
    with pytest.raises(ValueError, match="epochs"):
        pc.pretrain(bnn, (X, y), epochs=0)
    with pytest.raises(TypeError, match="pretrain expects"):
        pc.pretrain(torch.nn.Linear(8, 2), (X, y))


def test_minibatches_cover_the_data_once_per_epoch():
    from pyrocompress.infer.training import _Minibatches

    X = torch.arange(10.0).reshape(10, 1)
    y = torch.arange(10)
    batches = _Minibatches(X, y, torch.device("cpu"), batch_size=4)
    assert len(batches) == 3 and batches.resident
    seen = []
    for xb, yb, idx in batches:
        assert torch.equal(xb[:, 0], idx.float()) and torch.equal(yb, idx)
        seen.append(idx)
    assert sorted(torch.cat(seen).tolist()) == list(range(10))


def test_fit_keeps_log_variances_in_range(relevant_data):
    """The projection after each step (the fast path has no clamp in the graph)."""
    from pyrocompress.priors import LOG_VAR_RANGE

    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([X.shape[1], 8, 2]), "group-nj", seed=0)
    with torch.no_grad():
        bnn.guide["1"].weight_log_var.fill_(50.0)  # far out of range before training
    pc.fit(bnn, (X, y), epochs=1, lr=1e-3, progress=False)
    low, high = LOG_VAR_RANGE
    for name, p in bnn.guide.named_parameters():
        if name.endswith("log_var"):
            assert low <= p.min() and p.max() <= high, name


def test_fit_caps_the_weight_variance_of_named_layers(relevant_data):
    """max_weight_variance: the first-layer clip of Louizos et al.'s code, other layers free."""
    from pyrocompress.priors import LOG_VAR_RANGE

    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([X.shape[1], 8, 2]), "group-nj", seed=0)
    with torch.no_grad():
        for layer in ("1", "3"):
            bnn.guide[layer].weight_log_var.fill_(0.0)  # variance 1, above the cap
    pc.fit(bnn, (X, y), epochs=1, lr=1e-3, max_weight_variance={"1": 0.04}, progress=False)
    cap = math.log(0.04)
    assert bnn.guide["1"].weight_log_var.max() <= cap + 1e-6
    assert bnn.guide["1"].bias_log_var.max() <= cap + 1e-6
    assert bnn.guide["3"].weight_log_var.max() > cap  # not capped
    assert bnn.guide["1"].scale_log_var.max() <= LOG_VAR_RANGE[1]  # gates keep the range
    with pytest.raises(ValueError, match="unknown layers"):
        pc.fit(bnn, (X, y), epochs=1, max_weight_variance={"fc1": 0.04}, progress=False)
    with pytest.raises(ValueError, match=r"max_weight_variance\[.1.\] must be a number > 0"):
        pc.fit(bnn, (X, y), epochs=1, max_weight_variance={"1": -1.0}, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("resident", [True, False])
def test_fit_on_cuda_resident_and_pinned_data_paths(relevant_data, monkeypatch, resident):
    """On a GPU the data live on the device when they fit, else minibatches are gathered
    into pinned host memory and copied asynchronously; both paths train."""
    import pyrocompress.infer as infer

    if not resident:
        monkeypatch.setattr(infer, "_RESIDENT_SHARE", 0.0)
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([X.shape[1], 8, 2]), "group-nj", seed=0)
    h = pc.fit(bnn, (X, y), epochs=3, lr=1e-2, device="cuda", progress=False)
    assert all(math.isfinite(v) for v in h.loss)
    assert next(bnn.parameters()).is_cuda
