"""One trial of a study: fresh data, every model fitted, test RMSEs.

:func:`run_trial` is a pure function of (config, trial index): the same
inputs give the same predictions on the same device and dtype, whatever the
order in which trials run or the worker that runs them.

Notation
--------
s, i
    the study's base seed and the trial index.
root
    ``SeedSequence([s, i])``; its child with spawn key ``(0,)`` seeds the
    data, the child with key ``(1, h(name))`` seeds the network called
    ``name``, where h is the first 32 bits of the SHA-256 of the name. Adding
    or removing a model therefore leaves every other model's seed unchanged.
K
    a kernel's Gram matrix on all n_obs points, computed once per trial;
    its train block K_tr (n_train, n_train) and test block K_te
    (n_test, n_train) are slices of it.
alpha
    dual coefficients, K_tr alpha = y_train (ridge 0, the paper's ridgeless
    regression); predictions are K_te alpha.
RMSE
    sqrt(mean((prediction - y_test)^2)) over the n_test test points.
n_fit
    a network's fitting points: the first n_train - round(v n_train) training
    rows for validation split v (Keras holds out the tail).
lambda_max
    largest eigenvalue of a kernel's Gram on the n_fit fitting points;
    full-batch gradient descent on (1/n_fit) sum (f - y)^2 is stable iff
    lr < n_fit / lambda_max (the step 2 lr / n_fit times lambda_max below 2).

Work shared within a process
----------------------------
The data split of (data config, data variant, data seed), each closed-form
Gram K and each eigendecomposition of a fitting block K[:n_fit, :n_fit] are
kept in bounded least-recently-used caches as read-only arrays, so the
kernel unit and the network units of one trial, and the same trial at every
width of a sweep, compute them once. The eigendecomposition serves both the
stability bound (its largest eigenvalue) and the finite-time ``@``
predictors. A trial's dense linear algebra in NumPy and SciPy runs with one
BLAS thread: on a machine with few cores a threaded BLAS competing with
other processes can be many times slower than one thread, and trials are
parallelized by the executors instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ntkeq.study.config import (
    ConfigError,
    KernelModelConfig,
    NetworkModelConfig,
    PredictorModelConfig,
    StudyConfig,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ModelOutcome",
    "StabilityWarning",
    "TrialResult",
    "clear_gram_cache",
    "clear_split_cache",
    "matched_kernel",
    "model_seed",
    "resolve_device",
    "rmse",
    "run_trial",
    "stability_bound",
    "stability_message",
    "trial_seed",
    "trial_split",
]

#: Spawn-key branch of the data's seed and of the networks' seeds.
DATA_BRANCH = 0
MODEL_BRANCH = 1


@dataclass(frozen=True)
class ModelOutcome:
    """Result of one model in one trial.

    Attributes
    ----------
    model : str
        Model name as configured.
    status : str
        ``"ok"``, ``"diverged"`` (training blew up) or ``"failed"`` (an
        exception, described in ``reason``).
    rmse : float or None
        Test RMSE; ``None`` unless ``status == "ok"``.
    predictions : ndarray of shape (n_test,) or None
        Predictions on the test points (kept for diverged networks too).
    fit_time : float
        Seconds: a network's training, or a kernel's share of the trial's
        Gram computation plus its own solve.
    reason : str
        Why a model failed or diverged, and any warning raised while it was
        fitted; empty otherwise.
    loss_curve : ndarray of shape (k, 2) or None
        A network's (epoch, training loss) pairs; for an ``@`` predictor its
        own training loss at the network's recorded epochs.
    metrics : dict
        A network's lazy-training measures: ``parameter_change``,
        ``parameter_change_by_layer`` (list, input layer first),
        ``ntk_change`` and ``ntk_subsample`` (rows used); for an ``@``
        predictor ``steps`` and ``lambda_max``; empty for kernels.
    """

    model: str
    status: str
    rmse: float | None
    predictions: np.ndarray | None
    fit_time: float
    reason: str = ""
    loss_curve: np.ndarray | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


class StabilityWarning(UserWarning):
    """A network's learning rate exceeds the gradient-descent stability bound."""


@dataclass(frozen=True)
class TrialResult:
    """Everything one call of :func:`run_trial` produced.

    Attributes
    ----------
    index : int
        Trial index i.
    seed : int
        The integer seed the trial's data was drawn with.
    y_test : ndarray of shape (n_test,)
        Test targets.
    outcomes : tuple of ModelOutcome
        One per requested model, in the configured order.
    """

    index: int
    seed: int
    y_test: np.ndarray
    outcomes: tuple[ModelOutcome, ...]


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little")


def _as_int(ss: np.random.SeedSequence) -> int:
    # 63 bits: fits SQLite's signed INTEGER and every consumer's seed range.
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def trial_seed(base_seed: int, index: int) -> int:
    """Integer seed of trial ``index``'s data (see the module Notation).

    Examples
    --------
    >>> trial_seed(0, 3) == trial_seed(0, 3) != trial_seed(0, 4)
    True
    """
    return _as_int(np.random.SeedSequence([base_seed, index], spawn_key=(DATA_BRANCH,)))


def model_seed(base_seed: int, index: int, name: str) -> int:
    """Integer seed of network ``name`` in trial ``index``, order independent.

    Examples
    --------
    >>> model_seed(0, 1, "NN1") != model_seed(0, 1, "NN2")
    True
    """
    ss = np.random.SeedSequence(
        [base_seed, index], spawn_key=(MODEL_BRANCH, _name_key(name))
    )
    return _as_int(ss)


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def rmse(predictions: np.ndarray, y: np.ndarray) -> float:
    """Root mean squared error, sqrt(mean((predictions - y)^2)).

    Examples
    --------
    >>> rmse(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    2.23606797749979
    """
    diff = np.asarray(predictions, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def _failure(name: str, exc: BaseException, elapsed: float) -> ModelOutcome:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    reason = f"{type(exc).__name__}: {exc}{where}"
    logger.warning("model %s failed: %s", name, reason)
    return ModelOutcome(name, "failed", None, None, elapsed, reason)


def _warning_text(caught: Sequence[warnings.WarningMessage]) -> str:
    return "; ".join(f"{w.category.__name__}: {w.message}" for w in caught)


#: Data splits kept in memory (least recently used dropped).
SPLIT_CACHE_SIZE = 16
_SPLIT_CACHE: OrderedDict[Hashable, Any] = OrderedDict()


def clear_split_cache() -> None:
    """Forget every cached data split."""
    _SPLIT_CACHE.clear()


def _split(config: StudyConfig, seed: int) -> Any:
    """The trial's data split, cached per (data config, data variant, seed).

    The arrays of a cached split are read-only; copy them before handing them
    to code that writes or wraps them without copying (``torch.as_tensor``).
    """
    key = (config.data, config.data_variant, int(seed))
    split = _SPLIT_CACHE.get(key)
    if split is not None:
        _SPLIT_CACHE.move_to_end(key)
        return split
    split = _make_split(config, seed)
    for value in vars(split).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    _SPLIT_CACHE[key] = split
    while len(_SPLIT_CACHE) > SPLIT_CACHE_SIZE:
        _SPLIT_CACHE.popitem(last=False)
    return split


def trial_split(config: StudyConfig, index: int) -> Any:
    """The data split trial ``index`` of ``config`` trains and tests on.

    The same object the trial itself uses (a ``ntkeq.data.Split``, cached,
    with read-only arrays): every model of the trial sees these points.
    """
    return _split(config, trial_seed(config.seed, index))


def _make_split(config: StudyConfig, seed: int) -> Any:
    from ntkeq import data

    d = config.data
    if d.source == "diabetes":
        return data.load_diabetes_split(test_fraction=d.test_fraction, seed=seed)
    return data.simulate(
        n_obs=d.n_obs,
        d_in=d.d_in,
        low=d.low,
        high=d.high,
        kernel=d.kernel,
        variant=config.data_variant,
        test_fraction=d.test_fraction,
        seed=seed,
    )


#: Closed-form Gram matrices kept in memory (least recently used dropped).
GRAM_CACHE_SIZE = 24
_GRAM_CACHE: OrderedDict[Hashable, np.ndarray] = OrderedDict()


#: Eigendecompositions of fitting blocks kept in memory (LRU dropped).
EIGH_CACHE_SIZE = 24
_EIGH_CACHE: OrderedDict[Hashable, tuple[np.ndarray, np.ndarray]] = OrderedDict()


def clear_gram_cache() -> None:
    """Forget every cached closed-form Gram matrix and its eigendecompositions."""
    _GRAM_CACHE.clear()
    _EIGH_CACHE.clear()


def _gram_key(
    config: StudyConfig,
    data_seed: int,
    kernel: str,
    variant: str,
    params: Mapping[str, Any],
) -> Hashable:
    # The data are a pure function of (data config, data variant, seed).
    return (
        data_seed,
        config.data,
        config.data_variant,
        kernel,
        variant,
        json.dumps(dict(params), sort_keys=True),
    )


def _cache_get(key: Hashable) -> np.ndarray | None:
    K = _GRAM_CACHE.get(key)
    if K is not None:
        _GRAM_CACHE.move_to_end(key)
    return K


def _cache_put(key: Hashable, K: np.ndarray) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    K.setflags(write=False)
    _GRAM_CACHE[key] = K
    _GRAM_CACHE.move_to_end(key)
    while len(_GRAM_CACHE) > GRAM_CACHE_SIZE:
        _GRAM_CACHE.popitem(last=False)
    return K


def _closed_form_gram(
    config: StudyConfig,
    data_seed: int,
    kernel: str,
    variant: str,
    params: Mapping[str, Any],
    X: np.ndarray,
) -> np.ndarray:
    """Gram (n_obs, n_obs) of one closed-form kernel on all points, cached."""
    from ntkeq import kernels

    key = _gram_key(config, data_seed, kernel, variant, params)
    K = _cache_get(key)
    if K is None:
        K = _cache_put(key, kernels.kernel(kernel, variant=variant, **params)(X))
    return K


def _closed_form_eigh(
    config: StudyConfig,
    data_seed: int,
    kernel: str,
    variant: str,
    params: Mapping[str, Any],
    X: np.ndarray,
    n_fit: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition (lam (n_fit,), V (n_fit, n_fit)) of K[:n_fit, :n_fit].

    K is the cached closed-form Gram on all points X (fitting points first);
    the decomposition is :func:`ntkeq.regression.symmetric_eigh`'s, cached
    per Gram and n_fit, as read-only arrays.
    """
    from ntkeq.regression import symmetric_eigh

    key = (_gram_key(config, data_seed, kernel, variant, params), int(n_fit))
    cached = _EIGH_CACHE.get(key)
    if cached is not None:
        _EIGH_CACHE.move_to_end(key)
        return cached
    K = _closed_form_gram(config, data_seed, kernel, variant, params, X)
    lam, V = symmetric_eigh(K[:n_fit, :n_fit])
    lam.setflags(write=False)
    V.setflags(write=False)
    _EIGH_CACHE[key] = (lam, V)
    while len(_EIGH_CACHE) > EIGH_CACHE_SIZE:
        _EIGH_CACHE.popitem(last=False)
    return lam, V


def _kernel_grams(
    config: StudyConfig,
    models: Sequence[KernelModelConfig],
    X: np.ndarray,
    data_seed: int,
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, BaseException]]:
    """Gram matrices (n_obs, n_obs) of every kernel model on all points X.

    Models with default hyperparameters share one :func:`gram_many` call per
    variant (which shares the layer recursions between depths); a model with
    its own ``params`` is computed alone. Grams already in the in-process
    cache (same data seed, kernel, variant and parameters) are reused.
    Returns the Grams, each model's share of the time, and the exceptions of
    models whose Gram failed.
    """
    from ntkeq import kernels

    grams: dict[str, np.ndarray] = {}
    times: dict[str, float] = {}
    errors: dict[str, BaseException] = {}

    shared: dict[str, list[KernelModelConfig]] = {}
    for m in models:
        variant = config.model_variant(m)
        cached = _cache_get(_gram_key(config, data_seed, m.kernel, variant, m.params))
        if cached is not None:
            grams[m.name], times[m.name] = cached, 0.0
        elif m.params:
            t0 = time.perf_counter()
            try:
                grams[m.name] = _closed_form_gram(
                    config, data_seed, m.kernel, variant, m.params, X
                )
            except Exception as exc:
                errors[m.name] = exc
            times[m.name] = time.perf_counter() - t0
        else:
            shared.setdefault(variant, []).append(m)

    for variant, group in shared.items():
        names = list(dict.fromkeys(m.kernel for m in group))
        t0 = time.perf_counter()
        try:
            by_kernel = kernels.gram_many(names, X, variant=variant)
        except Exception as exc:
            for m in group:
                errors[m.name] = exc
            by_kernel = {}
        for name, K in by_kernel.items():
            by_kernel[name] = _cache_put(
                _gram_key(config, data_seed, name, variant, {}), K
            )
        share = (time.perf_counter() - t0) / len(group)
        for m in group:
            times[m.name] = share
            if m.kernel in by_kernel:
                grams[m.name] = by_kernel[m.kernel]
    return grams, times, errors


def _fit_kernels(
    config: StudyConfig,
    models: Sequence[KernelModelConfig],
    split: Any,
    data_seed: int,
) -> list[ModelOutcome]:
    from ntkeq.regression import solve_dual

    n_train = len(split.y_train)
    X = np.concatenate([np.asarray(split.X_train), np.asarray(split.X_test)])
    y_train = np.asarray(split.y_train, dtype=np.float64)
    y_test = np.asarray(split.y_test, dtype=np.float64)
    grams, times, errors = _kernel_grams(config, models, X, data_seed)

    out = []
    for m in models:
        if m.name in errors:
            out.append(_failure(m.name, errors[m.name], times.get(m.name, 0.0)))
            continue
        t0 = time.perf_counter()
        try:
            K = grams[m.name]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                alpha, _info = solve_dual(K[:n_train, :n_train], y_train, ridge=m.ridge)
            predictions = K[n_train:, :n_train] @ alpha
            elapsed = times[m.name] + time.perf_counter() - t0
            reason = _warning_text(caught)
            if reason:
                logger.info("model %s: %s", m.name, reason)
            if not np.all(np.isfinite(predictions)):
                out.append(
                    ModelOutcome(
                        m.name,
                        "failed",
                        None,
                        predictions,
                        elapsed,
                        "non-finite predictions from the dual solve; " + reason,
                    )
                )
                continue
            out.append(
                ModelOutcome(
                    m.name,
                    "ok",
                    rmse(predictions, y_test),
                    predictions,
                    elapsed,
                    reason,
                )
            )
        except Exception as exc:
            out.append(_failure(m.name, exc, times[m.name] + time.perf_counter() - t0))
    return out


def build_network(
    config: StudyConfig, model: NetworkModelConfig, seed: int, d_in: int
) -> tuple[Any, Any]:
    """The untrained :class:`~ntkeq.networks.MLP` and its ``TrainConfig``."""
    from ntkeq.networks import MLP
    from ntkeq.training import TrainConfig

    device = resolve_device(config.device)
    dtype = config.model_dtype(model)
    net = MLP(
        d_in,
        model.depth,
        model.width,
        model.parameterization,
        seed=seed,
        dtype=dtype,
        device=device,
        **dict(model.params),
    )
    train_config = TrainConfig(
        learning_rate=model.learning_rate,
        epochs=model.epochs,
        batch_size=model.batch_size,
        validation_split=model.validation_split,
        device=device,
        dtype=dtype,
        seed=seed,
    )
    return net, train_config


def matched_kernel(
    config: StudyConfig, network: NetworkModelConfig
) -> tuple[str, str, Mapping[str, Any]] | None:
    """Closed-form kernel a network is checked against: (name, variant, params).

    The network's first closed-form ``@`` predictor, else the kernel family of
    its parameterization at its depth (``ntkb`` -> NTKB<L>, ``ntkj`` ->
    NTKJ<L>, ``ntka`` -> NTKA<L>) in the ``exact`` variant, the network's own
    limit; ``None`` for the standard parameterization without a closed-form
    predictor.
    """
    from ntkeq.study.config import EMPIRICAL_KERNEL, PARAMETERIZATION_KERNELS

    for p in config.predictors_of(network.name):
        if p.kernel != EMPIRICAL_KERNEL:
            return p.kernel, config.model_variant(p), p.params
    family = PARAMETERIZATION_KERNELS.get(network.parameterization)
    if family is None:
        return None
    return f"{family}{network.depth}", "exact", {}


def stability_bound(
    gram_fit: np.ndarray | None = None, *, eigenvalues: np.ndarray | None = None
) -> float:
    """Largest stable learning rate n / lambda_max of full-batch gradient descent.

    On L = (1/n) sum (f(x_i) - y_i)^2 a network in its kernel regime moves by
    f <- f - (2 lr / n) Theta (f - y) (``ntkeq.regression.kernel_gd_predict``),
    which converges iff (2 lr / n) lambda_max(Theta) < 2, i.e.
    lr < n / lambda_max.

    Parameters
    ----------
    gram_fit : ndarray of shape (n, n), optional
        The kernel's Gram matrix on the n fitting points; its largest
        eigenvalue is computed.
    eigenvalues : ndarray of shape (n,), optional
        All n eigenvalues of that Gram, already computed (e.g. the ``lam`` of
        an eigendecomposition); used instead of ``gram_fit``. Give exactly
        one of the two.

    Returns
    -------
    float
        n / lambda_max (``inf`` when lambda_max <= 0).

    Examples
    --------
    >>> stability_bound(np.diag([4.0, 1.0]))
    0.5
    >>> stability_bound(eigenvalues=np.array([1.0, 4.0]))
    0.5
    """
    import scipy.linalg

    if (gram_fit is None) == (eigenvalues is None):
        raise TypeError("give exactly one of gram_fit and eigenvalues")
    if eigenvalues is not None:
        lam = np.asarray(eigenvalues, dtype=np.float64)
        if lam.ndim != 1 or lam.shape[0] == 0 or not np.all(np.isfinite(lam)):
            raise ValueError(
                "eigenvalues must be a non-empty 1-D array of finite values, got "
                f"shape {lam.shape}"
            )
        top_value = float(np.max(lam))
        return math.inf if top_value <= 0.0 else lam.shape[0] / top_value
    K = np.asarray(gram_fit, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"gram_fit must be a non-empty square matrix, got {K.shape}")
    n = K.shape[0]
    top = scipy.linalg.eigvalsh(
        0.5 * (K + K.T), subset_by_index=[n - 1, n - 1], check_finite=False
    )
    lam_max = float(top[-1])
    return math.inf if lam_max <= 0.0 else n / lam_max


def stability_message(
    config: StudyConfig,
    network: NetworkModelConfig,
    X_fit: np.ndarray,
    data_seed: int,
    X_all: np.ndarray | None = None,
) -> str:
    """Warning text when ``network``'s learning rate exceeds the bound, else "".

    The bound (:func:`stability_bound`) uses the network's
    :func:`matched_kernel` on its fitting points ``X_fit`` (n_fit, d).
    ``X_all`` (all n_obs points, fitting points first) lets the cached Gram
    on every point and the cached eigendecomposition of its fitting block be
    reused (the same one the network's ``@`` predictors use).
    """
    matched = matched_kernel(config, network)
    if matched is None:
        return ""
    kernel, variant, params = matched
    n_fit = X_fit.shape[0]
    if X_all is not None:
        lam, _V = _closed_form_eigh(
            config, data_seed, kernel, variant, params, X_all, n_fit
        )
        bound = stability_bound(eigenvalues=lam)
    else:
        from ntkeq import kernels

        K = kernels.kernel(kernel, variant=variant, **params)(X_fit)
        bound = stability_bound(K[:n_fit, :n_fit])
    lr = network.learning_rate
    if lr <= bound:
        return ""
    how = "full-batch" if network.batch_size is None else "SGD"
    return (
        f"model {network.name}: learning_rate = {lr:g} exceeds the {how} "
        f"gradient-descent stability bound n_fit / lambda_max({kernel}) = "
        f"{bound:.4g} (n_fit = {n_fit}); the network and its kernel predictors "
        f"diverge. Use learning_rate < {bound:.4g}, e.g. {bound / 2:.3g}"
    )


def _fit_predictor(
    config: StudyConfig,
    p: PredictorModelConfig,
    data_seed: int,
    split: Any,
    X_all: np.ndarray,
    n_fit: int,
    schedule: Any,
    f0_all: np.ndarray | None,
    entk: np.ndarray | None,
    curve: np.ndarray | None,
) -> ModelOutcome:
    from ntkeq.equivalence import finite_time_ntk_prediction

    t0 = time.perf_counter()
    try:
        n_train = len(split.y_train)
        eigh = None
        if entk is not None:
            K = entk
        else:
            variant = config.model_variant(p)
            K = _closed_form_gram(config, data_seed, p.kernel, variant, p.params, X_all)
            eigh = _closed_form_eigh(
                config, data_seed, p.kernel, variant, p.params, X_all, n_fit
            )
        f0_train = f0_test = None
        if p.f0 and f0_all is not None:
            f0_train, f0_test = f0_all[:n_train], f0_all[n_train:]
        loss_epochs = None if curve is None or curve.size == 0 else curve[:, 0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fp = finite_time_ntk_prediction(
                K[:n_train, :n_train],
                K[n_train:, :n_train],
                np.asarray(split.y_train, dtype=np.float64),
                schedule,
                f0_train=f0_train,
                f0_test=f0_test,
                loss_epochs=loss_epochs,
                n_fit=n_fit,
                eigh=eigh,
            )
        elapsed = time.perf_counter() - t0
        reason = _warning_text(caught)
        predictions = np.asarray(fp.predictions, dtype=np.float64)
        metrics = {"steps": fp.steps, "eta": fp.eta}
        if not np.all(np.isfinite(predictions)):
            return ModelOutcome(
                p.name,
                "diverged",
                None,
                predictions,
                elapsed,
                "non-finite kernel gradient-descent predictions; " + reason,
                fp.loss_curve,
                metrics,
            )
        return ModelOutcome(
            p.name,
            "ok",
            rmse(predictions, split.y_test),
            predictions,
            elapsed,
            reason,
            fp.loss_curve,
            metrics,
        )
    except Exception as exc:
        return _failure(p.name, exc, time.perf_counter() - t0)


def _lazy_measures(tracker: Any, net: Any, n_sub: int) -> dict[str, Any]:
    measures = tracker.measure(net)
    out: dict[str, Any] = {"ntk_subsample": n_sub}
    for key, value in measures.items():
        if isinstance(value, list):
            out[key] = [float(v) if math.isfinite(v) else None for v in value]
        else:
            out[key] = float(value) if math.isfinite(value) else None
    return out


def _fit_network_unit(
    config: StudyConfig,
    model: NetworkModelConfig,
    index: int,
    split: Any,
    data_seed: int,
    names: Sequence[str],
) -> list[ModelOutcome]:
    """Train one network and compute its requested ``@`` predictors.

    Before training: the initial function f_0 on all points, the empirical
    NTK on all points (for an ``eNTK`` predictor) and Θ_0 on the lazy
    subsample; the stability bound is checked. After training: the network's
    outcome with its lazy measures, then each predictor's outcome. Returns
    the outcomes of the models in ``names`` (the network and/or predictors).
    """
    import torch

    from ntkeq.equivalence import LazyTracker, ntk_subsample
    from ntkeq.networks import empirical_ntk
    from ntkeq.study.config import EMPIRICAL_KERNEL
    from ntkeq.training import split_validation, train

    predictors = [p for p in config.predictors_of(model.name) if p.name in names]
    want_network = model.name in names
    t0 = time.perf_counter()
    # writable copies: the cached split is read-only and torch.as_tensor
    # warns on read-only arrays it would share
    X_train = np.array(split.X_train)
    X_test = np.array(split.X_test)
    y_train = np.array(split.y_train)
    X_all = np.concatenate([X_train, X_test])
    n_train = X_train.shape[0]
    try:
        seed = model_seed(config.seed, index, model.name)
        net, train_config = build_network(config, model, seed, X_train.shape[1])
        n_fit = split_validation(n_train, model.validation_split)[0]

        # before training
        first = next(net.parameters())
        f0_all = None
        if any(p.f0 for p in predictors):
            with torch.no_grad():
                x = torch.as_tensor(X_all, dtype=first.dtype, device=first.device)
                f0_all = net(x).detach().cpu().numpy().astype(np.float64).reshape(-1)
        entk = None
        if any(p.kernel == EMPIRICAL_KERNEL for p in predictors):
            entk = empirical_ntk(net, X_all, dtype="float64")
        tracker = None
        sub = np.empty(0, dtype=np.int64)
        if want_network:
            sub = ntk_subsample(X_train[:n_fit], config.ntk_subsample, seed=data_seed)
            tracker = LazyTracker(net, X_train[sub])
        notes = []
        try:
            message = stability_message(
                config, model, X_train[:n_fit], data_seed, X_all
            )
        except Exception as exc:  # the bound is advisory
            message = ""
            logger.info("stability bound of %s not computed: %s", model.name, exc)
        if message:
            warnings.warn(message, StabilityWarning, stacklevel=2)
            notes.append(message)
    except Exception as exc:
        return [_failure(n, exc, time.perf_counter() - t0) for n in names]

    # training
    out: list[ModelOutcome] = []
    curve = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(net, X_train, y_train, train_config, X_eval=X_test)
        elapsed = time.perf_counter() - t0
        raw = result.predictions
        predictions = (
            None if raw is None else np.asarray(raw, dtype=np.float64).reshape(-1)
        )
        raw_curve = getattr(result, "loss_curve", None)
        curve = None if raw_curve is None else np.asarray(raw_curve, dtype=np.float64)
        reason = "; ".join(
            s
            for s in (
                str(getattr(result, "reason", "") or ""),
                _warning_text(caught),
                *notes,
            )
            if s
        )
        status = str(result.status)
        ok = (
            status == "ok"
            and predictions is not None
            and bool(np.all(np.isfinite(predictions)))
        )
        if status == "ok" and not ok:
            status, reason = "diverged", "non-finite predictions; " + reason
        value = (
            rmse(predictions, split.y_test) if ok and predictions is not None else None
        )
        if not ok:
            logger.warning(
                "model %s trial %d %s: %s", model.name, index, status, reason
            )
        metrics: dict[str, Any] = {}
        if tracker is not None and ok:
            try:
                metrics = _lazy_measures(tracker, net, len(sub))
            except Exception as exc:
                logger.warning("lazy measures of %s failed: %s", model.name, exc)
        if want_network:
            out.append(
                ModelOutcome(
                    model.name, status, value, predictions, elapsed, reason, curve,
                    metrics,
                )
            )  # fmt: skip
    except Exception as exc:
        if want_network:
            out.append(_failure(model.name, exc, time.perf_counter() - t0))

    # the kernel predictors of the same training
    for p in predictors:
        out.append(
            _fit_predictor(
                config,
                p,
                data_seed,
                split,
                X_all,
                n_fit,
                train_config,
                f0_all,
                entk if p.kernel == EMPIRICAL_KERNEL else None,
                curve,
            )
        )
    return out


_BLAS_CONTROLLER: list[Any] = []


def _single_thread_blas() -> contextlib.AbstractContextManager[Any]:
    """Limit the BLAS libraries of NumPy and SciPy to one thread while active.

    Uses threadpoolctl (a scikit-learn dependency); PyTorch's own thread
    pool is not a BLAS library threadpoolctl controls and is left alone.
    """
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scikit-learn brings it
            _BLAS_CONTROLLER.append(None)
        else:
            import scipy.linalg  # noqa: F401  (loads SciPy's BLAS to be found)

            _BLAS_CONTROLLER.append(ThreadpoolController())
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def run_trial(
    config: StudyConfig, index: int, models: Sequence[str] | None = None
) -> TrialResult:
    """Run trial ``index`` of a study for ``models`` (default: all of them).

    Implements one trial of the paper's Section 4.1 procedure: draw the data
    (design and responses from the generator kernel), fit every kernel by
    ridgeless kernel regression on all training points and every network by
    SGD on its training part (less the validation hold-out), and score each
    by test RMSE. An exception in one model is recorded as ``"failed"`` and
    does not stop the others. Each ``@`` predictor is computed with its
    network (the network is trained even when only its predictor is asked
    for, e.g. on resume); networks also get lazy-training measures.

    Parameters
    ----------
    config : StudyConfig
        The validated study.
    index : int
        Trial index, 0 <= index < config.trials.
    models : sequence of str, optional
        Names of the models to fit; a subset of ``config.model_names``.

    Returns
    -------
    TrialResult
        The data seed, the test targets (n_test,) and one
        :class:`ModelOutcome` per model, in the configured order.
    """
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise TypeError(f"index must be an integer, got {index!r}")
    if not 0 <= int(index) < config.trials:
        raise ValueError(
            f"index = {index} is out of range; must be in [0, {config.trials})"
        )
    index = int(index)
    names = config.model_names if models is None else tuple(models)
    for name in names:
        config.model(name)  # raises ConfigError for an unknown name
    if not names:
        raise ConfigError("run_trial needs at least one model")
    chosen = [m for m in config.models if m.name in names]

    with _single_thread_blas():
        return _run_trial(config, index, names, chosen)


def _run_trial(
    config: StudyConfig,
    index: int,
    names: Sequence[str],
    chosen: Sequence[Any],
) -> TrialResult:
    # data
    seed = trial_seed(config.seed, index)
    split = _split(config, seed)
    y_test = np.array(split.y_test, dtype=np.float64)

    # kernels share one Gram computation; networks train one by one, each
    # with its @ predictors (they need the network's initialization)
    outcomes: dict[str, ModelOutcome] = {}
    kernel_models = [m for m in chosen if isinstance(m, KernelModelConfig)]
    if kernel_models:
        for o in _fit_kernels(config, kernel_models, split, seed):
            outcomes[o.model] = o
    for m in config.models:
        if not isinstance(m, NetworkModelConfig):
            continue
        unit = [m.name] if m.name in names else []
        unit += [p.name for p in config.predictors_of(m.name) if p.name in names]
        if unit:
            logger.info("trial %d: training %s for %s", index, m.name, unit)
            for o in _fit_network_unit(config, m, index, split, seed, unit):
                outcomes[o.model] = o

    return TrialResult(index, seed, y_test, tuple(outcomes[m.name] for m in chosen))
