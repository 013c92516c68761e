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
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ntkeq.study.config import (
    ConfigError,
    KernelModelConfig,
    NetworkModelConfig,
    StudyConfig,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ModelOutcome",
    "TrialResult",
    "model_seed",
    "resolve_device",
    "rmse",
    "run_trial",
    "trial_seed",
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
        A network's (epoch, training loss) pairs.
    """

    model: str
    status: str
    rmse: float | None
    predictions: np.ndarray | None
    fit_time: float
    reason: str = ""
    loss_curve: np.ndarray | None = None


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


def _split(config: StudyConfig, seed: int) -> Any:
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


def _kernel_grams(
    config: StudyConfig, models: Sequence[KernelModelConfig], X: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, BaseException]]:
    """Gram matrices (n_obs, n_obs) of every kernel model on all points X.

    Models with default hyperparameters share one :func:`gram_many` call per
    variant (which shares the layer recursions between depths); a model with
    its own ``params`` is computed alone. Returns the Grams, each model's
    share of the time, and the exceptions of models whose Gram failed.
    """
    from ntkeq import kernels

    grams: dict[str, np.ndarray] = {}
    times: dict[str, float] = {}
    errors: dict[str, BaseException] = {}

    shared: dict[str, list[KernelModelConfig]] = {}
    for m in models:
        if m.params:
            t0 = time.perf_counter()
            try:
                k = kernels.kernel(
                    m.kernel, variant=config.model_variant(m), **m.params
                )
                grams[m.name] = k(X)
            except Exception as exc:
                errors[m.name] = exc
            times[m.name] = time.perf_counter() - t0
        else:
            shared.setdefault(config.model_variant(m), []).append(m)

    for variant, group in shared.items():
        names = list(dict.fromkeys(m.kernel for m in group))
        t0 = time.perf_counter()
        try:
            by_kernel = kernels.gram_many(names, X, variant=variant)
        except Exception as exc:
            for m in group:
                errors[m.name] = exc
            by_kernel = {}
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
) -> list[ModelOutcome]:
    from ntkeq.regression import solve_dual

    n_train = len(split.y_train)
    X = np.concatenate([np.asarray(split.X_train), np.asarray(split.X_test)])
    y_train = np.asarray(split.y_train, dtype=np.float64)
    y_test = np.asarray(split.y_test, dtype=np.float64)
    grams, times, errors = _kernel_grams(config, models, X)

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


def _fit_network(
    config: StudyConfig, model: NetworkModelConfig, index: int, split: Any
) -> ModelOutcome:
    from ntkeq.training import train

    t0 = time.perf_counter()
    try:
        X_train = np.asarray(split.X_train)
        seed = model_seed(config.seed, index, model.name)
        net, train_config = build_network(config, model, seed, X_train.shape[1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(
                net, X_train, split.y_train, train_config, X_eval=split.X_test
            )
        elapsed = time.perf_counter() - t0
        raw = result.predictions
        predictions = (
            None if raw is None else np.asarray(raw, dtype=np.float64).reshape(-1)
        )
        curve = getattr(result, "loss_curve", None)
        curve = None if curve is None else np.asarray(curve, dtype=np.float64)
        reason = "; ".join(
            s
            for s in (str(getattr(result, "reason", "") or ""), _warning_text(caught))
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
        return ModelOutcome(
            model.name, status, value, predictions, elapsed, reason, curve
        )
    except Exception as exc:
        return _failure(model.name, exc, time.perf_counter() - t0)


def run_trial(
    config: StudyConfig, index: int, models: Sequence[str] | None = None
) -> TrialResult:
    """Run trial ``index`` of a study for ``models`` (default: all of them).

    Implements one trial of the paper's Section 4.1 procedure: draw the data
    (design and responses from the generator kernel), fit every kernel by
    ridgeless kernel regression on all training points and every network by
    SGD on its training part (less the validation hold-out), and score each
    by test RMSE. An exception in one model is recorded as ``"failed"`` and
    does not stop the others.

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

    # data
    seed = trial_seed(config.seed, index)
    split = _split(config, seed)
    y_test = np.asarray(split.y_test, dtype=np.float64)

    # kernels share one Gram computation; networks train one by one
    outcomes: dict[str, ModelOutcome] = {}
    kernel_models = [m for m in chosen if isinstance(m, KernelModelConfig)]
    if kernel_models:
        for o in _fit_kernels(config, kernel_models, split):
            outcomes[o.model] = o
    for m in chosen:
        if isinstance(m, NetworkModelConfig):
            logger.info("trial %d: training %s", index, m.name)
            outcomes[m.name] = _fit_network(config, m, index, split)

    return TrialResult(index, seed, y_test, tuple(outcomes[m.name] for m in chosen))
