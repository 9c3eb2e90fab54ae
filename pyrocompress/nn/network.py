"""A Bayesian network: the converted module tree as a Pyro model, with its guide."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.nn import PyroModule
from torch import nn

from pyrocompress.distributions import Likelihood
from pyrocompress.effects import PointEstimate, PointWeights
from pyrocompress.nn.graph import network_graph
from pyrocompress.nn.layers import BayesianLayer
from pyrocompress.priors import NetworkGuide, Prior

__all__ = ["BayesianNetwork"]


class BayesianNetwork(PyroModule):
    """A network with Bayesian layers, as a Pyro model with its guide.

    Attributes
    ----------
    net
        The converted module tree; its layers with weights are Bayesian layers.
    guide
        The :class:`~pyrocompress.priors.NetworkGuide` (module-local parameters).
    likelihood
        The observation model.
    priors
        Each Bayesian layer's prior, by layer name.
    prior
        The prior all layers share (``ValueError`` when the layers have different ones).
    feature_names
        Names of the input features, when given.

    Parameters
    ----------
    net
        The converted module tree (:func:`~pyrocompress.bayesianize` builds it).
    likelihood
        The observation model.
    feature_names
        Names of the input features.
    guide
        The guide's family of the weights, ``"mean-field"`` or ``"conditional"``
        (:func:`~pyrocompress.bayesianize`).

    Examples
    --------
    :func:`~pyrocompress.bayesianize` builds it. Fit it, predict with the posterior-mean
    network, then fix a pruning with :meth:`restrict` (here: drop inputs 2 and 3):

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> list(bnn.bayesian_layers()), bnn.prior
    (['1', '3'], GroupNormalJeffreys())
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> bnn.predict_point(X[:5]).shape
    torch.Size([5, 2])
    >>> keep = torch.tensor([True, True, False, False])
    >>> masks = {"1": keep, "3": torch.ones(8, dtype=torch.bool)}
    >>> masked = bnn.predict_point(X, masks)
    >>> torch.equal(bnn.restrict(masks).predict_point(X), masked)
    True
    >>> X_other = X.clone()
    >>> X_other[:, 2:] = 0.0  # the removed inputs no longer matter
    >>> torch.equal(bnn.predict_point(X_other), masked)
    True
    >>> {name: int(m.sum()) for name, m in bnn.group_masks().items()}
    {'1': 2, '3': 8}
    >>> bnn.restrict(None).group_masks() is None
    True
    """

    def __init__(
        self,
        net: nn.Module,
        likelihood: Likelihood,
        *,
        feature_names: list[str] | None = None,
        guide: str = "mean-field",
    ):
        super().__init__()
        self.net = net
        self.likelihood = likelihood
        self._order = _data_order(net)
        self.feature_names = None
        if feature_names is not None:
            self.feature_names = [str(f) for f in feature_names]
            first = self._order[0]
            n_in = first.spec.weight_shape[1]
            if first.spec.kind == "linear" and len(self.feature_names) != n_in:
                raise ValueError(
                    f"feature_names has {len(self.feature_names)} names but the first layer "
                    f"({first.spec.name!r}) has {n_in} inputs"
                )
        layers = self.bayesian_layers().values()
        self.guide = NetworkGuide([(m.spec, m.prior) for m in layers], weights=guide)

    @property
    def priors(self) -> dict[str, Prior]:
        """Each Bayesian layer's prior, by layer name."""
        return {name: layer.prior for name, layer in self.bayesian_layers().items()}

    @property
    def prior(self) -> Prior:
        """The prior every Bayesian layer shares.

        Raises
        ------
        ValueError
            When layers have different priors (use :attr:`priors`).
        """
        distinct = list(dict.fromkeys(self.priors.values()))
        if len(distinct) != 1:
            raise ValueError(
                f"the layers have different priors ({self.priors}); use BayesianNetwork.priors"
            )
        return distinct[0]

    def distinct_priors(self) -> list[Prior]:
        """Return the different priors of the layers, in layer order (for capability checks).

        Returns
        -------
        list of Prior
            Each distinct prior once.
        """
        return list(dict.fromkeys(self.priors.values()))

    def bayesian_layers(self) -> dict[str, BayesianLayer]:
        """Return the Bayesian layers by name, in the order the data flow through them.

        The order of the traced forward (:mod:`pyrocompress.nn.graph`): the first is the
        layer that reads the inputs, the last the one that gives the outputs, whatever
        order a custom module declares them in. For a forward torch.fx cannot trace, the
        order the layers were registered in.

        Returns
        -------
        dict of str to BayesianLayer
            The layers, by layer name (their path in the module tree).
        """
        return {m.spec.name: m for m in self._order}

    def restrict(self, masks: dict[str, torch.Tensor] | None) -> BayesianNetwork:
        """Fix a pruning: the removed groups contribute exactly zero from now on.

        The removed groups (False in ``masks``) contribute exactly zero in training and in
        every prediction; ``None`` lifts the restriction.

        Used to fine-tune a pruned posterior (:cite:t:`han2015learning` retrain the kept weights of
        a pruned network; here SVI refits the variational posterior of the kept groups):
        ``bnn.restrict(plan.masks)`` then :func:`~pyrocompress.fit`. The likelihood no
        longer depends on a removed group's parameters, so their KL terms decouple from
        the rest of the ELBO and relax towards their minimum; pruning plans of a
        restricted network remove those groups whatever their scores
        (:func:`~pyrocompress.compress.make_plan`). Masks are not part of ``state_dict``:
        restrict again after loading.

        Parameters
        ----------
        masks
            One boolean group mask (True = kept) for every Bayesian layer, by name (e.g.
            ``PruningPlan.masks``), or ``None``.

        Returns
        -------
        BayesianNetwork
            ``self``.

        Raises
        ------
        ValueError
            If ``masks`` does not name every layer, a mask has the wrong size, or a mask
            removes every group of its layer.
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
        """Return the fixed pruning of :meth:`restrict` (boolean, True = kept), or ``None``.

        Returns
        -------
        dict of str to Tensor, or None
            One group mask per layer (all True for a layer without one), or ``None`` when
            no layer is restricted.
        """
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
        """Run the Pyro model: the network's output and the likelihood site ``obs``.

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

        Returns
        -------
        Tensor
            The network's output for ``x``.
        """
        with poutine.scale(scale=kl_scale) if kl_scale != 1.0 else contextlib.nullcontext():
            out = self.net(x)
        batch = x.shape[0]
        size = batch if dataset_size is None else int(dataset_size)
        if subsample is None and size != batch:
            # (pyro annotates device as str; it takes a torch.device as torch does)
            plate = pyro.plate("data", size, subsample_size=batch, device=x.device)  # pyright: ignore[reportArgumentType]
        else:
            plate = pyro.plate("data", size, subsample=subsample, device=x.device)  # pyright: ignore[reportArgumentType]
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
        """Make ``self.net(x)`` the posterior-mean network within the block.

        A :class:`~pyrocompress.effects.PointEstimate` handler answers each layer's
        :func:`~pyrocompress.effects.point_weights` effect, so blocks nest and are
        re-entrant: leaving an inner block restores the outer block's weights.
        ``masks`` maps layer names to boolean group masks (True = kept); see
        :meth:`BayesianLayer.point_weights`. With ``differentiable=True`` the point
        weights keep their graph to the guide's parameters, so a loss of ``self.net(x)``
        trains the variational means (:func:`pyrocompress.infer.pretrain`).

        An inner ``poutine.block()`` that hides every message hides the point weights too
        (:mod:`pyrocompress.effects`); block with ``hide_types=["sample"]`` inside.

        Parameters
        ----------
        masks
            Boolean group masks by layer name (True = kept), or ``None``.
        conditional
            Use the gate moments given that a group is kept (spike-and-slab).
        differentiable
            Keep the graph from the point weights to the guide's parameters.

        Yields
        ------
        BayesianNetwork
            ``self``.
        """
        with PointEstimate(self.point_weights(masks, conditional=conditional,
                                              differentiable=differentiable)):  # fmt: skip
            yield self

    def point_weights(
        self,
        masks: dict[str, torch.Tensor] | None = None,
        *,
        conditional: bool = False,
        differentiable: bool = False,
    ) -> dict[BayesianLayer, PointWeights]:
        """Return each layer's posterior-mean weight and bias (masked groups zeroed).

        Parameters
        ----------
        masks, conditional, differentiable
            As for :meth:`point_estimate`.

        Returns
        -------
        dict
            ``(weight, bias)`` by layer module (bias ``None`` for a layer without one);
            a layer with a norm after it adds the scale of the norm's output
            (:meth:`BayesianLayer.point_weights`).
        """
        with contextlib.nullcontext() if differentiable else torch.no_grad():
            return {
                layer: layer.point_weights(
                    self.guide[name],
                    None if masks is None else masks.get(name),
                    conditional=conditional,
                )
                for name, layer in self.bayesian_layers().items()
            }

    @property
    def device(self) -> torch.device:
        """The device of the variational parameters, where the network computes."""
        return next(self.guide.parameters()).device

    @torch.no_grad()
    def predict_point(
        self, x: torch.Tensor, masks: dict[str, torch.Tensor] | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """Return the output of the posterior-mean network (optionally masked).

        It is computed on :attr:`device` (inputs elsewhere are moved there), in eval mode.

        Parameters
        ----------
        x
            Inputs.
        masks
            Boolean group masks by layer name (True = kept), or ``None``.
        **kwargs
            Passed to :meth:`point_estimate` (``conditional``).

        Returns
        -------
        Tensor
            The network's output.
        """
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
        """Return the metric of the (masked) posterior-mean network on ``(X, y)``.

        The error rate (classification) or RMSE (regression), evaluated in batches.

        Parameters
        ----------
        X, y
            Inputs and targets.
        masks
            Boolean group masks by layer name (True = kept), or ``None``.
        conditional
            As for :meth:`point_estimate`.
        batch_size
            Examples per forward pass.

        Returns
        -------
        float
            The likelihood's :meth:`~pyrocompress.distributions.Likelihood.error`.
        """
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
        """Return each layer's gate and effective weight ``g * W~`` from one draw of its sites.

        For a layer whose gate follows a norm (:attr:`BayesianLayer.gate_after_norm`),
        ``g * W~`` is the weight in units of the norm's input: the norm's scale ``a``
        (:meth:`BayesianLayer.norm_affine`) multiplies it in the network.

        Parameters
        ----------
        values
            Site names (``"0.weight"``, ``"0.scale"``, ...) to values, as in a guide trace
            or an MCMC draw.

        Returns
        -------
        dict of str to (Tensor or None, Tensor)
            ``(gate, effective weight)`` by layer name; the gate is ``None`` for the
            Gaussian prior.
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


def _data_order(net: nn.Module) -> list[BayesianLayer]:
    """Return the Bayesian layers of ``net`` in the order its traced forward calls them.

    Layers the forward never calls come last; without a trace (torch.fx cannot trace the
    forward), the order they were registered in.
    """
    registered = [m for m in net.modules() if isinstance(m, BayesianLayer)]
    try:
        graph = network_graph(net)
    except TypeError:
        return registered
    called: list[BayesianLayer] = []
    for node in graph.graph.nodes:
        if node.op == "call_module":
            op = graph.op(node)
            if isinstance(op, BayesianLayer) and not any(op is m for m in called):
                called.append(op)
    return called + [m for m in registered if not any(m is c for c in called)]
