"""Direct measures of the network-kernel equivalence.

A test error against the truth cannot tell a network that left the kernel
regime from one that was not trained long enough, or from the random function
it started as. The measures here compare a trained network with its kernel
directly:

* how far the parameters moved (lazy training, Jacot et al. 2018, Section 4;
  the paper's assumption (iv) in Section 2.3),
* how far the empirical tangent kernel moved (the paper's equation (4)
  evaluated before and after training),
* how far apart two models' test predictions are,
* the kernel's own prediction after the same finite training the network
  received (linearized gradient descent, Jacot et al. 2018, Section 5),
  whose infinite-time limit is the paper's predictor, its equation (5),
* the power law with which a measure shrinks as the width grows.

Notation
--------
============================  ===============  ==================================
code name                     symbol           meaning
============================  ===============  ==================================
``initial`` / ``model``       θ_0, θ_T         all parameters before / after
                                               training, as the optimizer sees
                                               them (before any multiplier)
``ntk_initial``, ``theta_0``  Θ_0              empirical NTK at initialization
``theta_T``                   Θ_T              empirical NTK after training
``gram_train``                Θ(X, X)          (n, n) kernel Gram on the points
                                               actually fit
``gram_test_train``           Θ(X*, X)         (m, n) test-by-train kernel
``y_train``                   y                (n,) targets actually fit
``learning_rate``             η                SGD step size
``epochs``                    E                passes over the n points
``batch_size``                B                points per step
``steps``                     S                SGD steps, S = E ceil(n / B)
``f0_train``, ``f0_test``     f_0              network's function at
                                               initialization
============================  ===============  ==================================

The training loss is the mean squared error over a batch with no factor 1/2,
as in the published script: L_B = (1/B) Σ_{i∈B} (f(x_i) − y_i)².
"""

from __future__ import annotations

import copy
import logging
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "FiniteTimePrediction",
    "LazyTracker",
    "PowerLawFit",
    "TrainSchedule",
    "agreement_table",
    "finite_time_ntk_prediction",
    "fit_power_law",
    "lazy_training_measures",
    "ntk_subsample",
    "plot_lazy_measures",
    "plot_loss_curves",
    "plot_width_sweep",
    "prediction_distance",
    "relative_ntk_change",
    "relative_parameter_change",
    "relative_parameter_change_by_layer",
    "snapshot_parameters",
]

logger = logging.getLogger(__name__)

NtkFunction = Callable[..., Any]
Parameters = Sequence[torch.Tensor]

_MLP_PARAMETER = re.compile(r"^(weights|biases)\.(\d+)$")


# --------------------------------------------------------------------------
# Parameter change
# --------------------------------------------------------------------------


def snapshot_parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    """Detached copies of every parameter of ``model``, in ``parameters()`` order.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; take the snapshot before training.

    Returns
    -------
    list of torch.Tensor
        One clone per parameter, same shape, dtype and device, no autograd
        history. Later training of ``model`` does not change them.

    Examples
    --------
    >>> layer = torch.nn.Linear(3, 2)
    >>> snap = snapshot_parameters(layer)
    >>> [tuple(t.shape) for t in snap]
    [(2, 3), (2,)]
    >>> snap[0].requires_grad
    False
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [p.detach().clone() for p in model.parameters()]


def _current_parameters(model: torch.nn.Module | Parameters) -> list[torch.Tensor]:
    if isinstance(model, torch.nn.Module):
        return [p.detach() for p in model.parameters()]
    if isinstance(model, Sequence) and all(isinstance(t, torch.Tensor) for t in model):
        return [t.detach() for t in model]
    raise TypeError(
        "model must be a torch.nn.Module or a sequence of torch.Tensor, "
        f"got {type(model).__name__}"
    )


def _squared_norms(
    initial: Parameters, model: torch.nn.Module | Parameters
) -> tuple[list[float], list[float]]:
    """Per tensor: (||θ_T − θ_0||², ||θ_0||²), accumulated in float64."""
    current = _current_parameters(model)
    if len(initial) != len(current):
        raise ValueError(
            f"initial has {len(initial)} tensors but model has {len(current)} "
            "parameters; take the snapshot from the same model"
        )
    diffs: list[float] = []
    norms: list[float] = []
    for i, (p0, p) in enumerate(zip(initial, current, strict=True)):
        if p0.shape != p.shape:
            raise ValueError(
                f"parameter {i} has shape {tuple(p.shape)} but its snapshot has "
                f"shape {tuple(p0.shape)}; take the snapshot from the same model"
            )
        start = p0.detach().to(device=p.device, dtype=torch.float64)
        diffs.append(float(torch.sum((p.to(torch.float64) - start) ** 2)))
        norms.append(float(torch.sum(start**2)))
    return diffs, norms


def relative_parameter_change(
    initial: Parameters, model: torch.nn.Module | Parameters
) -> float:
    """Relative distance travelled by all parameters, ||θ_T − θ_0|| / ||θ_0||.

    The lazy-training assumption (the paper's Section 2.3, (iv); Jacot et al.
    2018, Section 4) is that this goes to zero as the width grows; in the NTK
    parameterizations it shrinks like width^(-1/2).

    Parameters
    ----------
    initial : sequence of torch.Tensor
        Snapshot from :func:`snapshot_parameters` taken before training.
    model : torch.nn.Module or sequence of torch.Tensor
        The trained model (or its parameters in the same order).

    Returns
    -------
    float
        The Euclidean norm over every parameter entry, accumulated in float64.
        The parameters are the raw tensors the optimizer updates, before any
        parameterization multiplier.

    Examples
    --------
    >>> theta0 = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]
    >>> relative_parameter_change(theta0, [torch.tensor([3.0, 1.0]), theta0[1]])
    0.2
    """
    diffs, norms = _squared_norms(initial, model)
    total = sum(norms)
    if total == 0.0:
        raise ValueError(
            "initial parameters are all zero, so a relative change is undefined; "
            "use a snapshot of a randomly initialized model"
        )
    return math.sqrt(sum(diffs) / total)


def _layer_groups(model: torch.nn.Module | Parameters) -> list[list[int]]:
    """Indices into ``parameters()`` order, one list per layer.

    An ``ntkeq.networks.MLP`` stores ``weights.l`` and ``biases.l``; layer l
    groups those two. Any other module is grouped by the submodule that owns
    each parameter (a ``torch.nn.Linear`` is one layer); a bare sequence of
    tensors has one layer per tensor.
    """
    if not isinstance(model, torch.nn.Module):
        return [[i] for i in range(len(model))]
    names = [name for name, _ in model.named_parameters()]
    matches = [_MLP_PARAMETER.match(name) for name in names]
    if names and all(m is not None for m in matches):
        by_index: dict[int, list[int]] = {}
        for i, m in enumerate(matches):
            assert m is not None
            by_index.setdefault(int(m.group(2)), []).append(i)
        return [by_index[k] for k in sorted(by_index)]
    by_owner: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_owner.setdefault(name.rpartition(".")[0], []).append(i)
    return list(by_owner.values())


def relative_parameter_change_by_layer(
    initial: Parameters, model: torch.nn.Module | Parameters
) -> list[float]:
    """Relative parameter change of each layer, input layer first.

    Layer l of an ``ntkeq.networks.MLP`` is its weight W_l with its bias b_l
    (the theory's layer 0..L); for other modules each submodule that owns
    parameters is a layer; for a bare sequence of tensors each tensor is.

    Parameters
    ----------
    initial : sequence of torch.Tensor
        Snapshot from :func:`snapshot_parameters`.
    model : torch.nn.Module or sequence of torch.Tensor
        The trained model.

    Returns
    -------
    list of float
        ||θ_T,l − θ_0,l|| / ||θ_0,l|| per layer; ``nan`` (with a warning) for a
        layer whose initial parameters are all zero.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    >>> snap = snapshot_parameters(net)
    >>> relative_parameter_change_by_layer(snap, net)
    [0.0, 0.0]
    """
    diffs, norms = _squared_norms(initial, model)
    changes: list[float] = []
    for layer, group in enumerate(_layer_groups(model)):
        norm = sum(norms[i] for i in group)
        if norm == 0.0:
            warnings.warn(
                f"layer {layer} starts with all-zero parameters, so its relative "
                "change is undefined (nan); read its absolute change instead",
                stacklevel=2,
            )
            changes.append(math.nan)
            continue
        changes.append(math.sqrt(sum(diffs[i] for i in group) / norm))
    return changes


# --------------------------------------------------------------------------
# Tangent kernel change
# --------------------------------------------------------------------------


def ntk_subsample(X_train: ArrayLike, size: int, seed: int = 0) -> NDArray[np.int64]:
    """Row indices of a fixed random subsample for NTK-change measurements.

    Parameters
    ----------
    X_train : array_like, shape (n, d)
        Training inputs (only the number of rows is used).
    size : int
        Rows wanted; ``min(size, n)`` rows are returned.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same rows.

    Returns
    -------
    ndarray of int64, shape (min(size, n),)
        Distinct row indices in increasing order.

    Examples
    --------
    >>> idx = ntk_subsample(np.zeros((10, 3)), 4, seed=1)
    >>> len(idx), len(set(idx.tolist())), bool(np.all(np.diff(idx) > 0))
    (4, 4, True)
    """
    n = int(np.shape(X_train)[0]) if np.ndim(X_train) >= 1 else 0
    if n == 0:
        raise ValueError("X_train must have at least one row")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n, size=min(int(size), n), replace=False)
    return np.sort(chosen).astype(np.int64)


def relative_ntk_change(theta_0: ArrayLike, theta_T: ArrayLike) -> float:
    """Relative change of the empirical NTK, ||Θ_T − Θ_0||_F / ||Θ_0||_F.

    Θ is the paper's equation (4), ⟨∂f(x)/∂θ, ∂f(x')/∂θ⟩, on a fixed set of
    inputs before (Θ_0) and after (Θ_T) training. The NTK theorem (Jacot et
    al. 2018, Theorem 2) says it stays constant in the infinite-width limit.

    Parameters
    ----------
    theta_0, theta_T : array_like, shape (k, k')
        Gram matrices on the same inputs.

    Returns
    -------
    float
        Computed in float64. Invariant to rescaling both matrices together;
        ``relative_ntk_change(K, c K) == |c − 1|``.

    Examples
    --------
    >>> K = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> relative_ntk_change(K, 1.5 * K)
    0.5
    """
    a = np.asarray(theta_0, dtype=np.float64)
    b = np.asarray(theta_T, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            "theta_0 and theta_T must be 2-D arrays of one shape, got shapes "
            f"{a.shape} and {b.shape}"
        )
    norm = float(np.linalg.norm(a))
    if norm == 0.0:
        raise ValueError("theta_0 is the zero matrix; a relative change is undefined")
    return float(np.linalg.norm(b - a)) / norm


def _model_tensor(model: torch.nn.Module, X: ArrayLike | torch.Tensor) -> torch.Tensor:
    first = next(model.parameters(), None)
    dtype = first.dtype if first is not None else torch.float64
    device = first.device if first is not None else torch.device("cpu")
    if isinstance(X, torch.Tensor):
        return X.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(X), dtype=dtype, device=device)


def _jacobian_rows(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """(k, P) float64 matrix of ∂f(x_i)/∂θ over all trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(X.shape[0]):
        out = model(X[i : i + 1]).reshape(-1)
        if out.numel() != 1:
            raise ValueError(
                f"model must map (k, d) inputs to k scalar outputs; one row gave "
                f"{out.numel()} outputs"
            )
        grads = torch.autograd.grad(out[0], params, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, params, strict=True)
                ]
            ).to(torch.float64)
        )
    return torch.stack(rows)


def _generic_empirical_ntk(
    model: torch.nn.Module,
    X1: ArrayLike | torch.Tensor,
    X2: ArrayLike | torch.Tensor | None = None,
) -> NDArray[np.float64]:
    """Empirical NTK (the paper's equation (4)) of any scalar-output module.

    Builds the full (k, P) Jacobian with one backward pass per input, so it
    needs k·P·8 bytes; fine for the subsample sizes used here, not for a
    width-10,000 multi-layer network (``ntkeq.networks.empirical_ntk`` uses
    the MLP's structure instead).
    """
    j1 = _jacobian_rows(model, _model_tensor(model, X1))
    j2 = j1 if X2 is None else _jacobian_rows(model, _model_tensor(model, X2))
    return (j1 @ j2.T).cpu().numpy()


def _resolve_ntk_fn(model: torch.nn.Module, ntk_fn: NtkFunction | None) -> NtkFunction:
    if ntk_fn is not None:
        return ntk_fn
    from ntkeq.networks import MLP, empirical_ntk

    return empirical_ntk if isinstance(model, MLP) else _generic_empirical_ntk


def _ntk(
    model: torch.nn.Module, X: ArrayLike | torch.Tensor, ntk_fn: NtkFunction | None
) -> NDArray[np.float64]:
    fn = _resolve_ntk_fn(model, ntk_fn)
    gram = fn(model, X)
    if isinstance(gram, torch.Tensor):
        gram = gram.detach().cpu().numpy()
    return np.asarray(gram, dtype=np.float64)


def lazy_training_measures(
    initial_parameters: Parameters,
    model: torch.nn.Module,
    X_sub: ArrayLike | torch.Tensor,
    *,
    ntk_initial: ArrayLike | None = None,
    ntk_fn: NtkFunction | None = None,
) -> dict[str, Any]:
    """Parameter and NTK change of a trained model, in one call.

    Parameters
    ----------
    initial_parameters : sequence of torch.Tensor
        :func:`snapshot_parameters` of ``model`` before training.
    model : torch.nn.Module
        The trained model, mapping (k, d) to (k,).
    X_sub : array_like, shape (k, d)
        Fixed inputs for the NTK (see :func:`ntk_subsample`).
    ntk_initial : array_like, shape (k, k), optional
        Θ_0 on ``X_sub``. When omitted it is recomputed on a deep copy of
        ``model`` holding ``initial_parameters`` (one extra copy of the model
        in memory); :class:`LazyTracker` computes it before training instead.
    ntk_fn : callable, optional
        ``ntk_fn(model, X) -> (k, k)`` empirical NTK. Default:
        ``ntkeq.networks.empirical_ntk`` for an ntkeq MLP, otherwise a
        generic full-Jacobian computation.

    Returns
    -------
    dict
        ``parameter_change`` (float), ``parameter_change_by_layer``
        (list of float, input layer first) and ``ntk_change`` (float), as
        defined by :func:`relative_parameter_change`,
        :func:`relative_parameter_change_by_layer` and
        :func:`relative_ntk_change`.
    """
    measures: dict[str, Any] = {
        "parameter_change": relative_parameter_change(initial_parameters, model),
        "parameter_change_by_layer": relative_parameter_change_by_layer(
            initial_parameters, model
        ),
    }
    if ntk_initial is None:
        start = copy.deepcopy(model)
        with torch.no_grad():
            for p, p0 in zip(start.parameters(), initial_parameters, strict=True):
                p.copy_(p0)
        theta_0 = _ntk(start, X_sub, ntk_fn)
        del start
    else:
        theta_0 = np.asarray(ntk_initial, dtype=np.float64)
    theta_T = _ntk(model, X_sub, ntk_fn)
    measures["ntk_change"] = relative_ntk_change(theta_0, theta_T)
    logger.debug("lazy-training measures: %s", measures)
    return measures


class LazyTracker:
    """Record a model's parameters and NTK before training, compare after.

    Parameters
    ----------
    model : torch.nn.Module
        The model, untrained; mapping (k, d) to (k,).
    X_sub : array_like, shape (k, d)
        Fixed inputs on which Θ_0 is computed now and Θ_T later.
    ntk_fn : callable, optional
        ``ntk_fn(model, X) -> (k, k)``; see :func:`lazy_training_measures`.

    Attributes
    ----------
    initial_parameters : list of torch.Tensor
        Snapshot of the parameters at construction.
    ntk_initial : ndarray, shape (k, k)
        Θ_0 on ``X_sub``, float64.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 1), torch.nn.Flatten(0))
    >>> tracker = LazyTracker(net, np.eye(2))
    >>> m = tracker.measure(net)
    >>> m["parameter_change"], m["ntk_change"]
    (0.0, 0.0)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        X_sub: ArrayLike | torch.Tensor,
        *,
        ntk_fn: NtkFunction | None = None,
    ) -> None:
        self.X_sub = X_sub
        self.ntk_fn = ntk_fn
        self.initial_parameters = snapshot_parameters(model)
        self.ntk_initial = _ntk(model, X_sub, ntk_fn)

    def measure(self, model: torch.nn.Module) -> dict[str, Any]:
        """Measures of the trained ``model``; see :func:`lazy_training_measures`.

        Returns
        -------
        dict
            ``parameter_change``, ``parameter_change_by_layer``, ``ntk_change``.
        """
        return lazy_training_measures(
            self.initial_parameters,
            model,
            self.X_sub,
            ntk_initial=self.ntk_initial,
            ntk_fn=self.ntk_fn,
        )


# --------------------------------------------------------------------------
# Agreement between models
# --------------------------------------------------------------------------


def _as_vector(values: ArrayLike, name: str) -> NDArray[np.float64]:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1), got {array.shape}")
    return array


def prediction_distance(pred_a: ArrayLike, pred_b: ArrayLike) -> float:
    """Root mean squared distance between two models' predictions.

    Parameters
    ----------
    pred_a, pred_b : array_like, shape (m,) or (m, 1)
        Predictions on the same m test points.

    Returns
    -------
    float
        sqrt(mean((pred_a − pred_b)²)), the paper's RMSE with one model in the
        place of the truth.

    Examples
    --------
    >>> prediction_distance([0.0, 0.0], [3.0, 4.0]) ** 2
    12.5
    """
    a = _as_vector(pred_a, "pred_a")
    b = _as_vector(pred_b, "pred_b")
    if a.shape != b.shape:
        raise ValueError(
            f"pred_a and pred_b must have one shape, got {a.shape} and {b.shape}"
        )
    if a.size == 0:
        raise ValueError("pred_a and pred_b are empty")
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _is_network(name: str) -> bool:
    return name.upper().startswith("NN")


def agreement_table(
    predictions: Sequence[Mapping[str, ArrayLike]],
    *,
    networks: Sequence[str] | None = None,
    kernels: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Distance between each network and each kernel, summarized over trials.

    Parameters
    ----------
    predictions : sequence of mappings
        One mapping per trial, model name -> test predictions of shape (m,).
        A model absent from a trial (or mapped to ``None``) is skipped there.
    networks, kernels : sequence of str, optional
        Which names are networks and which are kernels. By default names
        starting with ``NN`` are networks and every other name is a kernel.

    Returns
    -------
    list of dict
        One row per (network, kernel) pair with at least one trial, in the
        order the names first appear: ``network``, ``kernel``, ``trials``,
        ``mean_distance`` (mean of :func:`prediction_distance`), ``se``
        (population standard deviation over sqrt(trials), the paper's
        convention) and ``se_sample`` (ddof 1; ``nan`` for one trial).
        A non-finite distance (a diverged network) is left out of its row with
        a warning.

    Examples
    --------
    >>> trials = [{"NN1": [0.0, 0.0], "GP1": [1.0, 1.0]},
    ...           {"NN1": [0.0, 0.0], "GP1": [3.0, 3.0]}]
    >>> row = agreement_table(trials)[0]
    >>> row["trials"], row["mean_distance"], round(row["se"], 6)
    (2, 2.0, 0.707107)
    """
    if isinstance(predictions, Mapping):
        raise TypeError(
            "predictions must be a sequence with one mapping per trial, got a "
            "single mapping; wrap one trial as [trial]"
        )
    names: list[str] = []
    for t, trial in enumerate(predictions):
        if not isinstance(trial, Mapping):
            raise TypeError(
                f"predictions[{t}] must map model names to predictions, got "
                f"{type(trial).__name__}"
            )
        names.extend(name for name in trial if name not in names)
    network_names = (
        list(networks) if networks is not None else [n for n in names if _is_network(n)]
    )
    kernel_names = (
        list(kernels)
        if kernels is not None
        else [n for n in names if n not in network_names]
    )

    rows: list[dict[str, Any]] = []
    for net in network_names:
        for ker in kernel_names:
            distances = []
            for trial in predictions:
                a, b = trial.get(net), trial.get(ker)
                if a is not None and b is not None:
                    distances.append(prediction_distance(a, b))
            values = np.asarray(distances, dtype=np.float64)
            finite = values[np.isfinite(values)]
            if finite.size < values.size:
                warnings.warn(
                    f"{values.size - finite.size} of {values.size} trials give a "
                    f"non-finite distance between {net} and {ker} and are left out; "
                    "check those trials' training status",
                    stacklevel=2,
                )
            if finite.size == 0:
                continue
            k = finite.size
            rows.append(
                {
                    "network": net,
                    "kernel": ker,
                    "trials": int(k),
                    "mean_distance": float(np.mean(finite)),
                    "se": float(np.std(finite, ddof=0) / math.sqrt(k)),
                    "se_sample": (
                        float(np.std(finite, ddof=1) / math.sqrt(k))
                        if k > 1
                        else math.nan
                    ),
                }
            )
    return rows


# --------------------------------------------------------------------------
# Width power laws
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLawFit:
    """Fit of value ≈ exp(intercept) · width^slope.

    Attributes
    ----------
    slope : float
        Exponent; the NTK theory predicts −1/2 for the parameter and NTK
        changes of an NTK-parameterized network.
    slope_se : float
        Standard error of ``slope`` from the regression.
    intercept : float
        Natural log of the fitted value at width 1.
    r2 : float
        Coefficient of determination in log-log space (weighted when the fit
        was).
    """

    slope: float
    slope_se: float
    intercept: float
    r2: float

    def predict(self, widths: ArrayLike) -> NDArray[np.float64]:
        """Fitted values exp(intercept) · width^slope, same shape as ``widths``."""
        w = np.asarray(widths, dtype=np.float64)
        return np.asarray(np.exp(self.intercept) * w**self.slope, dtype=np.float64)


def fit_power_law(
    widths: ArrayLike, values: ArrayLike, values_se: ArrayLike | None = None
) -> PowerLawFit:
    """Least-squares line through (log width, log value).

    Parameters
    ----------
    widths : array_like, shape (k,)
        Positive widths, at least two distinct.
    values : array_like, shape (k,)
        Positive measurements (e.g. mean parameter change per width).
    values_se : array_like, shape (k,), optional
        Standard errors of ``values``. Given, each point is weighted by
        1/s² with s = values_se / values, the delta-method standard error of
        log value, and the slope's standard error is sqrt((AᵀWA)⁻¹)₁₁ scaled by
        the Birge ratio max(1, sqrt(χ²/(k − 2))): never smaller than the
        errors imply, larger when the points scatter more than they say.
        Omitted, the fit is ordinary least squares and the standard error is
        the usual sqrt(RSS/(k − 2) · (AᵀA)⁻¹₁₁) (``nan`` for k = 2).

    Returns
    -------
    PowerLawFit

    Examples
    --------
    >>> fit = fit_power_law([100, 400, 1600], [0.1, 0.05, 0.025])
    >>> round(fit.slope, 12), round(fit.r2, 12)
    (-0.5, 1.0)
    """
    w = np.asarray(widths, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if w.shape != v.shape:
        raise ValueError(
            f"widths and values must have one length, got {w.size} and {v.size}"
        )
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise ValueError(f"widths must be finite and positive, got {w.tolist()}")
    if not (np.all(np.isfinite(v)) and np.all(v > 0)):
        raise ValueError(
            f"values must be finite and positive for a log-log fit, got {v.tolist()}"
        )
    if np.unique(w).size < 2:
        raise ValueError(f"widths must hold at least two distinct values, got {w}")
    k = w.size

    # Design matrix in log space and the weights.
    A = np.column_stack([np.ones(k), np.log(w)])
    z = np.log(v)
    if values_se is None:
        weights = np.ones(k)
    else:
        se = np.asarray(values_se, dtype=np.float64).reshape(-1)
        if se.shape != v.shape or not (np.all(np.isfinite(se)) and np.all(se > 0)):
            raise ValueError(
                "values_se must hold one finite positive standard error per value, "
                f"got {se.tolist()}"
            )
        weights = (v / se) ** 2

    # Weighted least squares through the normal equations (2 x 2).
    normal = A.T @ (weights[:, None] * A)
    coef = np.linalg.solve(normal, A.T @ (weights * z))
    residual = z - A @ coef
    chi2 = float(np.sum(weights * residual**2))
    cov = np.linalg.inv(normal)
    if values_se is None:
        scale = chi2 / (k - 2) if k > 2 else math.nan
    else:
        scale = max(1.0, chi2 / (k - 2)) if k > 2 else 1.0
    slope_se = math.sqrt(cov[1, 1] * scale) if np.isfinite(scale) else math.nan

    # R² about the weighted mean of log value.
    z_bar = float(np.sum(weights * z) / np.sum(weights))
    total = float(np.sum(weights * (z - z_bar) ** 2))
    r2 = 1.0 - chi2 / total if total > 0 else 1.0
    return PowerLawFit(
        slope=float(coef[1]), slope_se=slope_se, intercept=float(coef[0]), r2=r2
    )


# --------------------------------------------------------------------------
# The kernel's prediction after finite training
# --------------------------------------------------------------------------


class TrainSchedule(Protocol):
    """What the finite-time predictor reads from a training configuration.

    ``ntkeq.training.TrainConfig`` satisfies it; ``batch_size`` ``None`` is a
    full batch and ``epochs`` may be ``math.inf`` (training to convergence).
    """

    @property
    def learning_rate(self) -> float: ...

    @property
    def epochs(self) -> float: ...

    @property
    def batch_size(self) -> int | None: ...


@dataclass(frozen=True)
class FiniteTimePrediction:
    """The NTK's predictions after the network's amount of gradient descent.

    Attributes
    ----------
    predictions : ndarray, shape (m,)
        Predictions on the test points.
    train_predictions : ndarray, shape (n,)
        Predictions on the points fit.
    loss_curve : ndarray, shape (k, 2)
        Rows (epoch, mean of (f_e(x_i) − y_i)² over the points fit) at the
        requested epochs.
    steps : float
        Gradient-descent steps S = E · ceil(n / B) (``inf`` for E = ∞).
    eta : float
        Function-space step 2η/n.
    dynamics : str
        ``"discrete"`` or ``"flow"``.
    """

    predictions: NDArray[np.float64]
    train_predictions: NDArray[np.float64]
    loss_curve: NDArray[np.float64]
    steps: float
    eta: float
    dynamics: str


def finite_time_ntk_prediction(
    gram_train: ArrayLike,
    gram_test_train: ArrayLike,
    y_train: ArrayLike,
    schedule: TrainSchedule,
    *,
    f0_train: ArrayLike | None = None,
    f0_test: ArrayLike | None = None,
    loss_epochs: ArrayLike | None = None,
    n_fit: int | None = None,
    dynamics: str = "discrete",
    eigh: tuple[ArrayLike, ArrayLike] | None = None,
) -> FiniteTimePrediction:
    """The kernel's prediction after the same training the network received.

    A network that stays in the kernel regime follows its linearization. On
    the loss (1/B) Σ_batch (f − y)² with learning rate η, the mean SGD step
    is the full-batch kernel step (Jacot et al. 2018, Section 5; Lee et al.
    2019, equation (9))::

        f_{s+1}(X)  = f_s(X)  − (2η/n) Θ(X, X)  (f_s(X) − y)
        f_{s+1}(X*) = f_s(X*) − (2η/n) Θ(X*, X) (f_s(X) − y)

    run for S = E · ceil(n / B) steps from the network's initial function
    f_0. As S → ∞ with f_0 = 0 this is ridgeless kernel regression, the
    paper's predictor (its equation (5) with λ = 0, Section 2.4). The
    computation is :func:`ntkeq.regression.kernel_gd_predict` (one
    eigendecomposition of Θ(X, X)); this function maps a training
    configuration onto it.

    Parameters
    ----------
    gram_train : array_like, shape (n, n)
        Kernel Gram matrix on the training points.
    gram_test_train : array_like, shape (m, n)
        Kernel between test and training points.
    y_train : array_like, shape (n,)
        Training targets.
    schedule : TrainSchedule
        Anything with ``learning_rate``, ``epochs`` and ``batch_size``, such
        as the network's ``ntkeq.training.TrainConfig``.
    f0_train, f0_test : array_like, shape (n,) and (m,), optional
        The network's function at initialization; zero when omitted (the
        kernel-regression convention). Give both or neither.
    loss_epochs : array_like, shape (k,), optional
        Whole epochs at which to report the training loss, e.g. the first
        column of the network's ``TrainResult.loss_curve``.
    n_fit : int, optional
        Fit only the first ``n_fit`` training points, the ones a network with
        a held-out validation tail was trained on (``n`` is then ``n_fit``).
    dynamics : {"discrete", "flow"}
        ``"discrete"`` takes the S steps exactly; ``"flow"`` uses gradient
        flow for the same time, exp(−(2η/n) S Θ) in place of
        (I − (2η/n) Θ)^S. They agree when 2ηλ_max/n ≪ 1.
    eigh : (lam, V), optional
        Precomputed eigendecomposition of the fitting block Θ(X, X)[:n, :n]
        (lam of shape (n,) ascending, V of shape (n, n)), passed to
        :func:`~ntkeq.regression.kernel_gd_predict` in place of its own.

    Returns
    -------
    FiniteTimePrediction

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> K = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> forever = SimpleNamespace(learning_rate=0.1, epochs=math.inf, batch_size=2)
    >>> finite_time_ntk_prediction(K, K, [1.0, -1.0], forever).predictions
    array([ 1., -1.])
    """
    from ntkeq.regression import gradient_descent_time, kernel_gd_predict

    if (f0_train is None) != (f0_test is None):
        raise ValueError("give both f0_train and f0_test, or neither")
    if dynamics not in ("discrete", "flow"):
        raise ValueError(f"dynamics must be 'discrete' or 'flow', got {dynamics!r}")
    lr = schedule.learning_rate
    epochs = schedule.epochs
    batch = schedule.batch_size
    if isinstance(epochs, bool) or not isinstance(epochs, int | float | np.number):
        raise TypeError(f"schedule.epochs must be a number, got {epochs!r}")
    if math.isnan(epochs) or epochs < 0:
        raise ValueError(f"schedule.epochs must be >= 0 or inf, got {epochs!r}")
    n = int(np.shape(y_train)[0]) if n_fit is None else int(n_fit)

    # Map the requested epochs (loss curve first, final epoch last) to steps.
    at = np.empty(0)
    if loss_epochs is not None:
        at = np.asarray(loss_epochs, dtype=np.float64).reshape(-1)
        if np.any(~np.isfinite(at)) or np.any(at < 0) or np.any(at != np.round(at)):
            raise ValueError(
                f"loss_epochs must be whole non-negative numbers, got {at.tolist()}"
            )
    epoch_grid = np.append(at, float(epochs))
    steps = np.array(
        [
            math.inf
            if math.isinf(e)
            else float(gradient_descent_time(lr, int(e), n, batch)[1])
            for e in epoch_grid
        ]
    )

    out = kernel_gd_predict(
        gram_train,
        gram_test_train,
        y_train,
        learning_rate=lr,
        steps=steps.tolist() if dynamics == "discrete" else None,
        times=steps.tolist() if dynamics == "flow" else None,
        n_train_fit=n_fit,
        f0_train=f0_train,
        f0_test=f0_test,
        eigh=eigh,
    )
    return FiniteTimePrediction(
        predictions=out.test[-1],
        train_predictions=out.train[-1],
        loss_curve=np.column_stack([at, out.train_loss[:-1]]),
        steps=float(steps[-1]),
        eta=float(out.eta),
        dynamics=dynamics,
    )


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    logger.info("wrote %s", out)
    return out


def plot_lazy_measures(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Per-trial parameter and NTK change of each network, side by side.

    Parameters
    ----------
    rows : sequence of mappings
        One per (trial, network), with keys ``network``, ``parameter_change``
        and ``ntk_change`` (a missing or ``None`` value is not drawn).
    path : str or Path
        Image file to write (format from the suffix).

    Returns
    -------
    Path
        ``path``.
    """
    if not rows:
        raise ValueError("rows is empty; nothing to plot")
    plt = _pyplot()
    networks: list[str] = []
    for row in rows:
        if "network" not in row:
            raise ValueError(f"each row needs a 'network' key, got keys {list(row)}")
        if row["network"] not in networks:
            networks.append(row["network"])
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    rng = np.random.default_rng(0)
    for ax, key, title in zip(
        axes,
        ("parameter_change", "ntk_change"),
        ("‖θ_T − θ_0‖ / ‖θ_0‖", "‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F"),
        strict=True,
    ):
        for i, net in enumerate(networks):
            values = [
                float(r[key])
                for r in rows
                if r["network"] == net and r.get(key) is not None
            ]
            jitter = rng.uniform(-0.15, 0.15, len(values))
            ax.plot(i + jitter, values, "o", alpha=0.6, markersize=4)
            if values:
                ax.hlines(float(np.median(values)), i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(networks)), networks)
        ax.set_yscale("log")
        ax.set_title(title)
    fig.suptitle("Lazy training: relative change per trial (line: median)", y=1.03)
    return _save(fig, path)


def _mean_curve(
    curves: Sequence[ArrayLike], name: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    arrays = [np.asarray(c, dtype=np.float64) for c in curves]
    if not arrays:
        raise ValueError(f"no curves for {name}")
    for a in arrays:
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(
                f"curves for {name} must be (k, 2) arrays of (epoch, loss), got "
                f"shape {a.shape}"
            )
        if a.shape != arrays[0].shape or not np.array_equal(a[:, 0], arrays[0][:, 0]):
            raise ValueError(
                f"curves for {name} must share their epochs across trials to be "
                "averaged; record the loss at the same epochs in every trial"
            )
    return arrays[0][:, 0], np.mean([a[:, 1] for a in arrays], axis=0)


def plot_loss_curves(
    network_curves: Mapping[str, Sequence[ArrayLike]],
    kernel_curves: Mapping[str, Sequence[ArrayLike]],
    path: str | Path,
) -> Path:
    """Network training loss against its kernel predictor's, averaged over trials.

    Parameters
    ----------
    network_curves : mapping
        Model name -> one (k, 2) array of (epoch, loss) per trial, such as
        ``TrainResult.loss_curve``.
    kernel_curves : mapping
        Name -> (k, 2) arrays per trial, such as
        ``FiniteTimePrediction.loss_curve`` at the same epochs.
    path : str or Path
        Image file to write.

    Returns
    -------
    Path
        ``path``. Networks are solid lines, kernels dashed, log y axis.
    """
    if not network_curves and not kernel_curves:
        raise ValueError("no curves to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for curves, style in ((network_curves, "-"), (kernel_curves, "--")):
        for name, trials in curves.items():
            epochs, loss = _mean_curve(trials, name)
            ax.plot(epochs, loss, style, label=f"{name} (n={len(trials)})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training MSE (mean over trials)")
    ax.legend()
    return _save(fig, path)


def plot_width_sweep(
    widths: ArrayLike,
    series: Mapping[str, tuple[ArrayLike, ArrayLike]],
    fits: Mapping[str, PowerLawFit],
    path: str | Path,
    title: str = "",
) -> Path:
    """Measures against width on log-log axes, with fitted power laws.

    Parameters
    ----------
    widths : array_like, shape (k,)
        Widths swept.
    series : mapping
        Name -> (means, ses), each of shape (k,).
    fits : mapping
        Name -> :class:`PowerLawFit` (from :func:`fit_power_law`); drawn as a
        line with "slope ± se" in the legend. Names without a fit get none.
    path : str or Path
        Image file to write.
    title : str
        Figure title, e.g. the preset, variant, trials, seed and version.

    Returns
    -------
    Path
        ``path``. A dotted line of slope −1/2 through the first series' first
        point is the NTK theory's rate.
    """
    w = np.asarray(widths, dtype=np.float64).reshape(-1)
    if not series:
        raise ValueError("series is empty; nothing to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.geomspace(w.min(), w.max(), 50)
    for name, (means, ses) in series.items():
        mu = np.asarray(means, dtype=np.float64).reshape(-1)
        se = np.asarray(ses, dtype=np.float64).reshape(-1)
        if mu.shape != w.shape or se.shape != w.shape:
            raise ValueError(
                f"series {name!r} needs means and ses of length {w.size}, got "
                f"{mu.size} and {se.size}"
            )
        bars = ax.errorbar(w, mu, yerr=se, fmt="o", capsize=3, label=name)
        fit = fits.get(name)
        if fit is not None:
            ax.plot(
                grid,
                fit.predict(grid),
                "-",
                color=bars[0].get_color(),
                label=f"{name} fit: slope {fit.slope:.3f} ± {fit.slope_se:.3f}",
            )
    first = np.asarray(next(iter(series.values()))[0], dtype=np.float64).reshape(-1)
    ax.plot(grid, first[0] * (grid / w[0]) ** -0.5, "k:", label="slope −1/2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(w, [f"{v:g}" for v in w])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("width")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    return _save(fig, path)
