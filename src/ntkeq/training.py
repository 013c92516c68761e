"""Plain SGD for the networks of :mod:`ntkeq.networks`, fast on CPU and GPU.

The published study trained NN1 and NN2 (width 10,000) with Keras: plain SGD,
learning rate 0.002, batch 8, mean squared error without a factor 1/2, the
fitting points reshuffled every epoch and the last 30% of the training rows
held out (``reference/published-script.md``, "Networks"). :func:`train`
reproduces those semantics with a hand-written forward and backward pass:
no autograd, no DataLoader, every buffer allocated once, parameters updated in
place with fused ``addmm_`` calls, and on CUDA one captured graph per epoch.

Notation
--------
=================  ============================================================
code name          symbol and meaning
=================  ============================================================
``W[l]``, ``b[l]``  W_l (out_l, in_l) and b_l (out_l,), l = 0..L
``a[l]``           a_l, weight multiplier (``MLP.weight_multipliers``)
``beta[l]``        beta_l, bias multiplier (``MLP.bias_multipliers``)
``h[l]``           h_l, input of layer l, shape (B, in_l); h_0 = x
``z[l]``           z_l = a_l h_l W_l^T + beta_l b_l, shape (B, out_l)
``g[l]``           dLoss/dz_l, shape (B, out_l)
``B``              batch size (the last batch of an epoch may be smaller)
``lr``             learning rate eta
=================  ============================================================

One SGD step on a batch (x_i, y_i), i = 1..B, with f = z_L[:, 0]:

    Loss  = (1/B) sum_i (f(x_i) - y_i)^2
    g_L   = (2/B) (f - y)
    g_l   = a_{l+1} (g_{l+1} W_{l+1}) * relu'(z_l),       l = L-1..0
    W_l  -= lr a_l g_l^T h_l,      b_l -= lr beta_l sum_i g_l[i]

g_l is computed from W_{l+1} before W_{l+1} is updated, so every parameter
moves by exactly -lr times its gradient at the start of the step.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

__all__ = [
    "CostEstimate",
    "TrainConfig",
    "TrainResult",
    "epoch_batches",
    "estimate_cost",
    "resolve_device",
    "split_validation",
    "train",
]

logger = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
"""Accepted ``TrainConfig.dtype`` strings."""

SMALL_PROBLEM_MACS = 4_000_000
"""Largest per-step matrix product (multiply-adds) trained with one CPU thread;
below it, thread start-up costs more than the parallel work saves."""

FUSED_MIN_ELEMENTS = 4_000_000
"""On CPU, hidden weight matrices with at least this many entries are split
into row shards when the batch is small: each shard runs its forward product
and a fused, cache-blocked backward-and-update pass (one read and one write of
W_l instead of two reads and one write) on one thread of its own."""

FUSED_MAX_BATCH = 32
"""Largest batch for the sharded, fused pass; bigger batches are
compute-bound GEMMs that BLAS threads well."""

FUSED_ROWS = 16
"""Rows of W_l per block of the fused pass (16 x 10,000 float32 = 640 KB, well
inside one core's L2 cache)."""

SHARDS_PER_THREAD = 2
"""Row shards of a big layer per worker thread. Several single-threaded BLAS
calls on a few thousand rows each stream the weight faster than one threaded
call on all of them; the shards are fixed, so results do not depend on which
thread ran which shard."""

SKINNY_D_IN = 64
"""Below this input dimension the first layer is skinny: on CPU it trains as a
contiguous transposed (d_in, width) copy; elsewhere its update is a matrix
product into a buffer plus an ``add_``. Either runs faster than one
``addmm_`` on the (width, d_in) weight."""

LOG_INTERVAL_S = 10.0
"""Minimum seconds between two progress messages at INFO level."""


# ---------------------------------------------------------------------------
# configuration and results


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` runs SGD.

    Parameters
    ----------
    learning_rate : float
        SGD step size eta, finite and > 0 (the paper: 0.002).
    epochs : int
        Passes over the fitting points, >= 1 (the paper: 3000 for NN1, 6000
        for NN2).
    batch_size : int or None
        Points per step, 1..n_fit; ``None`` means full batch.
    validation_split : float
        Fraction in [0, 1) held out from the END of the training arrays, as
        Keras does; see :func:`split_validation`.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA if available).
    dtype : str
        ``"float32"`` or ``"float64"``.
    seed : int
        Drives the per-epoch reshuffling (:func:`epoch_batches`).
    loss_curve_points : int
        Epochs kept in ``TrainResult.loss_curve`` (evenly subsampled), >= 1.
    threads : int or None
        CPU intra-op threads during training; ``None`` picks one thread for
        small problems and all cores for big matrix products.
    """

    learning_rate: float
    epochs: int
    batch_size: int | None
    validation_split: float = 0.0
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 0
    loss_curve_points: int = 300
    threads: int | None = None

    def __post_init__(self) -> None:
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"learning_rate must be a finite number > 0, got {lr!r}")
        if not math.isfinite(float(lr)) or float(lr) <= 0.0:
            raise ValueError(f"learning_rate must be a finite number > 0, got {lr!r}")
        _check_int("epochs", self.epochs, 1)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, 1)
        vs = self.validation_split
        if isinstance(vs, bool) or not isinstance(vs, numbers.Real):
            raise TypeError(f"validation_split must be a number in [0, 1), got {vs!r}")
        if not 0.0 <= float(vs) < 1.0:
            raise ValueError(f"validation_split must be a number in [0, 1), got {vs!r}")
        if self.dtype not in DTYPES:
            raise ValueError(
                f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}"
            )
        _check_device_string(self.device)
        _check_int("seed", self.seed, 0)
        _check_int("loss_curve_points", self.loss_curve_points, 1)
        if self.threads is not None:
            _check_int("threads", self.threads, 1)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    predictions : numpy.ndarray of shape (n_eval,), or None
        Model outputs on ``X_eval`` after training (None without ``X_eval`` or
        after divergence).
    loss_curve : numpy.ndarray, shape (k, 2)
        Rows (epoch, mean training loss during that epoch), k <=
        ``loss_curve_points``, evenly subsampled, always including the last
        epoch run.
    train_loss : float
        Mean squared error on the fitting points after training (NaN after
        divergence).
    val_loss : float or None
        Mean squared error on the held-out rows after training; None when
        nothing is held out.
    wall_time : float
        Seconds spent in :func:`train`.
    steps, epochs_run : int
        SGD steps and epochs completed.
    device, dtype : str
        Where and in what precision training ran.
    status : str
        ``"ok"`` or ``"diverged"``.
    reason : str or None
        Why training stopped early, e.g. ``"non-finite loss at epoch 12 step 3"``.
    """

    predictions: np.ndarray | None
    loss_curve: np.ndarray
    train_loss: float
    val_loss: float | None
    wall_time: float
    steps: int
    epochs_run: int
    device: str
    dtype: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class CostEstimate:
    """Predicted cost of a training run, from timed warm-up steps.

    Attributes
    ----------
    seconds : float
        Predicted wall time of all steps.
    steps : int
        epochs x steps per epoch.
    seconds_per_step : float
        Median of the timed warm-up steps.
    device : str
    description : str
        One line such as ``"NN2 width 10000: 354,000 steps x 150 ms = 14.8 h
        on cpu"``.
    """

    seconds: float
    steps: int
    seconds_per_step: float
    device: str
    description: str

    def __str__(self) -> str:
        return self.description


# ---------------------------------------------------------------------------
# argument checks and small helpers


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_device_string(device: object) -> None:
    allowed = "'cpu', 'cuda', 'cuda:N' or 'auto'"
    if not isinstance(device, str):
        raise TypeError(f"device must be one of {allowed}, got {device!r}")
    if device in ("cpu", "cuda", "auto"):
        return
    head, _, index = device.partition(":")
    if head != "cuda" or not index.isdigit():
        raise ValueError(f"device must be one of {allowed}, got {device!r}")


def resolve_device(device: str) -> torch.device:
    """Turn a device string into a ``torch.device``.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when
        ``torch.cuda.is_available()``, else CPU).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For an unknown string, or CUDA requested on a machine without a
        usable GPU (or without GPU number N).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    _check_device_string(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was requested but torch sees no CUDA GPU; "
            "use device='cpu' or 'auto'"
        )
    dev = torch.device(device)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r} was requested but only "
            f"{torch.cuda.device_count()} CUDA device(s) exist"
        )
    return dev


def split_validation(n: int, validation_split: float) -> tuple[int, int]:
    """Numbers of fitting and held-out rows, Keras style (the last rows held out).

    n_val = round(n * validation_split) and n_fit = n - n_val; rows
    ``[0, n_fit)`` are fit and rows ``[n_fit, n)`` held out. For the paper's
    n = 670 and 0.3 this gives (469, 201), the 469 fitting points the
    published description states. (Keras itself computes the split point as
    ``int(670 * (1 - 0.3))`` in floating point, which is 468.)

    Parameters
    ----------
    n : int
        Training rows, >= 1.
    validation_split : float
        In [0, 1).

    Returns
    -------
    (n_fit, n_val) : tuple of int

    Examples
    --------
    >>> split_validation(670, 0.3)
    (469, 201)
    >>> split_validation(10, 0.0)
    (10, 0)
    """
    n = _check_int("n", n, 1)
    if isinstance(validation_split, bool) or not isinstance(
        validation_split, numbers.Real
    ):
        raise TypeError(
            f"validation_split must be a number in [0, 1), got {validation_split!r}"
        )
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(
            f"validation_split must be a number in [0, 1), got {validation_split!r}"
        )
    n_val = round(n * float(validation_split))
    n_fit = n - n_val
    if n_fit < 1:
        raise ValueError(
            f"validation_split={validation_split!r} leaves no fitting rows out of "
            f"n={n}; use a smaller validation_split"
        )
    return n_fit, n_val


def _epoch_permutation(n_fit: int, epoch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n_fit)


def epoch_batches(
    n_fit: int, batch_size: int | None, epoch: int, seed: int
) -> list[np.ndarray]:
    """The batches of one epoch, as row indices into the fitting points.

    The order is a permutation of ``range(n_fit)`` drawn by
    ``numpy.random.default_rng([seed, epoch])``, so it depends only on the
    seed and the epoch number, never on what ran before. Consecutive slices of
    ``batch_size`` form the batches; the last, partial batch is kept, as in
    Keras.

    Parameters
    ----------
    n_fit : int
        Fitting points, >= 1.
    batch_size : int or None
        1..n_fit; None means one full batch.
    epoch : int
        Epoch number, >= 0.
    seed : int
        >= 0.

    Returns
    -------
    list of numpy.ndarray of int64
        ceil(n_fit / batch_size) index arrays, all of length ``batch_size``
        except possibly the last.

    Examples
    --------
    >>> [len(b) for b in epoch_batches(10, 4, epoch=0, seed=0)]
    [4, 4, 2]
    >>> sorted(np.concatenate(epoch_batches(5, 2, 3, 7)).tolist())
    [0, 1, 2, 3, 4]
    """
    n_fit = _check_int("n_fit", n_fit, 1)
    bs = n_fit if batch_size is None else _check_int("batch_size", batch_size, 1)
    if bs > n_fit:
        raise ValueError(
            f"batch_size must be at most the number of fitting points {n_fit}, "
            f"got {batch_size!r}"
        )
    epoch = _check_int("epoch", epoch, 0)
    seed = _check_int("seed", seed, 0)
    perm = _epoch_permutation(n_fit, epoch, seed).astype(np.int64)
    return [perm[i : i + bs] for i in range(0, n_fit, bs)]


def _as_data(
    name: str, value: object, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach()
    elif isinstance(value, np.ndarray | list | tuple):
        t = torch.as_tensor(np.asarray(value, dtype=np.float64))
    else:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {value!r}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values; clean or drop those rows")
    return t.to(device=device, dtype=dtype).contiguous()


def _check_model(model: Any) -> None:
    for attr in ("weights", "biases", "weight_multipliers", "bias_multipliers"):
        if not hasattr(model, attr):
            raise TypeError(
                "model must be an ntkeq.networks.MLP (weights, biases, "
                f"weight_multipliers, bias_multipliers); got {type(model)!r} "
                f"without {attr!r}"
            )
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model)!r}")
    if len(cast(Any, model).weights) < 1:
        raise ValueError("model must have at least one weight matrix")
    if getattr(model, "width", 1) < 1:
        raise ValueError(f"model width must be >= 1, got {model.width!r}")


def _choose_threads(model: Any, batch: int) -> int:
    biggest = max(int(w.numel()) for w in model.weights) * batch
    return 1 if biggest < SMALL_PROBLEM_MACS else max(1, torch.get_num_threads())


# ---------------------------------------------------------------------------
# the engine: manual forward / backward with preallocated buffers


class _Step:
    """All buffers and views for SGD steps of one batch size."""

    def __init__(
        self,
        params: _Params,
        batch: int,
        lr: float,
    ) -> None:
        dt, dev = params.dtype, params.device
        self.batch = batch
        self.z = [
            torch.empty(batch, w.shape[0], dtype=dt, device=dev) for w in params.W
        ]
        self.h = [torch.empty_like(z) for z in self.z[:-1]]  # relu(z_l), l < L
        self.g = [torch.empty_like(z) for z in self.z]
        self.gh = [torch.empty_like(z) for z in self.z[:-1]]
        self.ones = torch.ones(batch, dtype=dt, device=dev)
        # a skinny first layer updates faster through a separate gradient
        # buffer (unless it is kept transposed, see _Params.W0T)
        w0 = params.W[0]
        skinny = w0.shape[1] < SKINNY_D_IN and params.W0T is None
        self.grad0 = torch.empty_like(w0) if skinny else None
        self.scale = 2.0 / batch
        self.w_alpha = [-lr * a for a in params.a]
        self.b_alpha = [-lr * b for b in params.beta]
        # big layers at small batches run as row shards (see _Shard)
        self.shards: list[list[_Shard] | None] = [None] * len(params.W)
        if params.n_shards:
            for layer in range(len(params.W)):
                if _sharded(layer, params.W, batch, dev):
                    self.shards[layer] = _make_shards(self, params, layer)


class _Shard:
    """Rows ``lo:hi`` of a big layer l >= 1, trained by one thread.

    ``forward`` writes z_l and h_{l+1} = relu(z_l) for these rows;
    ``backward`` adds these rows' part of g_l W_l into its own ``gh``
    buffer while updating them, block by block, so each block of W_l is read
    once from memory, used for dL/dh_l, updated and written back.
    """

    def __init__(self, s: _Step, p: _Params, layer: int, lo: int, hi: int) -> None:
        w = p.W[layer]
        self.x = s.h[layer - 1]
        self.w = w[lo:hi]
        self.b = None if p.b is None else p.b[layer][lo:hi]
        self.a, self.beta = p.a[layer], p.beta[layer]
        self.z = s.z[layer][:, lo:hi]
        self.h = s.h[layer][:, lo:hi]
        self.g = s.g[layer][:, lo:hi]
        self.gh = torch.empty_like(s.gh[layer - 1])
        self.ones = s.ones
        self.w_alpha, self.b_alpha = s.w_alpha[layer], s.b_alpha[layer]
        self.blocks = [
            (w[i : min(i + FUSED_ROWS, hi)], s.g[layer][:, i : min(i + FUSED_ROWS, hi)])
            for i in range(lo, hi, FUSED_ROWS)
        ]

    def forward(self) -> None:
        if self.b is None:
            torch.mm(self.x, self.w.t(), out=self.z)
            if self.a != 1.0:
                self.z.mul_(self.a)
        else:
            torch.addmm(
                self.b, self.x, self.w.t(), beta=self.beta, alpha=self.a, out=self.z
            )
        torch.clamp(self.z, min=0.0, out=self.h)

    def backward(self) -> None:
        self.gh.zero_()
        for w_blk, g_blk in self.blocks:
            self.gh.addmm_(g_blk, w_blk)
            w_blk.addmm_(g_blk.t(), self.x, alpha=self.w_alpha)
        if self.b is not None:
            self.b.addmv_(self.g.t(), self.ones, alpha=self.b_alpha)


def _sharded(
    layer: int, weights: list[torch.Tensor], batch: int, device: torch.device
) -> bool:
    """Whether hidden layer ``layer`` runs as row shards at this batch size."""
    w = weights[layer]
    return (
        0 < layer < len(weights) - 1
        and batch <= FUSED_MAX_BATCH
        and w.numel() >= FUSED_MIN_ELEMENTS
        and device.type == "cpu"
    )


def _make_shards(s: _Step, p: _Params, layer: int) -> list[_Shard]:
    rows = p.W[layer].shape[0]
    n = min(p.n_shards, rows)
    cuts = [round(k * rows / n) for k in range(n + 1)]
    return [_Shard(s, p, layer, lo, hi) for lo, hi in itertools.pairwise(cuts)]


class _Params:
    """The model's parameters as plain tensors, with its multipliers."""

    def __init__(self, model: Any) -> None:
        self.W = [w.data for w in model.weights]
        self.b = [b.data for b in model.biases] if len(model.biases) else None
        self.a = [float(a) for a in model.weight_multipliers]
        self.beta = [float(b) for b in model.bias_multipliers]
        self.dtype = self.W[0].dtype
        self.device = self.W[0].device
        # set by _Engine: row shards per big layer (0: none), and how to run
        # a list of calls (in order on this thread, or on a pool)
        self.n_shards = 0
        self.run: Callable[[list[Callable[[], None]]], None] = _run_here
        # On CPU a skinny first layer (d_in < SKINNY_D_IN) trains as a
        # contiguous (d_in, width) copy: BLAS multiplies x W0T and updates
        # W0T += alpha x^T g markedly faster in that layout than through the
        # (width, d_in) weight. sync() writes it back into the model.
        self.W0T: torch.Tensor | None = None
        if self.device.type == "cpu" and self.W[0].shape[1] < SKINNY_D_IN:
            self.W0T = self.W[0].t().contiguous()

    def sync(self) -> None:
        """Write the working copy of the first layer back into the model."""
        if self.W0T is not None:
            self.W[0].copy_(self.W0T.t())


def _run_here(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()


_threshold_backward = torch.ops.aten.threshold_backward.grad_input


def _forward(p: _Params, s: _Step, x: torch.Tensor) -> torch.Tensor:
    """z_l for every layer into the step buffers; returns z_L, shape (B, 1)."""
    h = x
    last = len(p.W) - 1
    for layer, w in enumerate(p.W):
        shards = s.shards[layer]
        if shards is not None:
            p.run([sh.forward for sh in shards])
            h = s.h[layer]
            continue
        wt = p.W0T if layer == 0 and p.W0T is not None else w.t()
        if p.b is None:
            torch.mm(h, wt, out=s.z[layer])
            if p.a[layer] != 1.0:
                s.z[layer].mul_(p.a[layer])
        elif p.beta[layer] == 1.0:
            # beta=1 takes BLAS's fast path (no separate scaling of the bias)
            torch.addmm(p.b[layer], h, wt, alpha=p.a[layer], out=s.z[layer])
        else:
            torch.addmm(
                p.b[layer],
                h,
                wt,
                beta=p.beta[layer],
                alpha=p.a[layer],
                out=s.z[layer],
            )
        if layer < last:
            h = torch.clamp(s.z[layer], min=0.0, out=s.h[layer])
    return s.z[last]


def _step(
    p: _Params, s: _Step, x: torch.Tensor, y: torch.Tensor, loss_out: torch.Tensor
) -> None:
    """One SGD step on the batch (x, y); writes the batch's sum of squared
    errors into ``loss_out`` (shape (1, 1))."""
    last = len(p.W) - 1
    f = _forward(p, s, x)

    # residual, batch loss and g_L = (2/B) (f - y)
    g_top = s.g[last]
    torch.sub(f, y, out=g_top)
    torch.mm(g_top.t(), g_top, out=loss_out)
    g_top.mul_(s.scale)

    # backward from the top; every g_{l-1} is taken before W_l moves
    for layer in range(last, -1, -1):
        w, g = p.W[layer], s.g[layer]
        h_in = x if layer == 0 else s.h[layer - 1]
        shards = s.shards[layer]
        if layer > 0:
            gh = s.gh[layer - 1]
            if shards is None:
                torch.mm(g, w, out=gh)
                w.addmm_(g.t(), h_in, alpha=s.w_alpha[layer])
            else:
                # each shard updates its rows (weights and biases) and sums its
                # part of g W; the parts are added in a fixed order
                p.run([sh.backward for sh in shards])
                gh.copy_(shards[0].gh)
                for sh in shards[1:]:
                    gh.add_(sh.gh)
            # g_{l-1} = a_l (g_l W_l) * relu'(z_{l-1}), zero where h_l = 0
            _threshold_backward(gh, s.h[layer - 1], 0.0, grad_input=s.g[layer - 1])
            if p.a[layer] != 1.0:
                s.g[layer - 1].mul_(p.a[layer])
        elif p.W0T is not None:
            p.W0T.addmm_(h_in.t(), g, alpha=s.w_alpha[0])
        elif s.grad0 is not None:
            torch.mm(g.t(), h_in, out=s.grad0)
            w.add_(s.grad0, alpha=s.w_alpha[0])
        else:
            w.addmm_(g.t(), h_in, alpha=s.w_alpha[layer])
        if p.b is not None and shards is None:
            p.b[layer].addmv_(g.t(), s.ones, alpha=s.b_alpha[layer])


class _Engine:
    """SGD over a fixed set of fitting points, one epoch at a time."""

    def __init__(
        self,
        model: Any,
        X_fit: torch.Tensor,
        y_fit: torch.Tensor,
        lr: float,
        batch_size: int,
        n_shards: int = 0,
        run: Callable[[list[Callable[[], None]]], None] = _run_here,
    ) -> None:
        self.p = _Params(model)
        self.p.n_shards, self.p.run = n_shards, run
        n_fit = X_fit.shape[0]
        self.n_fit = n_fit
        self.X = X_fit
        self.y = y_fit.reshape(-1, 1)
        self.Xp = torch.empty_like(self.X)
        self.yp = torch.empty_like(self.y)
        bounds = [(i, min(i + batch_size, n_fit)) for i in range(0, n_fit, batch_size)]
        sizes = {e - i for i, e in bounds}
        steps = {b: _Step(self.p, b, lr) for b in sizes}
        self.loss = torch.zeros(len(bounds), 1, dtype=X_fit.dtype, device=X_fit.device)
        self.plan = [
            (steps[e - i], self.Xp[i:e], self.yp[i:e], self.loss[k : k + 1])
            for k, (i, e) in enumerate(bounds)
        ]
        self.perm = torch.empty(n_fit, dtype=torch.int64, device=X_fit.device)
        self.graph: Any = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.plan)

    def shuffle(self, order: np.ndarray) -> None:
        """Gather the fitting points into the epoch's order."""
        self.perm.copy_(torch.from_numpy(order))
        torch.index_select(self.X, 0, self.perm, out=self.Xp)
        torch.index_select(self.y, 0, self.perm, out=self.yp)

    def _body(self) -> None:
        for s, xb, yb, lo in self.plan:
            _step(self.p, s, xb, yb, lo)

    def run_epoch(self, check_each_step: bool) -> int | None:
        """Run all steps of the current order; returns the first step whose
        loss is non-finite, or None."""
        if self.graph is not None:
            self.graph.replay()
        elif check_each_step:
            for k, (s, xb, yb, lo) in enumerate(self.plan):
                _step(self.p, s, xb, yb, lo)
                if not math.isfinite(float(lo)):
                    return k
            return None
        else:
            self._body()
        finite = torch.isfinite(self.loss)
        if bool(finite.all()):
            return None
        return int((~finite).nonzero()[0, 0])

    def capture(self) -> None:
        """Record one epoch as a CUDA graph (after an eager epoch warmed up)."""
        try:
            graph = torch.cuda.CUDAGraph()
            stream = torch.cuda.Stream(device=self.X.device)
            stream.wait_stream(torch.cuda.current_stream(self.X.device))
            with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
                self._body()
            torch.cuda.current_stream(self.X.device).wait_stream(stream)
            self.graph = graph
            logger.debug("captured one epoch as a CUDA graph")
        except RuntimeError as err:  # pragma: no cover - depends on the GPU stack
            logger.info("CUDA graph capture failed (%s); running eagerly", err)
            self.graph = None

    def epoch_loss(self) -> float:
        """Mean over the fitting points of the squared errors seen this epoch."""
        return float(self.loss.sum()) / self.n_fit


@contextlib.contextmanager
def _engine(
    model: Any,
    X_fit: torch.Tensor,
    y_fit: torch.Tensor,
    lr: float,
    batch_size: int,
    threads: int,
) -> Iterator[_Engine]:
    """An :class:`_Engine` running on ``threads`` CPU threads, under no_grad.

    Without sharded layers the threads are PyTorch's intra-op threads. With
    them, PyTorch runs single-threaded and a pool of ``threads`` workers runs
    the shards. On exit the first layer is written back into the model, the
    pool stops and the previous thread count is restored.
    """
    weights = [w.data for w in model.weights]
    device = weights[0].device
    sharded = any(
        _sharded(layer, weights, batch_size, device) for layer in range(len(weights))
    )
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1 if sharded else threads)
    pool = None
    run: Callable[[list[Callable[[], None]]], None] = _run_here
    if sharded and threads > 1:
        pool = ThreadPoolExecutor(
            threads, "ntkeq-train", initializer=torch.set_num_threads, initargs=(1,)
        )

        def run(calls: list[Callable[[], None]]) -> None:
            for future in [pool.submit(call) for call in calls]:
                future.result()

    try:
        with torch.no_grad():
            engine = _Engine(
                model,
                X_fit,
                y_fit,
                lr,
                batch_size,
                n_shards=threads * SHARDS_PER_THREAD if sharded else 0,
                run=run,
            )
            try:
                yield engine
            finally:
                engine.p.sync()
    finally:
        if pool is not None:
            pool.shutdown()
        torch.set_num_threads(old_threads)


def _mse(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        f = model(X)
    return float(torch.mean((f - y.reshape(-1)) ** 2))


def _subsample_curve(curve: list[tuple[float, float]], points: int) -> np.ndarray:
    if not curve:
        return np.zeros((0, 2))
    arr = np.asarray(curve, dtype=np.float64)
    if len(arr) <= points:
        return arr
    keep = np.unique(np.round(np.linspace(0, len(arr) - 1, points)).astype(int))
    return arr[keep]


# ---------------------------------------------------------------------------
# public entry points


def train(
    model: torch.nn.Module,
    X_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    config: TrainConfig,
    X_eval: np.ndarray | torch.Tensor | None = None,
    callback: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place with plain minibatch SGD on the mean squared error.

    Implements the training of the paper's NN1 and NN2 (Section 4, "NN1 and
    NN2"; ``reference/published-script.md``, "Networks"): loss
    (1/B) sum (f - y)^2 with no factor 1/2, theta -= lr dLoss/dtheta for every
    parameter, the fitting points reshuffled each epoch by
    :func:`epoch_batches`, the last partial batch kept, and the last
    ``validation_split`` of the rows held out (:func:`split_validation`).
    The model is moved to the configured device and dtype in place.

    Parameters
    ----------
    model : ntkeq.networks.MLP
        Trained in place; copy it first to keep the initial parameters.
    X_train : array or tensor, shape (n, d_in)
    y_train : array or tensor, shape (n,) or (n, 1)
    config : TrainConfig
    X_eval : array or tensor, shape (n_eval, d_in), optional
        Inputs whose outputs after training are returned.
    callback : callable, optional
        Called as ``callback(epoch_done, epochs, loss)`` after every epoch.
        The model's parameters are complete again only when ``train``
        returns (on CPU a skinny first layer trains as a transposed copy).

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import numpy as np
    >>> from ntkeq.networks import MLP
    >>> X = np.random.default_rng(0).normal(size=(20, 3))
    >>> y = X[:, 0]
    >>> net = MLP(3, depth=1, width=64, parameterization="ntkj", seed=0)
    >>> cfg = TrainConfig(learning_rate=0.05, epochs=50, batch_size=5, device="cpu")
    >>> res = train(net, X, y, cfg, X_eval=X[:2])
    >>> res.status, res.steps, res.predictions.shape
    ('ok', 200, (2,))
    >>> res.train_loss < 0.1 * float(np.mean(y**2))
    True
    """
    start = time.perf_counter()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config)!r}")
    _check_model(model)
    device = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    d_in = int(cast(Any, model).weights[0].shape[1])

    # validate and place the data
    X = _as_data("X_train", X_train, dtype, device)
    y = _as_data("y_train", y_train, dtype, device)
    if X.ndim != 2 or X.shape[1] != d_in:
        raise ValueError(
            f"X_train must have shape (n, {d_in}) to match the model's d_in, "
            f"got {tuple(X.shape)}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0].contiguous()
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y_train must have shape ({X.shape[0]},) or ({X.shape[0]}, 1), "
            f"got {tuple(y.shape)}"
        )
    Xe = None
    if X_eval is not None:
        Xe = _as_data("X_eval", X_eval, dtype, device)
        if Xe.ndim != 2 or Xe.shape[1] != d_in:
            raise ValueError(
                f"X_eval must have shape (n_eval, {d_in}), got {tuple(Xe.shape)}"
            )
    n_fit, n_val = split_validation(X.shape[0], config.validation_split)
    batch = n_fit if config.batch_size is None else config.batch_size
    if batch > n_fit:
        raise ValueError(
            f"batch_size must be at most the number of fitting points {n_fit} "
            f"(n={X.shape[0]}, validation_split={config.validation_split}), "
            f"got {config.batch_size!r}"
        )
    model.to(device=device, dtype=dtype)

    # train under the chosen thread count
    threads = config.threads or _choose_threads(model, batch)
    status, reason, bad = "ok", None, None
    curve: list[tuple[float, float]] = []
    epochs_run = 0
    lr = float(config.learning_rate)
    with _engine(model, X[:n_fit], y[:n_fit], lr, batch, threads) as engine:
        logger.info(
            "training %d epochs x %d steps (batch %d, %d fitting points) on "
            "%s %s with %d thread(s)",
            config.epochs,
            engine.steps_per_epoch,
            batch,
            n_fit,
            device,
            config.dtype,
            threads,
        )
        check_each_step = device.type == "cpu"
        last_log = time.perf_counter()
        for epoch in range(config.epochs):
            engine.shuffle(_epoch_permutation(n_fit, epoch, config.seed))
            bad = engine.run_epoch(check_each_step)
            if bad is not None:
                status = "diverged"
                reason = f"non-finite loss at epoch {epoch} step {bad}"
                logger.info("training stopped: %s", reason)
                break
            epochs_run = epoch + 1
            if device.type == "cuda" and epoch == 0 and config.epochs > 1:
                engine.capture()
            loss = engine.epoch_loss()
            curve.append((float(epochs_run), loss))
            if callback is not None:
                callback(epochs_run, config.epochs, loss)
            now = time.perf_counter()
            if now - last_log >= LOG_INTERVAL_S:
                last_log = now
                logger.info("epoch %d/%d: loss %.6g", epochs_run, config.epochs, loss)

    # evaluate
    steps = epochs_run * engine.steps_per_epoch + (0 if bad is None else bad + 1)
    if status == "ok":
        train_loss = _mse(model, X[:n_fit], y[:n_fit])
        val_loss = _mse(model, X[n_fit:], y[n_fit:]) if n_val else None
        predictions = None
        if Xe is not None:
            with torch.no_grad():
                predictions = model(Xe).double().cpu().numpy()
    else:
        train_loss, predictions = math.nan, None
        val_loss = math.nan if n_val else None
    return TrainResult(
        predictions=predictions,
        loss_curve=_subsample_curve(curve, config.loss_curve_points),
        train_loss=train_loss,
        val_loss=val_loss,
        wall_time=time.perf_counter() - start,
        steps=steps,
        epochs_run=epochs_run,
        device=str(device),
        dtype=config.dtype,
        status=status,
        reason=reason,
    )


def estimate_cost(
    model_or_spec: torch.nn.Module | Mapping[str, Any],
    n_train: int,
    config: TrainConfig,
    *,
    warmup_steps: int = 200,
) -> CostEstimate:
    """Predict the wall time of ``train`` by timing real steps on a copy.

    Builds a fresh copy of the network (``copy.deepcopy`` of a model, or
    ``ntkeq.networks.MLP(**spec)`` for a mapping of its arguments), runs
    ``warmup_steps`` SGD steps on random data of the right shape with the
    configured device, dtype, batch and threads, and multiplies the median
    step time of the second half by epochs x ceil(n_fit / batch).

    Parameters
    ----------
    model_or_spec : MLP or mapping
        A network, or keyword arguments of ``ntkeq.networks.MLP`` (``d_in``,
        ``depth``, ``width``, ``parameterization``, ...).
    n_train : int
        Training rows before the validation split, >= 1.
    config : TrainConfig
    warmup_steps : int
        Steps to time, >= 2.

    Returns
    -------
    CostEstimate
    """
    n_train = _check_int("n_train", n_train, 1)
    warmup_steps = _check_int("warmup_steps", warmup_steps, 2)
    if isinstance(model_or_spec, Mapping):
        from ntkeq.networks import MLP

        model: Any = MLP(**dict(model_or_spec))
    elif isinstance(model_or_spec, torch.nn.Module):
        _check_model(model_or_spec)
        model = copy.deepcopy(model_or_spec)
    else:
        raise TypeError(
            "model_or_spec must be an MLP or a mapping of MLP arguments, "
            f"got {type(model_or_spec)!r}"
        )
    device = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    n_fit, _ = split_validation(n_train, config.validation_split)
    batch = n_fit if config.batch_size is None else config.batch_size
    if batch > n_fit:
        raise ValueError(
            f"batch_size must be at most the number of fitting points {n_fit}, "
            f"got {config.batch_size!r}"
        )
    model.to(device=device, dtype=dtype)
    d_in = int(model.weights[0].shape[1])
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n_fit, d_in, generator=gen, dtype=dtype).to(device)
    y = torch.randn(n_fit, generator=gen, dtype=dtype).to(device)

    # time individual steps, cycling through epochs of the real batch plan
    threads = config.threads or _choose_threads(model, batch)
    times: list[float] = []
    lr = float(config.learning_rate)
    with _engine(model, X, y, lr, batch, threads) as engine:
        epoch = 0
        while len(times) < warmup_steps:
            engine.shuffle(_epoch_permutation(n_fit, epoch, config.seed))
            for s, xb, yb, lo in engine.plan:
                if len(times) >= warmup_steps:
                    break
                t0 = time.perf_counter()
                _step(engine.p, s, xb, yb, lo)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - t0)
            epoch += 1

    per_step = float(np.median(times[len(times) // 2 :]))
    steps = config.epochs * engine.steps_per_epoch
    seconds = per_step * steps
    name = f"NN{len(model.weights) - 1} width {int(model.weights[0].shape[0])}"
    text = (
        f"{name}: {steps:,} steps x {_fmt_seconds(per_step)} = "
        f"{_fmt_seconds(seconds)} on {device}"
    )
    return CostEstimate(
        seconds=seconds,
        steps=steps,
        seconds_per_step=per_step,
        device=str(device),
        description=text,
    )


def _fmt_seconds(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1.0:
        return f"{t * 1e3:.3g} ms"
    if t < 120.0:
        return f"{t:.3g} s"
    if t < 7200.0:
        return f"{t / 60:.3g} min"
    if t < 172800.0:
        return f"{t / 3600:.3g} h"
    return f"{t / 86400:.3g} days"
