"""Bayesian layers, Bayesian networks as Pyro programs, and conversion of torch models.

:func:`bayesianize` turns an ordinary torch model (an ``nn.Sequential`` or any module tree
of Linear, Conv2d, activations, pooling, Flatten and Dropout) into a
:class:`BayesianNetwork`: a :class:`~pyro.nn.PyroModule` whose ``forward`` is the Pyro
model (weights and group scales sampled from the prior, observations from the
likelihood) and whose ``guide`` attribute is the matching variational family.

Groups: the weights leaving one input unit of a Linear layer (a column of its weight
matrix), or one output channel of a Conv2d (its bias included). Pruning a group removes
an input feature, a neuron of the previous layer, or a channel.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import pyro
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from pyrocompress.distributed import example_noise
from pyrocompress.guides import NetworkGuide
from pyrocompress.likelihoods import Likelihood, get_likelihood
from pyrocompress.priors import Gate, LayerSpec, Prior, _base, get_prior
from pyrocompress.reparam import guide_distributions

__all__ = [
    "BayesianConv2d",
    "BayesianLayer",
    "BayesianLinear",
    "BayesianNetwork",
    "SUPPORTED_MODULES",
    "bayesianize",
    "lenet5_caffe",
    "lenet_300_100",
    "mlp",
]

_MIN_VAR = 1e-16


class BayesianLayer(PyroModule):
    """Common part of :class:`BayesianLinear` and :class:`BayesianConv2d`.

    ``forward(x)`` samples the layer's sites from the prior (or, under SVI, takes them
    from the guide) and returns the layer's output. Under
    :class:`~pyrocompress.reparam.LocalReparameterization` it samples the pre-activations
    instead (Kingma, Salimans & Welling 2015), with per-example group gates.
    """

    spec: LayerSpec
    prior: Prior

    def __init__(self, spec: LayerSpec, prior: Prior):
        super().__init__()
        self.spec = spec
        self.prior = prior
        self._point: tuple[torch.Tensor, torch.Tensor | None] | None = None
        # fixed pruning of groups (BayesianNetwork.restrict): 1 kept, 0 removed; not saved
        self.register_buffer("group_mask", None, persistent=False)

    # subclasses: the deterministic op and its local-reparametrisation moments
    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        raise NotImplementedError

    def _local_moments(self, x, w_mean, w_var, b_mean, b_var, gate: Gate):
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.group_mask
        if mask is None:
            return self._forward(x)
        if self.spec.kind == "linear":  # groups are inputs: they contribute nothing
            return self._forward(x * mask)
        return self._forward(x) * mask[:, None, None]  # output channels, bias included

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._point is not None:
            return self._op(x, *self._point)
        values = self.prior.model(self.spec, x)
        found = guide_distributions([self.spec.site(part) for part in values])
        if found is not None:
            qs = {part: _base(q) for part, q in zip(values, found, strict=True)}
            q_w = qs["weight"]
            b_mean = b_var = None
            if self.spec.has_bias:
                b_mean, b_var = qs["bias"].loc, qs["bias"].variance
            gate = self.prior.local_gate(self.spec, x.shape[0], qs)
            mean, var = self._local_moments(x, q_w.loc, q_w.variance, b_mean, b_var, gate)
            noise = example_noise(mean.shape, mean)
            return torch.addcmul(mean, var.clamp_min(_MIN_VAR).sqrt_(), noise)
        weight, bias = values["weight"], values.get("bias")
        g = self.prior.gate(self.spec, values)
        if g is not None:
            weight = weight * self.spec.expand_groups(g)
            if bias is not None and self.spec.bias_gated:
                bias = bias * g
        return self._op(x, weight, bias)

    def point_weights(
        self,
        guide: nn.Module,
        mask: torch.Tensor | None = None,
        *,
        conditional: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posterior-mean effective weight and bias, optionally with groups masked out.

        ``E[W] = E[g] E[W~]``. With ``conditional=True`` the gate's mean given that the
        group is kept is used (spike-and-slab: the weights of the median-probability
        model, Barbieri & Berger 2004).
        """
        w, _ = self.prior.weight_moments(guide)
        b = self.prior.bias_moments(guide)[0] if self.spec.has_bias else None
        moments = self.prior.gate_moments(self.spec, guide, conditional=conditional)
        g = moments[0] if moments is not None else None
        if mask is not None:
            m = mask.to(w.dtype)
            g = m if g is None else g * m
        if g is not None:
            w = w * self.spec.expand_groups(g)
            if b is not None and self.spec.bias_gated:
                b = b * g
        return w, b


class BayesianLinear(BayesianLayer):
    """Bayesian counterpart of :class:`torch.nn.Linear`; groups are its input units."""

    def __init__(self, in_features: int, out_features: int, bias: bool, *, name: str, prior):
        super().__init__(LayerSpec(name, "linear", (out_features, in_features), bias), prior)
        self.in_features = in_features
        self.out_features = out_features

    def _op(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def _local_moments(self, x, w_mean, w_var, b_mean, b_var, gate: Gate):
        if isinstance(gate, tuple):  # moments of the gate: marginalise it
            m1, m2 = gate
            mean = F.linear(x, w_mean * m1, b_mean)
            var = F.linear(x.square(), m2 * (w_var + w_mean**2) - (m1 * w_mean) ** 2, b_var)
            return mean, var
        if gate is not None:  # per-example draws [B, in]
            shape = (gate.shape[0],) + (1,) * (x.dim() - 2) + (gate.shape[-1],)
            x = x * gate.reshape(shape)
        return F.linear(x, w_mean, b_mean), F.linear(x.square(), w_var, b_var)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, prior={self.prior!r}"


class BayesianConv2d(BayesianLayer):
    """Bayesian counterpart of :class:`torch.nn.Conv2d`; groups are its output channels.

    The gate multiplies the whole output channel, bias included, so a pruned channel
    outputs exactly zero.
    """

    def __init__(self, conv: nn.Conv2d, *, name: str, prior):
        shape = tuple(conv.weight.shape)
        super().__init__(LayerSpec(name, "conv2d", shape, conv.bias is not None), prior)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = conv.kernel_size
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    def _op(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)

    def _local_moments(self, x, w_mean, w_var, b_mean, b_var, gate: Gate):
        mean = self._op(x, w_mean, b_mean)
        var = self._op(x.square(), w_var, b_var)
        if isinstance(gate, tuple):
            m1, m2 = (t[:, None, None] for t in gate)
            return m1 * mean, m2 * (var + mean**2) - (m1 * mean) ** 2
        if gate is not None:
            g = gate[:, :, None, None]
            return g * mean, g * g * var
        return mean, var

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, prior={self.prior!r}"
        )


#: Module types :func:`bayesianize` accepts as they are (besides Linear and Conv2d).
SUPPORTED_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Dropout2d,
)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class BayesianNetwork(PyroModule):
    """A network with Bayesian layers, as a Pyro model with its guide.

    Attributes
    ----------
    net
        The converted module tree; its Linear and Conv2d layers are Bayesian layers.
    guide
        The :class:`~pyrocompress.guides.NetworkGuide` (module-local parameters).
    likelihood
        The observation model.
    prior
        The prior every Bayesian layer uses.
    feature_names
        Names of the input features, when given.
    """

    def __init__(
        self,
        net: nn.Module,
        prior: Prior,
        likelihood: Likelihood,
        *,
        feature_names: list[str] | None = None,
    ):
        super().__init__()
        self.net = net
        self.prior = prior
        self.likelihood = likelihood
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.guide = NetworkGuide([m.spec for m in self.bayesian_layers().values()], prior)

    def bayesian_layers(self) -> dict[str, BayesianLayer]:
        """The Bayesian layers by name, in the order they were registered."""
        return {m.spec.name: m for m in self.net.modules() if isinstance(m, BayesianLayer)}

    def restrict(self, masks: dict[str, torch.Tensor] | None) -> BayesianNetwork:
        """Fix a pruning: the removed groups (False in ``masks``) contribute exactly zero
        from now on, in training and in every prediction; ``None`` lifts it.

        Used to fine-tune a pruned posterior (Han et al. 2015 retrain the kept weights of
        a pruned network; here SVI refits the variational posterior of the kept groups):
        ``bnn.restrict(plan.masks)`` then :func:`~pyrocompress.fit`. The likelihood no
        longer depends on a removed group's parameters, so their KL terms decouple from
        the rest of the ELBO and relax towards their minimum; pruning plans of a
        restricted network remove those groups whatever their scores
        (:func:`~pyrocompress.pruning.make_plan`). Masks are not part of ``state_dict``:
        restrict again after loading. Returns ``self``.
        """
        layers = self.bayesian_layers()
        if masks is None:
            for layer in layers.values():
                layer.group_mask = None
            return self
        if not isinstance(masks, dict) or set(masks) != set(layers):
            raise ValueError(
                f"masks must be a dict with one boolean group mask for every Bayesian layer "
                f"({sorted(layers)}), e.g. PruningPlan.masks; got "
                f"{sorted(masks) if isinstance(masks, dict) else type(masks).__name__}"
            )
        for name, layer in layers.items():
            m = torch.as_tensor(masks[name]).reshape(-1)
            if m.numel() != layer.spec.num_groups:
                raise ValueError(
                    f"the mask of layer {name!r} has {m.numel()} entries; the layer has "
                    f"{layer.spec.num_groups} groups"
                )
            if not m.bool().any():
                raise ValueError(f"the mask of layer {name!r} removes every group of it")
            layer.group_mask = m.to(self.device, torch.get_default_dtype())
        return self

    def group_masks(self) -> dict[str, torch.Tensor] | None:
        """The fixed pruning of :meth:`restrict` (boolean, True = kept), or ``None``."""
        layers = self.bayesian_layers()
        if all(layer.group_mask is None for layer in layers.values()):
            return None
        return {
            name: (
                torch.ones(layer.spec.num_groups, dtype=torch.bool, device=self.device)
                if layer.group_mask is None
                else layer.group_mask.bool()
            )
            for name, layer in layers.items()
        }

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        subsample: torch.Tensor | None = None,
        kl_scale: float = 1.0,
    ) -> torch.Tensor:
        """The Pyro model.

        Parameters
        ----------
        x, y
            A minibatch of inputs and (optionally) targets.
        dataset_size
            Size ``N`` of the whole data set; the likelihood of the minibatch is scaled by
            ``N / len(x)`` through ``pyro.plate`` subsampling. Defaults to ``len(x)``.
        subsample
            Indices of the minibatch in the data set, handed to ``pyro.plate``.
        kl_scale
            Weight of the latent sites (KL warm-up); the guide must get the same value.
        """
        with poutine.scale(scale=kl_scale) if kl_scale != 1.0 else contextlib.nullcontext():
            out = self.net(x)
        batch = x.shape[0]
        size = batch if dataset_size is None else int(dataset_size)
        if subsample is None and size != batch:
            plate = pyro.plate("data", size, subsample_size=batch, device=x.device)
        else:
            plate = pyro.plate("data", size, subsample=subsample, device=x.device)
        with plate:
            self.likelihood(out, y)
        return out

    @contextlib.contextmanager
    def point_estimate(
        self,
        masks: dict[str, torch.Tensor] | None = None,
        *,
        conditional: bool = False,
        differentiable: bool = False,
    ) -> Iterator[BayesianNetwork]:
        """Within the block ``self.net(x)`` is the posterior-mean network.

        ``masks`` maps layer names to boolean group masks (True = kept); see
        :meth:`BayesianLayer.point_weights`. With ``differentiable=True`` the point
        weights keep their graph to the guide's parameters, so a loss of ``self.net(x)``
        trains the variational means (:func:`pyrocompress.infer.pretrain`).
        """
        layers = self.bayesian_layers()
        try:
            with contextlib.nullcontext() if differentiable else torch.no_grad():
                for name, layer in layers.items():
                    mask = None if masks is None else masks.get(name)
                    layer._point = layer.point_weights(
                        self.guide[name], mask, conditional=conditional
                    )
            yield self
        finally:
            for layer in layers.values():
                layer._point = None

    @property
    def device(self) -> torch.device:
        """The device of the variational parameters, where the network computes."""
        return next(self.guide.parameters()).device

    @torch.no_grad()
    def predict_point(
        self, x: torch.Tensor, masks: dict[str, torch.Tensor] | None = None, **kwargs
    ) -> torch.Tensor:
        """Output of the posterior-mean network (optionally masked), on :attr:`device`
        (inputs elsewhere are moved there)."""
        was_training = self.training
        self.eval()
        try:
            with self.point_estimate(masks, **kwargs):
                return self.net(x.to(self.device))
        finally:
            self.train(was_training)

    @torch.no_grad()
    def point_error(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        masks: dict[str, torch.Tensor] | None = None,
        *,
        conditional: bool = False,
        batch_size: int = 2000,
    ) -> float:
        """Error rate (classification) or RMSE (regression) of the (masked) posterior-mean
        network on ``(X, y)``, evaluated in batches."""
        out = torch.cat(
            [
                self.predict_point(X[i : i + batch_size], masks, conditional=conditional)
                for i in range(0, len(X), batch_size)
            ]
        )
        return self.likelihood.error(out, torch.as_tensor(y).to(out.device))

    def effective_weights(
        self, values: dict[str, torch.Tensor]
    ) -> dict[str, tuple[torch.Tensor | None, torch.Tensor]]:
        """Each layer's gate and effective weight ``g * W~`` from one draw of its sites.

        ``values`` maps site names (``"0.weight"``, ``"0.scale"``, ...) to values, as in a
        guide trace or an MCMC draw; the gate is ``None`` for the Gaussian prior.
        """
        out = {}
        for name, layer in self.bayesian_layers().items():
            parts = {
                site.rsplit(".", 1)[1]: v
                for site, v in values.items()
                if site.rsplit(".", 1)[0] == name
            }
            gate = layer.prior.gate(layer.spec, parts)
            w = parts["weight"]
            out[name] = (gate, w if gate is None else w * layer.spec.expand_groups(gate))
        return out

    def posterior(self):
        """The :class:`~pyrocompress.analysis.Posterior` of this network's guide."""
        from pyrocompress.analysis import Posterior

        return Posterior(self)


def _check_module(path: str, module: nn.Module) -> None:
    where = f"'{path}'" if path else "the model"
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros":
            raise TypeError(
                f"unsupported layer at {where}: Conv2d with groups={module.groups}, "
                f"padding_mode={module.padding_mode!r}; only groups=1 and zero padding "
                "are supported"
            )
        return
    if isinstance(module, (nn.Linear, *_CONTAINERS)) or type(module) in SUPPORTED_MODULES:
        return
    own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    has_children = any(True for _ in module.children())
    if has_children and not own:
        return  # a user-defined container with its own forward: its children are checked
    supported = ", ".join(sorted(t.__name__ for t in SUPPORTED_MODULES))
    raise TypeError(
        f"unsupported layer at {where}: {type(module).__name__}. bayesianize supports "
        f"Linear, Conv2d (groups=1) and these modules without parameters: {supported}. "
        "Replace or remove it, or keep it outside the network you convert."
    )


def bayesianize(
    module: nn.Module,
    prior: Prior | str = "group-horseshoe",
    *,
    likelihood: Likelihood | str = "categorical",
    feature_names: list[str] | None = None,
    seed: int | None = None,
) -> BayesianNetwork:
    """Turn a torch model into a Bayesian Pyro model with a matching guide.

    Every ``nn.Linear`` and ``nn.Conv2d`` becomes a Bayesian layer with ``prior``; the
    rest of the module tree (its ``forward`` included) is kept. The original module is
    not modified (it is deep-copied); its weights are not used.

    Parameters
    ----------
    module
        An ``nn.Sequential`` or module tree of Linear, Conv2d, activations, pooling,
        Flatten and Dropout (see :data:`SUPPORTED_MODULES`).
    prior
        A :class:`~pyrocompress.priors.Prior` or its key (``"gaussian"``, ``"group-nj"``,
        ``"group-horseshoe"``, ``"spike-slab"``).
    likelihood
        ``"categorical"`` (classification, the default), ``"gaussian"`` (regression) or a
        :class:`~pyrocompress.likelihoods.Likelihood`.
    feature_names
        Names of the input features (used in reports, plots and diagnostics).
    seed
        Seed for the initialisation of the guide.

    Raises
    ------
    TypeError
        When ``module`` is not an ``nn.Module`` or contains an unsupported layer (the
        message names it and its path).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"bayesianize expects a torch.nn.Module, got {type(module).__name__}")
    prior = get_prior(prior)
    likelihood = get_likelihood(likelihood)
    for path, sub in module.named_modules():
        _check_module(path, sub)
    if not any(isinstance(m, nn.Linear | nn.Conv2d) for m in module.modules()):
        raise ValueError("the model has no Linear or Conv2d layer to make Bayesian")
    net = copy.deepcopy(module)
    if seed is not None:
        pyro.set_rng_seed(seed)

    def convert(path: str, m: nn.Module) -> nn.Module:
        name = path or "layer"
        if isinstance(m, nn.Linear):
            return BayesianLinear(
                m.in_features, m.out_features, m.bias is not None, name=name, prior=prior
            )
        if isinstance(m, nn.Conv2d):
            return BayesianConv2d(m, name=name, prior=prior)
        for child_name, child in list(m.named_children()):
            setattr(m, child_name, convert(f"{path}.{child_name}" if path else child_name, child))
        return m

    net = convert("", net)
    first = next(m for m in net.modules() if isinstance(m, BayesianLayer))
    if feature_names is not None:
        feature_names = [str(f) for f in feature_names]
        n_in = first.spec.weight_shape[1]
        if first.spec.kind == "linear" and len(feature_names) != n_in:
            raise ValueError(
                f"feature_names has {len(feature_names)} names but the first layer has "
                f"{n_in} inputs"
            )
    return BayesianNetwork(net, prior, likelihood, feature_names=feature_names)


def mlp(sizes: list[int] | tuple[int, ...], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A plain multilayer perceptron ``sizes[0] -> ... -> sizes[-1]`` with a leading Flatten."""
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
    """LeNet-300-100 (LeCun et al. 1998): 784-300-100-10 with ReLU."""
    return mlp([in_features, 300, 100, num_classes])


def lenet5_caffe(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """LeNet-5-Caffe: conv 5x5 20 → max-pool → conv 5x5 50 → max-pool → 800-500-10.

    The Caffe variant used by Louizos et al. (2017) and Molchanov et al. (2017), for
    28×28 inputs.
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
