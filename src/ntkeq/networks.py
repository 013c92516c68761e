"""Fully connected ReLU networks in each parameterization, and their kernels.

The networks are the finite-width objects whose infinite-width limits
:mod:`ntkeq.kernels` computes in closed form; ``docs/theory.md`` states each
parameterization and ``docs/networks.md`` maps it to its kernel.

Notation
--------
==========================  ==================================================
code name                   symbol and meaning
==========================  ==================================================
``d_in``                    d, input dimension
``depth``                   L, number of hidden layers (L + 1 weight matrices)
``width``                   n, width of every hidden layer
``weights[l]``              W_l, shape (out_l, in_l), l = 0..L
``biases[l]``               b_l, shape (out_l,) (none for ``ntka``)
``weight_multipliers[l]``   a_l, fixed scale in front of W_l
``bias_multipliers[l]``     beta_l, fixed scale in front of b_l
``sigma_w``, ``sigma_b``    sigma_w,l and sigma_b,l, NTKB initialization stds
``c``                       c_l, NTKB scaling constants, l = 1..L
``beta``                    NTKJ bias multiplier
``c_sigma``                 NTKA activation scaling c_sigma
``h_l``                     input of layer l (x for l = 0, relu(z_{l-1}) after)
``z_l``                     pre-activation a_l W_l h_l + beta_l b_l
``g_l``                     backpropagated vector df / dz_l, shape (out_l,)
``ntk``                     Theta, tangent kernel over all parameters
``nngp``                    Sigma, output covariance at initialization
==========================  ==================================================

Every layer computes ``z_l = a_l * (h_l @ W_l.T) + beta_l * b_l``; hidden
layers apply relu and the last one (l = L) returns the scalar f(x) = z_L.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "MLP",
    "PARAMETERIZATIONS",
    "derived_seeds",
    "empirical_nngp",
    "empirical_ntk",
    "mean_empirical_ntk",
    "readout_nngp",
]

logger = logging.getLogger(__name__)

PARAMETERIZATIONS = ("ntkb", "ntkj", "ntka", "standard")
"""Network parameterizations, in the order of ``docs/theory.md``."""

NNGP_ESTIMATORS = ("output", "readout")
"""Monte Carlo estimators accepted by :func:`empirical_nngp`."""

DEFAULT_CHUNK_SIZE = 256
"""Inputs per block in :func:`empirical_ntk`."""

_DEFAULTS: dict[str, float] = {
    "sigma_w": 1.0,
    "sigma_b": 1.0,
    "c": 2.0,
    "beta": 1.0,
    "c_sigma": 2.0,
}
# Hyperparameters each parameterization reads; the others are ignored.
_USES: dict[str, tuple[str, ...]] = {
    "ntkb": ("sigma_w", "sigma_b", "c"),
    "ntkj": ("beta",),
    "ntka": ("c_sigma",),
    "standard": (),
}

FloatOrSeq = float | Sequence[float]


# ---------------------------------------------------------------------------
# argument checks


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_scalar(name: str, value: object, *, positive: bool) -> float:
    allowed = "a finite number > 0" if positive else "a finite number >= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    out = float(value)
    if not math.isfinite(out) or out < 0.0 or (positive and out == 0.0):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return out


def _per_layer(
    name: str, value: object, length: int, *, positive: bool
) -> tuple[float, ...]:
    """Broadcast a float to ``length`` entries or check a sequence's length."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (_check_scalar(name, value, positive=positive),) * length
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise TypeError(
            f"{name} must be a number or a sequence of {length} numbers, got {value!r}"
        )
    if len(value) != length:
        raise ValueError(
            f"{name} must be a number or a sequence of {length} numbers "
            f"(one per layer), got {len(value)} entries: {list(value)!r}"
        )
    return tuple(
        _check_scalar(f"{name}[{i}]", v, positive=positive) for i, v in enumerate(value)
    )


def _check_dtype(dtype: object) -> torch.dtype:
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(
                f"dtype must be a floating torch dtype or its name such as "
                f"'float32' or 'float64', got {dtype!r}"
            )
        dtype = resolved
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"dtype must be a floating torch dtype or its name such as "
            f"'float32' or 'float64', got {dtype!r}"
        )
    return dtype


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


# ---------------------------------------------------------------------------
# the network


class MLP(torch.nn.Module):
    """Fully connected ReLU network with a scalar output, in one parameterization.

    Implements the networks of ``docs/theory.md``: ``ntkb`` (the paper's
    derivation, equations (9) and (14) and appendix 6.4-6.5), ``ntkj`` (Jacot
    et al. 2018, Theorem 1), ``ntka`` (Arora et al. 2019) and ``standard``
    (PyTorch's ``nn.Linear`` default). Each layer computes
    ``z_l = a_l * (h_l @ W_l.T) + beta_l * b_l``:

    ============  ======================  ===========  ==========================
    name          a_0; a_l for l >= 1     beta_l       initialization
    ============  ======================  ===========  ==========================
    ``ntkb``      1; sqrt(c_l / n)        1            W_0 ~ N(0, sigma_w,0^2/d),
                                                       W_l ~ N(0, sigma_w,l^2),
                                                       b_l ~ N(0, sigma_b,l^2)
    ``ntkj``      1/sqrt(d); 1/sqrt(n)    ``beta``     all N(0, 1)
    ``ntka``      1; sqrt(c_sigma / n)    no biases    W_l ~ N(0, 1)
    ``standard``  1; 1                    1            U(-r, r), r = fan_in^-1/2
    ============  ======================  ===========  ==========================

    Parameters
    ----------
    d_in : int
        Input dimension d, >= 1.
    depth : int
        Number of hidden layers L, >= 1.
    width : int
        Width n of every hidden layer, >= 1.
    parameterization : str
        One of :data:`PARAMETERIZATIONS`.
    seed : int
        Seed of the CPU ``torch.Generator`` that draws every parameter
        (standard normal or uniform numbers in float32, scaled in float64, then
        cast to ``dtype`` and moved to ``device``), so one seed gives the same
        network on every device and, up to rounding, in every dtype.
    sigma_w, sigma_b : float or sequence of depth + 1 floats
        NTKB weight and bias standard deviations per layer (>= 0).
    c : float or sequence of depth floats
        NTKB constants c_1..c_L (> 0).
    beta : float
        NTKJ bias multiplier (>= 0).
    c_sigma : float
        NTKA activation scaling (> 0).
    dtype : torch.dtype or str
        Floating dtype of the parameters.
    device : str or torch.device
        Device of the parameters.

    Attributes
    ----------
    weights : torch.nn.ParameterList
        W_0..W_L; W_0 has shape (width, d_in), W_L shape (1, width).
    biases : torch.nn.ParameterList
        b_0..b_L, shapes (width,), ..., (1,); empty for ``ntka``.
    weight_multipliers, bias_multipliers : tuple of float
        a_0..a_L and beta_0..beta_L (all 0.0 for ``ntka``).
    weight_stds, bias_stds : tuple of float
        Standard deviation each W_l and b_l entry was drawn with (0.0 for the
        missing biases of ``ntka``).
    layer_sizes : tuple of int
        (d_in, width, ..., width, 1), length depth + 2.

    Examples
    --------
    >>> import torch
    >>> net = MLP(3, depth=2, width=8, parameterization="ntkb", seed=1)
    >>> net(torch.ones(5, 3)).shape
    torch.Size([5])
    >>> net.n_parameters
    113
    >>> [tuple(w.shape) for w in net.weights]
    [(8, 3), (8, 8), (1, 8)]
    """

    weights: torch.nn.ParameterList
    biases: torch.nn.ParameterList

    def __init__(
        self,
        d_in: int,
        depth: int,
        width: int,
        parameterization: str = "ntkb",
        seed: int = 0,
        *,
        sigma_w: FloatOrSeq = 1.0,
        sigma_b: FloatOrSeq = 1.0,
        c: FloatOrSeq = 2.0,
        beta: float = 1.0,
        c_sigma: float = 2.0,
        dtype: torch.dtype | str = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()

        # validate
        self.d_in = _check_int("d_in", d_in, 1)
        self.depth = _check_int("depth", depth, 1)
        self.width = _check_int("width", width, 1)
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}, "
                f"got {parameterization!r}"
            )
        self.parameterization = parameterization
        self.seed = _check_seed(seed)
        self.sigma_w = _per_layer("sigma_w", sigma_w, depth + 1, positive=False)
        self.sigma_b = _per_layer("sigma_b", sigma_b, depth + 1, positive=False)
        self.c = _per_layer("c", c, depth, positive=True)
        self.beta = _check_scalar("beta", beta, positive=False)
        self.c_sigma = _check_scalar("c_sigma", c_sigma, positive=True)
        self.dtype = _check_dtype(dtype)
        self._warn_ignored(
            {
                "sigma_w": sigma_w,
                "sigma_b": sigma_b,
                "c": c,
                "beta": beta,
                "c_sigma": c_sigma,
            }
        )
        self.layer_sizes = (self.d_in,) + (self.width,) * self.depth + (1,)

        # multipliers and initialization scales
        n, d, L = self.width, self.d_in, self.depth
        fan_in = self.layer_sizes[:-1]
        if parameterization == "ntkb":
            a = (1.0, *(math.sqrt(cl / n) for cl in self.c))
            b = (1.0,) * (L + 1)
            w_std = (self.sigma_w[0] / math.sqrt(d), *self.sigma_w[1:])
            b_std = self.sigma_b
        elif parameterization == "ntkj":
            a = (1.0 / math.sqrt(d),) + (1.0 / math.sqrt(n),) * L
            b = (self.beta,) * (L + 1)
            w_std = b_std = (1.0,) * (L + 1)
        elif parameterization == "ntka":
            a = (1.0,) + (math.sqrt(self.c_sigma / n),) * L
            b = (0.0,) * (L + 1)
            w_std = (1.0,) * (L + 1)
            b_std = (0.0,) * (L + 1)
        else:
            a = b = (1.0,) * (L + 1)
            # U(-r, r) has standard deviation r / sqrt(3)
            w_std = b_std = tuple(1.0 / math.sqrt(3.0 * f) for f in fan_in)
        self.weight_multipliers: tuple[float, ...] = a
        self.bias_multipliers: tuple[float, ...] = b
        self.weight_stds: tuple[float, ...] = w_std
        self.bias_stds: tuple[float, ...] = b_std

        # draw W_0, b_0, W_1, b_1, ... in this order from one CPU generator
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        weights, biases = [], []
        for layer in range(L + 1):
            shape = (self.layer_sizes[layer + 1], self.layer_sizes[layer])
            weights.append(self._draw(gen, shape, layer, w_std[layer]))
            if parameterization != "ntka":
                biases.append(self._draw(gen, shape[:1], layer, b_std[layer]))
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(w.to(device=device, dtype=self.dtype)) for w in weights
        )
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(v.to(device=device, dtype=self.dtype)) for v in biases
        )
        logger.debug("built %r", self)

    def _draw(
        self, gen: torch.Generator, shape: tuple[int, ...], layer: int, std: float
    ) -> torch.Tensor:
        """Draw one parameter tensor on the CPU, scaled in float64.

        The standard normal (or uniform) numbers are drawn in float32, about
        three times faster than in float64 and plenty for initialization; a
        float64 network holds them exactly, and a network of lower precision
        holds them rounded.
        """
        if self.parameterization == "standard":
            bound = 1.0 / math.sqrt(self.layer_sizes[layer])
            u = torch.rand(shape, generator=gen, dtype=torch.float32).double()
            return u.mul_(2.0 * bound).sub_(bound)
        z = torch.randn(shape, generator=gen, dtype=torch.float32).double()
        return z.mul_(std)

    def _warn_ignored(self, given: dict[str, object]) -> None:
        used = _USES[self.parameterization]
        ignored = []
        for name, value in given.items():
            if name in used:
                continue
            values = np.atleast_1d(np.asarray(value, dtype=float))
            if np.any(values != _DEFAULTS[name]):
                ignored.append(name)
        if ignored:
            warnings.warn(
                f"{', '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no "
                f"effect on parameterization {self.parameterization!r}, which reads "
                f"only {list(used)}; drop {'it' if len(ignored) == 1 else 'them'} "
                "or choose the parameterization that uses it",
                stacklevel=3,
            )

    @property
    def has_biases(self) -> bool:
        """Whether the layers have bias vectors (all but ``ntka``)."""
        return len(self.biases) > 0

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars, sum over layers of out_l (in_l + 1)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def hyperparameters(self) -> dict[str, object]:
        """The hyperparameters this parameterization reads, as given."""
        return {name: getattr(self, name) for name in _USES[self.parameterization]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network output f(x).

        Parameters
        ----------
        x : torch.Tensor, shape (n_samples, d_in)
            Inputs, in the parameters' dtype and on their device.

        Returns
        -------
        torch.Tensor, shape (n_samples,)
        """
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise ValueError(
                f"x must have shape (n_samples, {self.d_in}), got {tuple(x.shape)}"
            )
        h = x
        last = self.depth
        for layer, w in enumerate(self.weights):
            a = self.weight_multipliers[layer]
            if self.has_biases:
                z = torch.addmm(
                    self.biases[layer],
                    h,
                    w.t(),
                    beta=self.bias_multipliers[layer],
                    alpha=a,
                )
            else:
                z = torch.mm(h, w.t())
                if a != 1.0:
                    z = z * a
            h = torch.relu(z) if layer < last else z
        return h[:, 0]

    def __repr__(self) -> str:
        hyper = "".join(f", {k}={v!r}" for k, v in self.hyperparameters.items())
        dev = self.weights[0].device
        return (
            f"MLP(d_in={self.d_in}, depth={self.depth}, width={self.width}, "
            f"parameterization={self.parameterization!r}, seed={self.seed}{hyper}, "
            f"dtype={self.dtype}, device='{dev}', n_parameters={self.n_parameters})"
        )


# ---------------------------------------------------------------------------
# empirical kernels


def derived_seeds(seed: int, n: int) -> list[int]:
    """Independent 64-bit seeds for ``n`` networks, derived from one seed.

    Uses ``numpy.random.SeedSequence(seed).spawn(n)``, so seed i depends only on
    ``seed`` and ``i``, never on how many networks are drawn after it.

    Parameters
    ----------
    seed : int
        Master seed, >= 0.
    n : int
        Number of seeds, >= 0.

    Returns
    -------
    list of int, length n

    Examples
    --------
    >>> derived_seeds(0, 3)[:2] == derived_seeds(0, 2)
    True
    """
    seed = _check_seed(seed)
    n = _check_int("n", n, 0)
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(ss.generate_state(1, dtype=np.uint64)[0]) for ss in children]


def _as_tensor(
    name: str, X: object, d_in: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    if t.ndim != 2 or t.shape[1] != d_in:
        raise ValueError(
            f"{name} must have shape (n_samples, {d_in}), got {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values")
    return t.to(device=device, dtype=dtype)


def _layer_features(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    model: MLP,
    x: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Layer inputs h_l(x) and backpropagated vectors g_l(x) = df/dz_l(x).

    Returns two lists of length depth + 1: h_l of shape (n, in_l) and g_l of
    shape (n, out_l); g_L is a column of ones.
    """
    a = model.weight_multipliers
    hs, masks = [], []
    h = x
    for layer, w in enumerate(weights):
        hs.append(h)
        z = a[layer] * (h @ w.t())
        if biases:
            z = z + model.bias_multipliers[layer] * biases[layer]
        if layer < model.depth:
            masks.append(z > 0)
            h = torch.relu(z)
    gs = [torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)]
    for layer in range(model.depth, 0, -1):
        # dz_l / dz_{l-1} = a_l W_l diag(relu'(z_{l-1}))
        g = (gs[-1] @ weights[layer]) * a[layer]
        gs.append(g * masks[layer - 1])
    gs.reverse()
    return hs, gs


def empirical_ntk(
    model: MLP,
    X1: np.ndarray | torch.Tensor,
    X2: np.ndarray | torch.Tensor | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    dtype: torch.dtype | str | None = None,
) -> np.ndarray:
    """Empirical tangent kernel of a network over all of its parameters.

    Theta(x, x') = <grad_theta f(x), grad_theta f(x')> (Jacot et al. 2018,
    section 4; the finite-width object whose limit is the NTK of
    ``docs/theory.md``), computed exactly without forming any Jacobian through
    the layer-wise identity

    .. math::

        \\Theta(x, x') = \\sum_{l=0}^{L} \\langle g_l(x), g_l(x') \\rangle
            (a_l^2 \\langle h_l(x), h_l(x') \\rangle + \\beta_l^2),

    where the beta_l^2 term is present only when the network has biases.
    Memory is O((chunk_size + n2) (L + 1) n) for the layer vectors plus the
    (n1, n2) result; time O((n1 + n2) L n^2 + n1 n2 L n).

    Parameters
    ----------
    model : MLP
        The network, at its current parameters.
    X1 : array or tensor, shape (n1, d_in)
    X2 : array or tensor, shape (n2, d_in), optional
        Defaults to ``X1`` (the result is then exactly symmetric).
    chunk_size : int
        Inputs of ``X1`` processed per block, >= 1.
    dtype : torch.dtype or str, optional
        Dtype of the computation; defaults to the model's. ``torch.float64``
        casts a copy of the parameters first.

    Returns
    -------
    numpy.ndarray, shape (n1, n2), float64

    Examples
    --------
    >>> import numpy as np
    >>> net = MLP(2, depth=1, width=4, parameterization="ntka", seed=0)
    >>> K = empirical_ntk(net, np.eye(2), dtype="float64")
    >>> K.shape, bool(np.allclose(K, K.T))
    ((2, 2), True)
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be an ntkeq.networks.MLP, got {type(model)!r}")
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    work = model.dtype if dtype is None else _check_dtype(dtype)
    device = model.weights[0].device

    # prepare parameters and inputs in the working dtype
    weights = [w.detach().to(work) for w in model.weights]
    biases = [b.detach().to(work) for b in model.biases]
    x1 = _as_tensor("X1", X1, model.d_in, work, device)
    symmetric = X2 is None
    x2 = x1 if symmetric else _as_tensor("X2", X2, model.d_in, work, device)
    a2 = [a * a for a in model.weight_multipliers]
    b2 = [b * b for b in model.bias_multipliers] if biases else None

    with torch.no_grad():
        h2, g2 = _layer_features(weights, biases, model, x2)
        out = torch.empty(x1.shape[0], x2.shape[0], dtype=work, device=device)
        for start in range(0, x1.shape[0], chunk_size):
            stop = min(start + chunk_size, x1.shape[0])
            if symmetric:
                h1 = [h[start:stop] for h in h2]
                g1 = [g[start:stop] for g in g2]
            else:
                h1, g1 = _layer_features(weights, biases, model, x1[start:stop])
            block = torch.zeros(stop - start, x2.shape[0], dtype=work, device=device)
            for layer in range(model.depth + 1):
                inner = (h1[layer] @ h2[layer].t()).mul_(a2[layer])
                if b2 is not None:
                    inner.add_(b2[layer])
                block.add_(inner.mul_(g1[layer] @ g2[layer].t()))
            out[start:stop] = block
    result = out.cpu().to(torch.float64).numpy()
    if symmetric:
        result = 0.5 * (result + result.T)
    return result


def mean_empirical_ntk(
    d_in: int,
    depth: int,
    width: int,
    parameterization: str,
    X1: np.ndarray | torch.Tensor,
    X2: np.ndarray | torch.Tensor | None = None,
    *,
    n_networks: int,
    seed: int = 0,
    dtype: torch.dtype | str = torch.float64,
    device: str | torch.device = "cpu",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **hyper: Any,
) -> np.ndarray:
    """Empirical tangent kernel averaged over independently seeded networks.

    Network i is ``MLP(d_in, depth, width, parameterization,
    seed=derived_seeds(seed, n_networks)[i], **hyper)`` at initialization; the
    average estimates E[Theta], which converges to the closed-form NTK of
    ``docs/theory.md`` as the width grows (Jacot et al. 2018, Theorem 1).

    Parameters
    ----------
    d_in, depth, width, parameterization
        As in :class:`MLP`.
    X1 : array or tensor, shape (n1, d_in)
    X2 : array or tensor, shape (n2, d_in), optional
    n_networks : int
        Number of networks, >= 1.
    seed : int
        Master seed.
    dtype, device
        Of the networks (and of the computation).
    chunk_size : int
        As in :func:`empirical_ntk`.
    **hyper
        ``sigma_w``, ``sigma_b``, ``c``, ``beta``, ``c_sigma`` as in
        :class:`MLP`.

    Returns
    -------
    numpy.ndarray, shape (n1, n2), float64
    """
    n_networks = _check_int("n_networks", n_networks, 1)
    total: np.ndarray | None = None
    for i, s in enumerate(derived_seeds(seed, n_networks)):
        net = MLP(
            d_in, depth, width, parameterization, s, dtype=dtype, device=device, **hyper
        )
        k = empirical_ntk(net, X1, X2, chunk_size=chunk_size)
        total = k if total is None else total + k
        logger.debug("mean_empirical_ntk: network %d of %d", i + 1, n_networks)
    assert total is not None
    return total / n_networks


def readout_nngp(
    model: MLP,
    X1: np.ndarray | torch.Tensor,
    X2: np.ndarray | torch.Tensor | None = None,
    *,
    dtype: torch.dtype | str | None = None,
) -> np.ndarray:
    """Output covariance of one network given its hidden layers.

    The expectation of f(x) f(x') over the output layer's initialization
    (W_L, b_L) with the hidden layers held fixed:

    .. math::

        a_L^2 s_{w,L}^2 \\langle h_L(x), h_L(x') \\rangle + \\beta_L^2 s_{b,L}^2,

    with s the initialization standard deviations (``model.weight_stds``,
    ``model.bias_stds``). At initialization its mean over networks is the
    output covariance whose limit is the NNGP Sigma_L of ``docs/theory.md``;
    for one network it is the law-of-large-numbers estimate of
    Sigma_L that the infinite-width argument of Lee et al. (2018) uses, with
    spread O(width^-1/2).

    Parameters
    ----------
    model : MLP
        The network (only its hidden layers are read).
    X1 : array or tensor, shape (n1, d_in)
    X2 : array or tensor, shape (n2, d_in), optional
        Defaults to ``X1``.
    dtype : torch.dtype or str, optional
        Dtype of the computation; defaults to the model's.

    Returns
    -------
    numpy.ndarray, shape (n1, n2), float64

    Examples
    --------
    >>> import numpy as np
    >>> net = MLP(2, depth=1, width=3, parameterization="ntka", seed=0)
    >>> readout_nngp(net, np.eye(2)).shape
    (2, 2)
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be an ntkeq.networks.MLP, got {type(model)!r}")
    work = model.dtype if dtype is None else _check_dtype(dtype)
    device = model.weights[0].device
    weights = [w.detach().to(work) for w in model.weights]
    biases = [b.detach().to(work) for b in model.biases]
    x1 = _as_tensor("X1", X1, model.d_in, work, device)
    symmetric = X2 is None
    x2 = x1 if symmetric else _as_tensor("X2", X2, model.d_in, work, device)
    n1 = x1.shape[0]
    x = x1 if symmetric else torch.cat([x1, x2])

    # features h_L feeding the output layer
    with torch.no_grad():
        h = x
        for layer in range(model.depth):
            z = model.weight_multipliers[layer] * (h @ weights[layer].t())
            if biases:
                z = z + model.bias_multipliers[layer] * biases[layer]
            h = torch.relu(z)
        h = h.to(torch.float64)
        h1, h2 = (h, h) if symmetric else (h[:n1], h[n1:])
        L = model.depth
        k = (model.weight_multipliers[L] * model.weight_stds[L]) ** 2 * (h1 @ h2.t())
        k += (model.bias_multipliers[L] * model.bias_stds[L]) ** 2
    result = k.cpu().numpy()
    if symmetric:
        result = 0.5 * (result + result.T)
    return result


def empirical_nngp(
    d_in: int,
    depth: int,
    width: int,
    parameterization: str,
    X1: np.ndarray | torch.Tensor,
    X2: np.ndarray | torch.Tensor | None = None,
    *,
    n_networks: int,
    seed: int = 0,
    estimator: str = "output",
    dtype: torch.dtype | str = torch.float64,
    device: str | torch.device = "cpu",
    **hyper: Any,
) -> np.ndarray:
    """Monte Carlo output covariance E[f(x) f(x')] of networks at initialization.

    The networks are ``MLP(d_in, depth, width, parameterization,
    seed=derived_seeds(seed, n_networks)[i], **hyper)``. Their output
    covariance is the NNGP of ``docs/theory.md`` (Lee et al. 2018; the paper's
    GP kernels, equations (9) and (14)) up to an O(1 / width) finite-width
    correction, which vanishes for depth 1.

    Two unbiased estimators of the same expectation are offered:

    ``"output"``
        The sample mean of f(x) f(x') over the networks; standard error
        O(n_networks^-1/2).
    ``"readout"``
        The output layer's weights and bias integrated out in closed form:
        the mean over networks of :func:`readout_nngp`. Its spread is
        O((n_networks width)^-1/2), so even a single wide network gives a
        close estimate.

    Parameters
    ----------
    d_in, depth, width, parameterization
        As in :class:`MLP`.
    X1 : array or tensor, shape (n1, d_in)
    X2 : array or tensor, shape (n2, d_in), optional
        Defaults to ``X1``.
    n_networks : int
        Number of networks, >= 1.
    seed : int
        Master seed.
    estimator : {"output", "readout"}
    dtype, device
        Of the networks (and of the computation).
    **hyper
        ``sigma_w``, ``sigma_b``, ``c``, ``beta``, ``c_sigma`` as in
        :class:`MLP`.

    Returns
    -------
    numpy.ndarray, shape (n1, n2), float64

    Examples
    --------
    >>> import numpy as np
    >>> K = empirical_nngp(2, 1, 16, "ntkj", np.eye(2), n_networks=10)
    >>> K.shape
    (2, 2)
    """
    n_networks = _check_int("n_networks", n_networks, 1)
    if estimator not in NNGP_ESTIMATORS:
        raise ValueError(
            f"estimator must be one of {NNGP_ESTIMATORS}, got {estimator!r}"
        )
    work = _check_dtype(dtype)
    dev = torch.device(device)
    x1 = _as_tensor("X1", X1, d_in, work, dev)
    symmetric = X2 is None
    x2 = x1 if symmetric else _as_tensor("X2", X2, d_in, work, dev)
    x = torch.cat([x1, x2]) if not symmetric else x1
    n1 = x1.shape[0]

    total = torch.zeros(n1, x2.shape[0], dtype=torch.float64, device=dev)
    with torch.no_grad():
        for s in derived_seeds(seed, n_networks):
            net = MLP(
                d_in, depth, width, parameterization, s, dtype=work, device=dev, **hyper
            )
            if estimator == "output":
                f = net(x).to(torch.float64)
                f1, f2 = (f, f) if symmetric else (f[:n1], f[n1:])
                total += f1[:, None] * f2[None, :]
                continue
            k = readout_nngp(net, x1, None if symmetric else x2)
            total += torch.as_tensor(k, device=dev)
    result = (total / n_networks).cpu().numpy()
    if symmetric:
        result = 0.5 * (result + result.T)
    return result
