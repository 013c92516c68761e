"""Closed-form NTK and NNGP kernels of fully connected ReLU networks.

Every formula here is stated in ``docs/theory.md``; this module follows it line
by line, for any depth, in float64, one whole Gram matrix at a time.

Notation
--------
=================  ======  ==================================================
code               symbol  meaning
=================  ======  ==================================================
``depth``          L       number of hidden layers
``d``              d       input dimension
``G``              <x,x'>  Gram matrix of inner products of the inputs
``sigma_w[l]``     σ_w,l   weight standard deviation of layer l = 0..L
``sigma_b[l]``     σ_b,l   bias standard deviation of layer l = 0..L
``c[l]``           c_l     NTKB scaling constant of layer l = 1..L
``beta``           β       NTKJ bias multiplier
``c_sigma``        c_σ     NTKA activation scaling
``nngp``           Σ_l     covariance of layer l's pre-activations
``var``            v_l     Σ_l(x, x), from the closed diagonal recursion
``relu_relu``      E_l     E[relu(u) relu(v)] under Σ_{l-1}
``nngp_dot``       Σ̇_l     E[relu'(u) relu'(v)] under Σ_{l-1}
``ntk``            Θ_l     tangent kernel of layer l's pre-activations
``angle``          δ       angle between two pre-activations, cos δ = ``cos``
=================  ======  ==================================================

Every ReLU family shares one shape of recursion, with family-specific
coefficients (see ``docs/theory.md`` for each family's values)::

    Σ_0 = a_0 G + b_0                 Θ_0 = p G + q
    Σ_l = b_l + a_l E_l               Θ_l = r_l + s_l E_l + t_l Σ̇_l Θ_{l-1}
    v_0 = a_0 |x|² + b_0              v_l = b_l + a_l v_{l-1} / 2

so a family is a set of coefficients, and kernels whose covariance chains
coincide (GP1, GP2, NTKB1 and NTKB2, for instance) share their arc-cosine
moments in :func:`gram_many`. E_l and Σ̇_l come from the angle between the
two inputs' pre-activations, cos δ = Σ_{l-1} / sqrt(v v') (``exact``), or the
published script's cos δ = Σ_{l-1} / (v v') with δ = 0 where that ratio
exceeds 1 in absolute value (``as-published``); the variances v always come
from the closed diagonal recursion. ``as-published`` NTKJ also takes its
moments beyond layer 1 from the chain K_l = β² + 2 E_l (``docs/theory.md``).

Gram matrices are filled tile by tile (``block_size`` rows and columns at a
time), which keeps the temporaries in cache and the extra memory at a few
tiles, and lets ``n_threads`` threads fill tiles at once (numpy releases the
GIL inside its elementwise loops). With ``X2=None`` only the upper triangle of
tiles is computed and mirrored, so the result is exactly symmetric. numpy's
BLAS is held to one thread during a fill (see ``_numpy_blas_single_thread``).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import numbers
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "AS_PUBLISHED_RATIO_LIMIT",
    "COS_CLIP",
    "COS_SNAP",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_THREADS",
    "FAMILIES",
    "VARIANTS",
    "Kernel",
    "gram_many",
    "kernel",
    "kernel_names",
    "laplace",
    "nngp",
    "ntka",
    "ntkb",
    "ntkj",
    "relu_kernels",
    "relu_moments",
]

logger = logging.getLogger(__name__)

#: The cosine of the angle is clipped to [-COS_CLIP, COS_CLIP] before arccos,
#: so rounding (a cosine of 1 + 1e-16 on the diagonal) never yields NaN.
COS_CLIP: float = 1.0

#: Cosines within COS_SNAP (relative) of ±1 are treated as ±1. A cosine
#: computed as cov / sqrt(var1 var2) carries a rounding error of a few ulps;
#: at cos δ = 1 that would put a spurious angle of about 1e-8 between identical
#: inputs (arccos has infinite slope there) and shift
#: E[relu' relu'] on the Gram diagonal by 1e-9. The snap makes identical inputs
#: exact; angles below sqrt(2 COS_SNAP) ~ 1.7e-7 rad, which float64 cannot
#: resolve through a cosine anyway, are read as 0. The Laplace kernel likewise
#: reads squared distances below COS_SNAP (|x|² + |x'|²) as 0.
COS_SNAP: float = 64 * float(np.finfo(np.float64).eps)

#: ``variant="as-published"`` sets the angle to 0 wherever the script's
#: ratio k12 / (k11 k22) exceeds this limit in absolute value.
AS_PUBLISHED_RATIO_LIMIT: float = 1.0

#: Default tile edge (rows and columns per tile) of the blocked Gram fill.
DEFAULT_BLOCK_SIZE: int = 256

#: Default number of threads filling tiles. One, so that kernels computed
#: inside parallel trials never oversubscribe the cores; pass ``n_threads``
#: to use more.
DEFAULT_THREADS: int = 1

#: The formula variants: the paper's equations, or the published script's.
VARIANTS: tuple[str, ...] = ("exact", "as-published")

#: Kernel families accepted by :func:`kernel`.
FAMILIES: tuple[str, ...] = ("ntkb", "ntkj", "ntka", "nngp", "laplace")

_RELU_FAMILIES: tuple[str, ...] = ("ntkb", "ntkj", "ntka")
_PAPER_NAMES: tuple[str, ...] = (
    "GP1",
    "GP2",
    "NTKA1",
    "NTKA2",
    "NTKJ1",
    "NTKJ2",
    "NTKB1",
    "NTKB2",
    "K1",
)
_FAMILY_PARAMS: dict[str, tuple[str, ...]] = {
    "ntkb": ("sigma_w", "sigma_b", "c"),
    "ntkj": ("beta",),
    "ntka": ("c_sigma",),
    "laplace": ("a", "b"),
}
_DEFAULTS: dict[str, float] = {
    "sigma_w": 1.0,
    "sigma_b": 1.0,
    "c": 2.0,
    "beta": 1.0,
    "c_sigma": 2.0,
    "a": 2.0,
    "b": 6.0,
}
_NAME_RE = re.compile(r"^(NTKB|NTKJ|NTKA|GP|NNGP)(\d+)$")
_PREFIX_FAMILY = {
    "NTKB": "ntkb",
    "NTKJ": "ntkj",
    "NTKA": "ntka",
    "GP": "nngp",
    "NNGP": "nngp",
}
_TWO_PI = 2.0 * math.pi

Array = NDArray[np.float64]
ParamValue = float | tuple[float, ...] | str


# --------------------------------------------------------------------------
# argument validation


def _check_variant(variant: object) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    return str(variant)


def _check_depth(depth: object) -> int:
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
        raise TypeError(f"depth must be an int >= 1; got {depth!r}")
    if int(depth) < 1:
        raise ValueError(f"depth must be an int >= 1; got {depth!r}")
    return int(depth)


def _check_scalar(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    out = float(value)
    if not math.isfinite(out) or out < 0.0 or (positive and out == 0.0):
        allowed = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return out


def _check_layers(
    name: str, value: object, length: int, first: int
) -> tuple[float, ...]:
    """Expand a per-layer parameter to a tuple of ``length`` validated floats.

    ``first`` is the index of the first layer (0 for sigma_w, sigma_b; 1 for c),
    used only in error messages.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (_check_scalar(name, value),) * length
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"{name} must be a number or a sequence of {length} numbers "
            f"(layers {first}..{first + length - 1}); got {value!r}"
        )
    items = list(np.asarray(value, dtype=object).ravel()) if np.ndim(value) else []
    if np.ndim(value) != 1 or len(items) != length:
        raise ValueError(
            f"{name} must be a number or a sequence of {length} numbers "
            f"(layers {first}..{first + length - 1}); got {value!r}"
        )
    return tuple(_check_scalar(f"{name}[{first + i}]", v) for i, v in enumerate(items))


def _check_inputs(X: ArrayLike, name: str) -> Array:
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a real array of shape (n, d); got {type(X).__name__}"
        ) from exc
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n, d); got shape {arr.shape}"
            " (reshape a single input to (1, d), a 1-D sample to (n, 1))"
        )
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have d >= 1 columns; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; it contains NaN or inf")
    return np.ascontiguousarray(arr)


def _check_pair(X1: ArrayLike, X2: ArrayLike | None) -> tuple[Array, Array | None]:
    A = _check_inputs(X1, "X1")
    if X2 is None:
        return A, None
    B = _check_inputs(X2, "X2")
    if B.shape[1] != A.shape[1]:
        raise ValueError(
            f"X1 and X2 must have the same number of columns d; got X1 shape "
            f"{A.shape} and X2 shape {B.shape}"
        )
    return A, B


def _check_block(block_size: object) -> int:
    if block_size is None:
        return DEFAULT_BLOCK_SIZE
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral):
        raise TypeError(f"block_size must be an int >= 1 or None; got {block_size!r}")
    if int(block_size) < 1:
        raise ValueError(f"block_size must be an int >= 1 or None; got {block_size!r}")
    return int(block_size)


def _check_threads(n_threads: object) -> int:
    if n_threads is None:
        return DEFAULT_THREADS
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be an int >= 1 or None; got {n_threads!r}")
    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be an int >= 1 or None; got {n_threads!r}")
    return int(n_threads)


# --------------------------------------------------------------------------
# the angle and the arc-cosine moments


class _Workspace:
    """Reusable flat buffers of one thread, viewed as tiles of any shape.

    Fresh tile-sized arrays on every operation would cost page faults and
    cache misses; every tile operation writes into one of these instead.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._buffers: dict[object, Array] = {}
        self._mask = np.empty(size, dtype=bool)

    def get(self, key: object, shape: tuple[int, int]) -> Array:
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(self.size, dtype=np.float64)
        return buf[: shape[0] * shape[1]].reshape(shape)

    def mask(self, shape: tuple[int, int]) -> NDArray[np.bool_]:
        return self._mask[: shape[0] * shape[1]].reshape(shape)


def _arc_moments(cos: Array, pi_minus_angle: Array, scratch: Array) -> None:
    """Arc-cosine moments of a cosine matrix, times 2π, in place.

    Parameters
    ----------
    cos : ndarray of shape (n1, n2)
        cos δ on entry; clipped to [-COS_CLIP, COS_CLIP], then overwritten with
        sin δ + (π − δ) cos δ, that is 2π E[relu relu] at unit variances (Cho
        and Saul 2009, the arc-cosine kernel of degree 1).
    pi_minus_angle : ndarray of shape (n1, n2)
        Output: π − δ, that is 2π E[relu' relu'] (degree 0).
    scratch : ndarray of shape (n1, n2)
        Work space, overwritten.
    """
    np.clip(cos, -COS_CLIP, COS_CLIP, out=cos)
    np.arccos(cos, out=pi_minus_angle)
    np.subtract(np.pi, pi_minus_angle, out=pi_minus_angle)

    # sin δ from cos δ: sqrt(max(1 - cos², 0)), no call to sin or cos.
    sin = np.multiply(cos, cos, out=scratch)
    np.subtract(1.0, sin, out=sin)
    np.maximum(sin, 0.0, out=sin)
    np.sqrt(sin, out=sin)

    np.multiply(cos, pi_minus_angle, out=cos)
    np.add(cos, sin, out=cos)


def _cos_factors(var1: Array, var2: Array, variant: str) -> tuple[Array, Array]:
    """Row and column factors that turn a covariance into the cosine.

    ``exact``: cos δ = cov / sqrt(var1 var2) (equations (7), (16));
    ``as-published``: cov / (var1 var2) (the script's normalization). The
    factor 1 + COS_SNAP is folded into the row factor, so that the clip to
    [-COS_CLIP, COS_CLIP] snaps cosines within COS_SNAP of ±1. Zero variances get factor
    0, so the cosine is 0 there (δ = π/2, the average angle over directions).

    Parameters
    ----------
    var1 : ndarray of shape (n1,)
    var2 : ndarray of shape (n2,)

    Returns
    -------
    f1 : ndarray of shape (n1,)
    f2 : ndarray of shape (n2,)
    """
    out = []
    for var in (var1, var2):
        scale = np.sqrt(var) if variant == "exact" else var
        factor = np.zeros_like(var)
        np.divide(1.0, scale, out=factor, where=scale > 0.0)
        out.append(factor)
    out[0] *= 1.0 + COS_SNAP
    return out[0], out[1]


def _cosine_inplace(
    cov: Array,
    f1: Array,
    f2: Array,
    variant: str,
    scratch: Array,
    mask: NDArray[np.bool_],
) -> None:
    """cos δ = cov · f1 ⊗ f2 in place, with the as-published angle rule."""
    _scale_outer(cov, f1, f2)
    if variant == "as-published":
        # The script sets δ = 0 wherever |ratio| > 1 (the ratio carries the
        # factor 1 + COS_SNAP from _cos_factors).
        np.abs(cov, out=scratch)
        np.greater(scratch, AS_PUBLISHED_RATIO_LIMIT * (1.0 + COS_SNAP), out=mask)
        np.putmask(cov, mask, 1.0)


def _scale_outer(M: Array, u: Array, w: Array) -> None:
    """M *= u ⊗ w in place (one pass when u and w are constant)."""
    if u.size and w.size and u.min() == u.max() and w.min() == w.max():
        M *= u[0] * w[0]
    else:
        M *= u[:, None]
        M *= w[None, :]


def relu_moments(
    cov12: ArrayLike,
    var1: ArrayLike,
    var2: ArrayLike,
    variant: str = "exact",
) -> tuple[Array, Array]:
    """Arc-cosine moments of ReLU under a bivariate Gaussian.

    For (u, v) ~ N(0, [[var1_i, cov12_ij], [cov12_ij, var2_j]]) returns
    E[relu(u) relu(v)] = sqrt(var1 var2) / (2π) (sin δ + (π − δ) cos δ) and
    E[relu'(u) relu'(v)] = (π − δ) / (2π), Cho and Saul (2009); the paper's
    equations (15)-(16).

    Parameters
    ----------
    cov12 : array_like of shape (n1, n2)
        Covariances.
    var1 : array_like of shape (n1,)
        Variances of u, non-negative.
    var2 : array_like of shape (n2,)
        Variances of v, non-negative.
    variant : {"exact", "as-published"}
        ``exact``: cos δ = cov12 / sqrt(var1 var2). ``as-published``:
        cos δ = cov12 / (var1 var2), and δ = 0 where that ratio exceeds
        AS_PUBLISHED_RATIO_LIMIT in absolute value; the prefactor
        sqrt(var1 var2) is the same. In both, cosines within COS_SNAP of ±1
        are snapped to ±1, and all are clipped to [-COS_CLIP, COS_CLIP].

    Returns
    -------
    relu_relu : ndarray of shape (n1, n2)
        E[relu(u) relu(v)].
    nngp_dot : ndarray of shape (n1, n2)
        E[relu'(u) relu'(v)].

    Examples
    --------
    >>> e, e_dot = relu_moments([[1.0, 0.0]], [1.0], [1.0, 1.0])
    >>> e.round(6).tolist(), e_dot.tolist()
    ([[0.5, 0.159155]], [[0.5, 0.25]])
    """
    variant = _check_variant(variant)
    cov = np.array(cov12, dtype=np.float64)
    v1 = np.asarray(var1, dtype=np.float64)
    v2 = np.asarray(var2, dtype=np.float64)
    if cov.ndim != 2:
        raise ValueError(f"cov12 must be 2-D of shape (n1, n2); got shape {cov.shape}")
    if v1.shape != (cov.shape[0],):
        raise ValueError(f"var1 must have shape ({cov.shape[0]},); got {v1.shape}")
    if v2.shape != (cov.shape[1],):
        raise ValueError(f"var2 must have shape ({cov.shape[1]},); got {v2.shape}")
    for name, arr in (("cov12", cov), ("var1", v1), ("var2", v2)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite; it contains NaN or inf")
    for name, arr in (("var1", v1), ("var2", v2)):
        if np.any(arr < 0.0):
            raise ValueError(f"{name} must be non-negative; min is {arr.min()!r}")

    scratch = np.empty_like(cov)
    f1, f2 = _cos_factors(v1, v2, variant)
    _cosine_inplace(cov, f1, f2, variant, scratch, np.empty(cov.shape, dtype=bool))
    pi_minus_angle = np.empty_like(cov)
    _arc_moments(cov, pi_minus_angle, scratch)
    _scale_outer(cov, np.sqrt(v1) / _TWO_PI, np.sqrt(v2))
    pi_minus_angle /= _TWO_PI
    return cov, pi_minus_angle


# --------------------------------------------------------------------------
# the recursions as coefficients


@dataclass(frozen=True)
class _Chain:
    """Σ_0 = a0 G + b0, Σ_l = layers[l-1][0] + layers[l-1][1] E_l."""

    variant: str
    a0: float
    b0: float
    layers: tuple[tuple[float, float], ...]

    def prefix(self, k: int) -> _Chain:
        return _Chain(self.variant, self.a0, self.b0, self.layers[:k])


@dataclass(frozen=True)
class _Request:
    """One Gram matrix to fill: an NNGP Σ_L, an NTK Θ_L, or a Laplace kernel."""

    key: str
    kind: str
    chain: _Chain | None = None
    theta0: tuple[float, float] = (0.0, 0.0)
    theta: tuple[tuple[float, float, float], ...] = ()
    laplace: tuple[float, float] = (0.0, 0.0)


def _relu_coefficients(
    family: str, depth: int, d: int, variant: str, params: dict[str, Any]
) -> tuple[_Chain, tuple[float, float], tuple[tuple[float, float, float], ...]]:
    """Coefficients of the Σ and Θ recursions of a family (docs/theory.md)."""
    if family == "ntkb":
        sw = [s * s for s in params["sigma_w"]]
        sb = [s * s for s in params["sigma_b"]]
        c = (0.0, *params["c"])
        chain = _Chain(
            variant,
            sw[0] / d,
            sb[0],
            tuple((sb[i], c[i] * sw[i]) for i in range(1, depth + 1)),
        )
        theta = tuple((1.0, c[i], c[i] * sw[i]) for i in range(1, depth + 1))
        return chain, (1.0, 1.0), theta
    if family == "ntkj":
        b2 = params["beta"] ** 2
        # as-published: the K chain of departure 2 carries the factor 2.
        a = 2.0 if variant == "as-published" else 1.0
        chain = _Chain(variant, 1.0 / d, b2, ((b2, a),) * depth)
        return chain, (1.0 / d, b2), ((b2, 1.0, 1.0),) * depth
    cs = params["c_sigma"]
    chain = _Chain(variant, 1.0, 0.0, ((0.0, cs),) * depth)
    return chain, (1.0, 0.0), ((0.0, cs, cs),) * depth


# --------------------------------------------------------------------------
# the tiled engine


class _Plan:
    """Per-call precomputation: node variances and the row/column factors."""

    def __init__(self, requests: Sequence[_Request], X1: Array, X2: Array) -> None:
        self.requests = list(requests)
        self.X1, self.X2 = X1, X2
        self.sq1 = np.einsum("ij,ij->i", X1, X1)
        self.sq2 = np.einsum("ij,ij->i", X2, X2)
        self.sq1_snap = self.sq1 * (1.0 - COS_SNAP)
        self.sq2_snap = self.sq2 * (1.0 - COS_SNAP)

        # Every covariance node whose moments some request needs, parents first.
        nodes: dict[_Chain, None] = {}
        for req in self.requests:
            if req.chain is None:
                continue
            depth = len(req.theta) if req.kind == "ntk" else len(req.chain.layers)
            for k in range(depth):
                nodes[req.chain.prefix(k)] = None
        self.nodes = sorted(nodes, key=lambda n: len(n.layers))

        # Per node: cosine factors f1, f2 and prefactors sqrt(var) / 2π, sqrt(var),
        # with var from the closed diagonal recursion.
        self.factors: dict[_Chain, tuple[Array, Array, Array, Array]] = {}
        for node in self.nodes:
            v1 = node.a0 * self.sq1 + node.b0
            v2 = node.a0 * self.sq2 + node.b0
            for b, a in node.layers:
                v1 = b + a * v1 / 2.0
                v2 = b + a * v2 / 2.0
            self.factors[node] = (
                *_cos_factors(v1, v2, node.variant),
                np.sqrt(v1) / _TWO_PI,
                np.sqrt(v2),
            )
        logger.debug(
            "kernel plan: %d Gram matrices, %d arc-cosine layers",
            len(self.requests),
            len(self.nodes),
        )

    def fill(
        self,
        rows: slice,
        cols: slice,
        ws: _Workspace,
        emit: Callable[[int, Array], None],
    ) -> None:
        """Compute every requested tile for ``rows`` x ``cols``; ``emit`` stores it."""
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        G = ws.get("G", shape)
        np.matmul(self.X1[rows], self.X2[cols].T, out=G)
        scratch = ws.get("scratch", shape)
        moments: dict[_Chain, tuple[Array, Array]] = {}

        # Arc-cosine moments (E_l, π − δ) per covariance node, parents first.
        for node in self.nodes:
            cov = ws.get((node, "E"), shape)
            if node.layers:
                b, a = node.layers[-1]
                np.multiply(moments[node.prefix(len(node.layers) - 1)][0], a, out=cov)
            else:
                b = node.b0
                np.multiply(G, node.a0, out=cov)
            if b != 0.0:
                cov += b
            f1, f2, s1, s2 = self.factors[node]
            _cosine_inplace(
                cov, f1[rows], f2[cols], node.variant, scratch, ws.mask(shape)
            )
            pi_minus_angle = ws.get((node, "pi-angle"), shape)
            _arc_moments(cov, pi_minus_angle, scratch)
            _scale_outer(cov, s1[rows], s2[cols])
            moments[node] = (cov, pi_minus_angle)

        # Each requested Gram tile, built in ``res`` and handed to ``emit``.
        res = ws.get("result", shape)
        for index, req in enumerate(self.requests):
            if req.kind == "laplace":
                self._laplace(G, rows, cols, *req.laplace, out=res)
            elif req.kind == "nngp":
                assert req.chain is not None
                L = len(req.chain.layers)
                b, a = req.chain.layers[-1]
                np.multiply(moments[req.chain.prefix(L - 1)][0], a, out=res)
                if b != 0.0:
                    res += b
            else:
                assert req.chain is not None
                p, q = req.theta0
                np.multiply(G, p, out=res)
                if q != 0.0:
                    res += q
                for k, (r, s, t) in enumerate(req.theta):
                    relu_relu, pi_minus_angle = moments[req.chain.prefix(k)]
                    # Θ_l = r + s E_l + t (π − δ) / 2π Θ_{l-1}
                    res *= pi_minus_angle
                    res *= t / _TWO_PI
                    if s == 1.0:
                        res += relu_relu
                    else:
                        np.multiply(relu_relu, s, out=scratch)
                        res += scratch
                    if r != 0.0:
                        res += r
            emit(index, res)

    def _laplace(
        self, G: Array, rows: slice, cols: slice, a: float, b: float, out: Array
    ) -> None:
        """a exp(−|x − x'| / b) from the Gram tile: |x−x'|² = |x|² + |x'|² − 2G.

        The norms carry the factor 1 - COS_SNAP, so that rounding in G never
        leaves a spurious distance of ~1e-8 |x| between identical inputs.
        """
        dist = np.multiply(G, -2.0, out=out)
        dist += self.sq1_snap[rows, None]
        dist += self.sq2_snap[None, cols]
        np.maximum(dist, 0.0, out=dist)
        np.sqrt(dist, out=dist)
        dist *= -1.0 / b
        np.exp(dist, out=dist)
        dist *= a


_BLAS_CONTROLLER: list[Any] = []


def _numpy_blas_single_thread() -> contextlib.AbstractContextManager[Any]:
    """Limit numpy's own BLAS to one thread for the duration of a Gram fill.

    Each tile's inner products are one small matrix product; a threaded BLAS
    wakes its threads for each of them, which on a loaded machine costs
    milliseconds per tile. Only the BLAS inside numpy's installation is
    limited (threadpoolctl, a scikit-learn dependency; nothing happens when it
    is missing), and only while the fill runs.
    """
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scikit-learn brings it
            _BLAS_CONTROLLER.append(None)
        else:
            root = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy")
            controller = ThreadpoolController()
            paths = [
                lib.filepath
                for lib in controller.lib_controllers
                if lib.user_api == "blas" and str(lib.filepath).startswith(root)
            ]
            _BLAS_CONTROLLER.append(
                controller.select(filepath=paths) if paths else None
            )
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def _run(
    requests: Sequence[_Request],
    X1: Array,
    X2: Array | None,
    block_size: int,
    n_threads: int,
) -> list[Array]:
    """Fill every requested Gram matrix, tile by tile, possibly in threads."""
    symmetric = X2 is None
    Y = X1 if X2 is None else X2
    plan = _Plan(requests, X1, Y)
    n1, n2 = X1.shape[0], Y.shape[0]
    outs = [np.empty((n1, n2), dtype=np.float64) for _ in requests]

    # With X2 = None only tiles on or above the diagonal are computed.
    r_starts = range(0, n1, block_size)
    c_starts = range(0, n2, block_size)
    tasks = [(i, j) for i in r_starts for j in c_starts if not symmetric or j >= i]
    local = threading.local()

    def work(task: tuple[int, int]) -> None:
        ws = getattr(local, "ws", None)
        if ws is None:
            ws = local.ws = _Workspace(block_size * block_size)
        i, j = task
        rows = slice(i, min(i + block_size, n1))
        cols = slice(j, min(j + block_size, n2))

        def emit(index: int, tile: Array) -> None:
            out = outs[index]
            if symmetric and i == j:
                # (T + T.T) / 2 makes a diagonal tile exactly symmetric.
                out[rows, cols] = tile
                out[rows, cols] += tile.T
                out[rows, cols] *= 0.5
            else:
                out[rows, cols] = tile
                if symmetric:
                    out[cols, rows] = tile.T

        plan.fill(rows, cols, ws, emit)

    with _numpy_blas_single_thread():
        if n_threads > 1 and len(tasks) > 1:
            with ThreadPoolExecutor(max_workers=min(n_threads, len(tasks))) as pool:
                for _ in pool.map(work, tasks):
                    pass
        else:
            for task in tasks:
                work(task)
    return outs


# --------------------------------------------------------------------------
# kernel functions


def _relu_params(family: str, depth: int, params: dict[str, Any]) -> dict[str, Any]:
    """Validated, expanded hyperparameters of a ReLU family."""
    allowed = _FAMILY_PARAMS[family]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for family {family!r}; allowed: "
            f"{list(allowed)}"
        )
    full = {k: params.get(k, _DEFAULTS[k]) for k in allowed}
    if family == "ntkb":
        return {
            "sigma_w": _check_layers("sigma_w", full["sigma_w"], depth + 1, 0),
            "sigma_b": _check_layers("sigma_b", full["sigma_b"], depth + 1, 0),
            "c": _check_layers("c", full["c"], depth, 1),
        }
    return {k: _check_scalar(k, v) for k, v in full.items()}


def _relu_request(
    key: str,
    kind: str,
    family: str,
    depth: int,
    variant: str,
    d: int,
    params: dict[str, Any],
) -> _Request:
    chain, theta0, theta = _relu_coefficients(family, depth, d, variant, params)
    return _Request(key, kind, chain, theta0, theta)


def relu_kernels(
    X1: ArrayLike,
    X2: ArrayLike | None = None,
    *,
    family: str,
    depth: int,
    variant: str = "exact",
    block_size: int | None = None,
    n_threads: int | None = None,
    **params: Any,
) -> tuple[Array, Array]:
    """NNGP and NTK Gram matrices of the output of a deep ReLU network.

    Implements the recursions of ``docs/theory.md`` for the ``ntkb`` network
    (the paper's equations (9), (14)-(16)), ``ntkj`` (Jacot et al. 2018,
    Theorem 1) and ``ntka`` (Arora et al. 2019).

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
        Inputs, one per row; finite.
    X2 : array_like of shape (n2, d), optional
        Second inputs; ``None`` means X1 and gives exactly symmetric matrices.
    family : {"ntkb", "ntkj", "ntka"}
        Network parameterization.
    depth : int
        Number of hidden layers L >= 1.
    variant : {"exact", "as-published"}
        The paper's equations or the published script's formulas.
    block_size : int, optional
        Tile edge of the blocked fill (default ``DEFAULT_BLOCK_SIZE``); extra
        memory is a few ``block_size**2`` arrays per thread.
    n_threads : int, optional
        Threads filling tiles (default ``DEFAULT_THREADS``, that is 1).
    **params
        ``ntkb``: ``sigma_w``, ``sigma_b`` (a float or depth + 1 values),
        ``c`` (a float or depth values); ``ntkj``: ``beta``; ``ntka``:
        ``c_sigma``.

    Returns
    -------
    nngp : ndarray of shape (n1, n2)
        Σ_L, the output covariance at initialization (for ``ntkj`` with
        ``as-published``, the script's chain K_L).
    ntk : ndarray of shape (n1, n2)
        Θ_L, the tangent kernel of the output.

    Examples
    --------
    >>> sigma, theta = relu_kernels([[1.0, 0.0]], family="ntka", depth=1)
    >>> float(sigma[0, 0]), float(theta[0, 0])
    (1.0, 2.0)
    """
    variant = _check_variant(variant)
    if family not in _RELU_FAMILIES:
        raise ValueError(f"family must be one of {_RELU_FAMILIES}; got {family!r}")
    depth = _check_depth(depth)
    full = _relu_params(family, depth, params)
    A, B = _check_pair(X1, X2)
    d = A.shape[1]
    reqs = [
        _relu_request("nngp", "nngp", family, depth, variant, d, full),
        _relu_request("ntk", "ntk", family, depth, variant, d, full),
    ]
    sigma, theta = _run(reqs, A, B, _check_block(block_size), _check_threads(n_threads))
    return sigma, theta


def ntkb(
    X1: ArrayLike,
    X2: ArrayLike | None = None,
    *,
    depth: int = 1,
    sigma_w: float | Sequence[float] = 1.0,
    sigma_b: float | Sequence[float] = 1.0,
    c: float | Sequence[float] = 2.0,
    variant: str = "exact",
    block_size: int | None = None,
    n_threads: int | None = None,
) -> Array:
    """NTKB_L: tangent kernel of the paper's network (equations (6), (8), (14)).

    Θ_0 = <x, x'> + 1 and Θ_l = 1 + c_l E_l + c_l σ_w,l² Σ̇_l Θ_{l-1}, with
    Σ_0 = σ_w,0² <x, x'> / d + σ_b,0² and Σ_l = σ_b,l² + c_l σ_w,l² E_l.

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
    X2 : array_like of shape (n2, d), optional
    depth : int
        Hidden layers L >= 1.
    sigma_w, sigma_b : float or sequence of depth + 1 floats
        Standard deviations of layers 0..L, non-negative.
    c : float or sequence of depth floats
        c_1..c_L, non-negative.
    variant : {"exact", "as-published"}
    block_size, n_threads : int, optional
        See :func:`relu_kernels`.

    Returns
    -------
    ndarray of shape (n1, n2)

    Examples
    --------
    >>> round(float(ntkb([[1.0]])[0, 0]), 6)  # 1 + 2 * 1 + 2 * (1 / 2) * 2
    5.0
    """
    return relu_kernels(
        X1,
        X2,
        family="ntkb",
        depth=depth,
        variant=variant,
        block_size=block_size,
        n_threads=n_threads,
        sigma_w=sigma_w,
        sigma_b=sigma_b,
        c=c,
    )[1]


def ntkj(
    X1: ArrayLike,
    X2: ArrayLike | None = None,
    *,
    depth: int = 1,
    beta: float = 1.0,
    variant: str = "exact",
    block_size: int | None = None,
    n_threads: int | None = None,
) -> Array:
    """NTKJ_L: Jacot et al. (2018), Theorem 1, for a ReLU network with biases.

    Σ_0 = Θ_0 = <x, x'> / d + β², Σ_l = E_l + β², Θ_l = Θ_{l-1} Σ̇_l + Σ_l.
    With ``as-published`` the moments of layer l >= 2 come from the script's
    chain K_l = β² + 2 E_l (``docs/theory.md``, departure 2).

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
    X2 : array_like of shape (n2, d), optional
    depth : int
        Hidden layers L >= 1.
    beta : float
        Bias multiplier β >= 0.
    variant : {"exact", "as-published"}
    block_size, n_threads : int, optional
        See :func:`relu_kernels`.

    Returns
    -------
    ndarray of shape (n1, n2)

    Examples
    --------
    >>> round(float(ntkj([[1.0]])[0, 0]), 6)  # 2 * 1/2 + (2/2 + 1)
    3.0
    """
    return relu_kernels(
        X1,
        X2,
        family="ntkj",
        depth=depth,
        variant=variant,
        block_size=block_size,
        n_threads=n_threads,
        beta=beta,
    )[1]


def ntka(
    X1: ArrayLike,
    X2: ArrayLike | None = None,
    *,
    depth: int = 1,
    c_sigma: float = 2.0,
    variant: str = "exact",
    block_size: int | None = None,
    n_threads: int | None = None,
) -> Array:
    """NTKA_L: Arora et al. (2019), the NTK of a bias-free ReLU network.

    Σ_0 = Θ_0 = <x, x'>, Σ_l = c_σ E_l, Θ_l = Θ_{l-1} c_σ Σ̇_l + Σ_l.

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
    X2 : array_like of shape (n2, d), optional
    depth : int
        Hidden layers L >= 1.
    c_sigma : float
        Activation scaling c_σ >= 0.
    variant : {"exact", "as-published"}
    block_size, n_threads : int, optional
        See :func:`relu_kernels`.

    Returns
    -------
    ndarray of shape (n1, n2)

    Examples
    --------
    >>> ntka([[1.0, 0.0], [0.0, 2.0]], depth=2).round(4)
    array([[ 3.    ,  1.3714],
           [ 1.3714, 12.    ]])
    """
    return relu_kernels(
        X1,
        X2,
        family="ntka",
        depth=depth,
        variant=variant,
        block_size=block_size,
        n_threads=n_threads,
        c_sigma=c_sigma,
    )[1]


def nngp(
    X1: ArrayLike,
    X2: ArrayLike | None = None,
    *,
    depth: int = 1,
    family: str = "ntkb",
    variant: str = "exact",
    block_size: int | None = None,
    n_threads: int | None = None,
    **params: Any,
) -> Array:
    """NNGP Σ_L of a ReLU network (Neal 1996, Lee et al. 2017); the paper's GP_L.

    With the default ``family="ntkb"`` this is GP_L = Σ_L of the paper's network
    (equation (16) for L = 1, 2): Σ_l = σ_b,l² + c_l σ_w,l² E_l.

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
    X2 : array_like of shape (n2, d), optional
    depth : int
        Hidden layers L >= 1.
    family : {"ntkb", "ntkj", "ntka"}
        Network whose output covariance is returned.
    variant : {"exact", "as-published"}
    block_size, n_threads : int, optional
        See :func:`relu_kernels`.
    **params
        The family's hyperparameters (see :func:`relu_kernels`).

    Returns
    -------
    ndarray of shape (n1, n2)

    Examples
    --------
    >>> float(nngp([[1.0]])[0, 0])  # 1 + 2 * (1 + 1) / 2
    3.0
    """
    variant = _check_variant(variant)
    if family not in _RELU_FAMILIES:
        raise ValueError(f"family must be one of {_RELU_FAMILIES}; got {family!r}")
    depth = _check_depth(depth)
    full = _relu_params(family, depth, params)
    A, B = _check_pair(X1, X2)
    req = _relu_request("nngp", "nngp", family, depth, variant, A.shape[1], full)
    return _run([req], A, B, _check_block(block_size), _check_threads(n_threads))[0]


def laplace(
    X1: ArrayLike,
    X2: ArrayLike | None = None,
    *,
    a: float = 2.0,
    b: float = 6.0,
    block_size: int | None = None,
    n_threads: int | None = None,
) -> Array:
    """Laplace kernel K1(x, x') = a exp(−|x − x'| / b), the paper's K1.

    Distances come from |x|² + |x'|² − 2 <x, x'>, floored at 0 (O(n1 n2)
    work whatever d); squared distances below COS_SNAP (|x|² + |x'|²) read
    as 0, so identical inputs give exactly ``a``. The distance error is about
    1e-16 (|x|² + |x'|²) / |x − x'|, negligible except for near-duplicates.

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
    X2 : array_like of shape (n2, d), optional
    a : float
        Amplitude, > 0.
    b : float
        Length scale, > 0.
    block_size, n_threads : int, optional
        See :func:`relu_kernels`.

    Returns
    -------
    ndarray of shape (n1, n2)

    Examples
    --------
    >>> laplace([[0.0], [6.0]]).round(6)
    array([[2.      , 0.735759],
           [0.735759, 2.      ]])
    """
    req = _Request(
        "laplace",
        "laplace",
        laplace=(
            _check_scalar("a", a, positive=True),
            _check_scalar("b", b, positive=True),
        ),
    )
    A, B = _check_pair(X1, X2)
    out = _run([req], A, B, _check_block(block_size), _check_threads(n_threads))[0]
    if B is None:
        np.fill_diagonal(out, req.laplace[0])
    return out


# --------------------------------------------------------------------------
# named kernels


class Kernel:
    """A named kernel: call it as ``k(X1, X2=None)`` for an (n1, n2) Gram matrix.

    Build one with :func:`kernel`. Attributes are read-only.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"NTKB2"``, ``"GP1"``, ``"K1"``.
    family : str
        One of ``FAMILIES``.
    depth : int or None
        Hidden layers L (None for the Laplace kernel).
    variant : str
        ``"exact"`` or ``"as-published"``.
    params : dict
        Every effective hyperparameter, defaults included.
    """

    __slots__ = ("_depth", "_family", "_name", "_params", "_variant")

    def __init__(
        self,
        name: str,
        family: str,
        depth: int | None,
        variant: str,
        params: dict[str, ParamValue],
    ) -> None:
        self._name = name
        self._family = family
        self._depth = depth
        self._variant = variant
        self._params = dict(params)

    @property
    def name(self) -> str:
        return self._name

    @property
    def family(self) -> str:
        return self._family

    @property
    def depth(self) -> int | None:
        return self._depth

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def params(self) -> dict[str, ParamValue]:
        return dict(self._params)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self._params.items())
        return f"Kernel({self._name!r}, variant={self._variant!r}{args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kernel):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return (self._name, self._family, self._variant, tuple(self._params.items()))

    def _request(self, d: int) -> _Request:
        if self._family == "laplace":
            return _Request(
                self._name,
                "laplace",
                laplace=(float(self._params["a"]), float(self._params["b"])),  # type: ignore[arg-type]
            )
        assert self._depth is not None
        params = dict(self._params)
        kind = "ntk"
        family = self._family
        if family == "nngp":
            kind, family = "nngp", str(params.pop("family"))
        full = _relu_params(family, self._depth, params)
        return _relu_request(
            self._name, kind, family, self._depth, self._variant, d, full
        )

    def __call__(
        self,
        X1: ArrayLike,
        X2: ArrayLike | None = None,
        *,
        block_size: int | None = None,
        n_threads: int | None = None,
    ) -> Array:
        """Gram matrix of shape (n1, n2); exactly symmetric when X2 is None."""
        return gram_many([self], X1, X2, block_size=block_size, n_threads=n_threads)[
            self._name
        ]


def kernel_names() -> list[str]:
    """The paper's nine kernel models, in the order of its Figure 2.

    Examples
    --------
    >>> kernel_names()
    ['GP1', 'GP2', 'NTKA1', 'NTKA2', 'NTKJ1', 'NTKJ2', 'NTKB1', 'NTKB2', 'K1']
    """
    return list(_PAPER_NAMES)


def _suggest(name: str) -> str:
    """Error message for an unknown kernel name, with the closest valid names."""
    # A trailing depth is kept, so "ntkc3" suggests NTKB3, NTKJ3, NTKA3.
    match = re.match(r"^(.*?)(\d*)$", name.strip())
    stem, digits = (match.group(1), match.group(2)) if match else (name, "")
    candidates = {c.lower(): c for c in FAMILIES}
    if digits and int(digits) >= 1:
        candidates |= {f"{p}{digits}".lower(): f"{p}{digits}" for p in _PREFIX_FAMILY}
    else:
        candidates |= {p.lower(): p + "1" for p in _PREFIX_FAMILY}
        candidates |= {n.lower(): n for n in _PAPER_NAMES}
    key = (stem + digits).lower() if digits else stem.lower()
    close = difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.5)
    names = list(dict.fromkeys(candidates[c] for c in close))
    hint = f"; did you mean {' or '.join(repr(n) for n in names)}?"
    return (
        f"unknown kernel name {name!r}{hint if close else ''} Valid names: a "
        f"family {list(FAMILIES)}, or NTKB<L>, NTKJ<L>, NTKA<L>, GP<L> (alias "
        f"NNGP<L>) for any depth L >= 1, or K1 (Laplace)"
    )


def kernel(name: str, variant: str = "exact", **params: Any) -> Kernel:
    """Look up a kernel by family or model name.

    Parameters
    ----------
    name : str
        Case-insensitive. A family (``"ntkb"``, ``"ntkj"``, ``"ntka"``,
        ``"nngp"``, ``"laplace"``; depth from ``params``, default 1), or a model
        name: ``NTKB<L>``, ``NTKJ<L>``, ``NTKA<L>``, ``GP<L>`` (alias
        ``NNGP<L>``) for any depth L >= 1, or ``K1`` (the Laplace kernel).
    variant : {"exact", "as-published"}
        Formula variant (``docs/theory.md``); the Laplace kernel ignores it.
    **params
        ``depth`` and the family's hyperparameters: ``ntkb``: ``sigma_w``,
        ``sigma_b``, ``c``; ``ntkj``: ``beta``; ``ntka``: ``c_sigma``;
        ``nngp``: ``family`` (network, default ``"ntkb"``) and that network's;
        ``laplace``: ``a``, ``b``.

    Returns
    -------
    Kernel
        Callable ``k(X1, X2=None) -> ndarray of shape (n1, n2)``.

    Raises
    ------
    ValueError
        Unknown name (with the closest valid one), unknown parameter, bad value.

    Examples
    --------
    >>> k = kernel("ntkb2")
    >>> k
    Kernel('NTKB2', variant='exact', sigma_w=1.0, sigma_b=1.0, c=2.0)
    >>> k([[1.0, 0.0]]).shape
    (1, 1)
    >>> kernel("NNGP3", sigma_b=0.5).name
    'GP3'
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str; got {name!r}")
    variant = _check_variant(variant)
    params = dict(params)
    key = name.strip()
    upper = key.upper()

    # Resolve the family and the depth the name carries, if any.
    depth_from_name: int | None = None
    if key.lower() in FAMILIES:
        family = key.lower()
    elif key.lower() == "gp":
        family = "nngp"
    elif upper == "K1":
        family = "laplace"
    else:
        match = _NAME_RE.match(upper)
        if match is None:
            raise ValueError(_suggest(key))
        family = _PREFIX_FAMILY[match.group(1)]
        depth_from_name = int(match.group(2))
        if depth_from_name < 1:
            raise ValueError(f"depth in kernel name {name!r} must be >= 1")

    if family == "laplace":
        if "depth" in params:
            raise ValueError(
                f"the Laplace kernel has no depth; drop depth={params['depth']!r}"
            )
        unknown = sorted(set(params) - {"a", "b"})
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for family 'laplace'; allowed: "
                "['a', 'b']"
            )
        a = _check_scalar("a", params.get("a", _DEFAULTS["a"]), positive=True)
        b = _check_scalar("b", params.get("b", _DEFAULTS["b"]), positive=True)
        return Kernel("K1", "laplace", None, variant, {"a": a, "b": b})

    # Depth: from the name, from params, or 1; the two must agree.
    depth_param = params.pop("depth", None)
    if depth_param is not None:
        depth_param = _check_depth(depth_param)
        if depth_from_name is not None and depth_param != depth_from_name:
            raise ValueError(
                f"depth={depth_param} contradicts the depth {depth_from_name} in "
                f"the name {name!r}"
            )
    depth = depth_from_name or depth_param or 1

    if family == "nngp":
        network = params.pop("family", "ntkb")
        if network not in _RELU_FAMILIES:
            raise ValueError(
                f"family must be one of {_RELU_FAMILIES} for an NNGP kernel; "
                f"got {network!r}"
            )
        full = _relu_params(network, depth, params)
        canon = f"GP{depth}" if network == "ntkb" else f"GP{depth}-{network}"
        return Kernel(canon, "nngp", depth, variant, {"family": network, **_flat(full)})
    full = _relu_params(family, depth, params)
    return Kernel(f"{family.upper()}{depth}", family, depth, variant, _flat(full))


def _flat(full: dict[str, Any]) -> dict[str, ParamValue]:
    """Per-layer tuples whose entries are all equal collapse to one float."""
    out: dict[str, ParamValue] = {}
    for k, v in full.items():
        if isinstance(v, tuple) and len(set(v)) == 1:
            out[k] = float(v[0])
        else:
            out[k] = v
    return out


def gram_many(
    kernels: Iterable[str | Kernel],
    X1: ArrayLike,
    X2: ArrayLike | None = None,
    *,
    variant: str = "exact",
    block_size: int | None = None,
    n_threads: int | None = None,
) -> dict[str, Array]:
    """Several Gram matrices on the same inputs in one pass, sharing work.

    The inner products are computed once per tile, and the arc-cosine moments
    once per distinct covariance chain: GP1, GP2, NTKB1 and NTKB2 share the
    NTKB chain (depth 1 is read off the depth-2 computation), and with the
    default hyperparameters NTKJ's first layer shares NTKB's Σ_0.

    Parameters
    ----------
    kernels : iterable of str or Kernel
        Names as accepted by :func:`kernel` (built with ``variant``) or Kernel
        objects (which keep their own variant).
    X1 : array_like of shape (n1, d)
    X2 : array_like of shape (n2, d), optional
        ``None`` means X1 and gives exactly symmetric matrices.
    variant : {"exact", "as-published"}
        Variant for kernels given by name.
    block_size, n_threads : int, optional
        See :func:`relu_kernels`.

    Returns
    -------
    dict of str to ndarray of shape (n1, n2)
        In the order given, keyed by the name as given for a name and by
        ``Kernel.name`` for a Kernel. Names of the same kernel (``"GP2"``,
        ``"nngp2"``) share one computed array.

    Examples
    --------
    >>> grams = gram_many(kernel_names(), [[1.0, 0.0], [0.0, 1.0]])
    >>> list(grams) == kernel_names(), grams["NTKB1"].shape
    (True, (2, 2))
    """
    variant = _check_variant(variant)
    by_key: dict[str, Kernel] = {}
    for item in kernels:
        if isinstance(item, Kernel):
            key, k = item.name, item
        elif isinstance(item, str):
            key, k = item, kernel(item, variant=variant)
        else:
            raise TypeError(f"kernels must hold names or Kernel objects; got {item!r}")
        if key in by_key and by_key[key] != k:
            raise ValueError(
                f"two different kernels share the key {key!r}: {by_key[key]!r} "
                f"and {k!r}; compute them in separate calls"
            )
        by_key[key] = k
    unique = list(dict.fromkeys(by_key.values()))

    A, B = _check_pair(X1, X2)
    reqs = [k._request(A.shape[1]) for k in unique]
    outs = _run(reqs, A, B, _check_block(block_size), _check_threads(n_threads))
    if B is None:
        for k, out in zip(unique, outs, strict=True):
            if k.family == "laplace":
                np.fill_diagonal(out, float(k.params["a"]))  # type: ignore[arg-type]
    gram = dict(zip(unique, outs, strict=True))
    return {key: gram[k] for key, k in by_key.items()}
