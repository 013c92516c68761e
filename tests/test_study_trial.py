"""In-process caches of a trial: data splits and fitting-block eigendecompositions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from ntkeq import data, kernels, regression
from ntkeq.equivalence import finite_time_ntk_prediction
from ntkeq.study import trial as trial_module
from ntkeq.study.config import StudyConfig, config_from_dict
from ntkeq.study.trial import (
    _closed_form_eigh,
    _closed_form_gram,
    _make_split,
    _split,
    clear_gram_cache,
    clear_split_cache,
    run_trial,
    stability_bound,
    stability_message,
    trial_seed,
    trial_split,
)
from ntkeq.training import TrainConfig

# the cached and the uncached path do the same float64 arithmetic
RTOL = 1e-12


def _cfg(
    width: int = 16, seed: int = 5, n_obs: int = 40, learning_rate: float = 0.05
) -> StudyConfig:
    return config_from_dict(
        {
            "trials": 2,
            "seed": seed,
            "device": "cpu",
            "dtype": "float64",
            "ntk_subsample": 8,
            "data": {"n_obs": n_obs, "d_in": 3, "test_fraction": 0.25},
            "models": [
                {
                    "name": "NN1",
                    "width": width,
                    "parameterization": "ntkj",
                    "learning_rate": learning_rate,
                    "epochs": 4,
                    "batch_size": "full",
                    "validation_split": 0.25,
                },
                {"name": "NTKJ1"},
                {"name": "NTKJ1@NN1"},
            ],
        }
    )


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    clear_gram_cache()
    clear_split_cache()
    yield
    clear_gram_cache()
    clear_split_cache()


def test_split_cache_returns_identical_read_only_data() -> None:
    cfg = _cfg()
    seed = trial_seed(cfg.seed, 0)
    first = _split(cfg, seed)
    assert _split(cfg, seed) is first
    fresh = _make_split(cfg, seed)
    for name in ("X_train", "X_test", "y_train", "y_test", "X", "y"):
        cached = getattr(first, name)
        assert not cached.flags.writeable
        np.testing.assert_array_equal(cached, getattr(fresh, name))


def test_trial_split_is_the_data_the_trial_uses() -> None:
    cfg = _cfg()
    split = trial_split(cfg, 1)
    assert split is _split(cfg, trial_seed(cfg.seed, 1))
    result = run_trial(cfg, 1, models=["NTKJ1"])
    np.testing.assert_array_equal(result.y_test, split.y_test)
    # ridgeless NTKJ1 on these training points reproduces the stored RMSE
    k = kernels.kernel("NTKJ1")
    fit = regression.KernelRegressor(k).fit(split.X_train, split.y_train)
    rmse = np.sqrt(np.mean((fit.predict(split.X_test) - split.y_test) ** 2))
    assert result.outcomes[0].rmse == pytest.approx(rmse, rel=1e-9)
    assert not np.array_equal(trial_split(cfg, 0).y_test, split.y_test)


def test_split_cache_is_keyed_by_seed_and_data_config() -> None:
    cfg = _cfg()
    seed = trial_seed(cfg.seed, 0)
    first = _split(cfg, seed)
    other_seed = _split(cfg, trial_seed(cfg.seed, 1))
    assert not np.array_equal(other_seed.y, first.y)
    bigger = _split(_cfg(n_obs=44), seed)
    assert bigger.X.shape[0] == 44
    # a different width leaves the data config, and so the split, unchanged
    assert _split(_cfg(width=64), seed) is first
    clear_split_cache()
    assert _split(cfg, seed) is not first


def test_split_is_simulated_once_across_units_and_widths(monkeypatch: Any) -> None:
    calls = []
    real = data.simulate

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["seed"])
        return real(**kwargs)

    monkeypatch.setattr(data, "simulate", counting)
    eighs = []
    real_eigh = regression.symmetric_eigh

    def counting_eigh(K: Any) -> Any:
        eighs.append(np.shape(K))
        return real_eigh(K)

    monkeypatch.setattr(regression, "symmetric_eigh", counting_eigh)
    for width in (16, 32):
        cfg = _cfg(width=width)
        run_trial(cfg, 0)
        run_trial(cfg, 0, ["NN1"])
        run_trial(cfg, 0, ["NTKJ1@NN1"])
    assert calls == [trial_seed(5, 0)]
    # one decomposition of the NTKJ1 fitting block for the bound and the
    # predictor, at both widths
    assert len(eighs) == 1


def test_closed_form_eigh_is_the_block_decomposition() -> None:
    cfg = _cfg()
    seed = trial_seed(cfg.seed, 0)
    split = _split(cfg, seed)
    X_all = np.concatenate([split.X_train, split.X_test])
    n_fit = 20
    lam, V = _closed_form_eigh(cfg, seed, "NTKJ1", "exact", {}, X_all, n_fit)
    assert not lam.flags.writeable and not V.flags.writeable
    assert _closed_form_eigh(cfg, seed, "NTKJ1", "exact", {}, X_all, n_fit)[0] is lam
    K = kernels.kernel("NTKJ1", variant="exact")(X_all)
    np.testing.assert_allclose(
        _closed_form_gram(cfg, seed, "NTKJ1", "exact", {}, X_all), K, rtol=RTOL
    )
    np.testing.assert_allclose((V * lam) @ V.T, K[:n_fit, :n_fit], rtol=0, atol=1e-12)
    assert stability_bound(eigenvalues=lam) == pytest.approx(
        stability_bound(K[:n_fit, :n_fit]), rel=RTOL
    )


def test_cached_eigh_predictions_equal_uncached() -> None:
    cfg = _cfg()
    seed = trial_seed(cfg.seed, 0)
    split = _split(cfg, seed)
    X_all = np.concatenate([split.X_train, split.X_test])
    n, n_fit = split.n_train, 22
    K = _closed_form_gram(cfg, seed, "NTKJ1", "exact", {}, X_all)
    eigh = _closed_form_eigh(cfg, seed, "NTKJ1", "exact", {}, X_all, n_fit)
    schedule = TrainConfig(learning_rate=0.5, epochs=7, batch_size=None)
    args = (K[:n, :n], K[n:, :n], split.y_train, schedule)
    rng = np.random.default_rng(0)
    f0 = {"f0_train": rng.normal(size=n), "f0_test": rng.normal(size=K.shape[0] - n)}
    plain = finite_time_ntk_prediction(*args, n_fit=n_fit, loss_epochs=[0, 3], **f0)
    cached = finite_time_ntk_prediction(
        *args, n_fit=n_fit, loss_epochs=[0, 3], eigh=eigh, **f0
    )
    np.testing.assert_allclose(cached.predictions, plain.predictions, rtol=RTOL)
    np.testing.assert_allclose(cached.loss_curve, plain.loss_curve, rtol=RTOL)


def test_trial_predictor_matches_uncached_computation(monkeypatch: Any) -> None:
    cfg = _cfg()
    cached = run_trial(cfg, 1)
    clear_gram_cache()
    clear_split_cache()
    # the same trial with every eigendecomposition computed inside the solve
    monkeypatch.setattr(
        trial_module,
        "_closed_form_eigh",
        lambda *a: (np.array([1.0]), np.ones((1, 1))),
    )
    real = finite_time_ntk_prediction

    def without_eigh(*args: Any, eigh: Any = None, **kwargs: Any) -> Any:
        return real(*args, **kwargs)

    monkeypatch.setattr("ntkeq.equivalence.finite_time_ntk_prediction", without_eigh)
    plain = run_trial(cfg, 1)
    by_name = {o.model: o for o in plain.outcomes}
    for o in cached.outcomes:
        assert o.status == by_name[o.model].status == "ok"
        np.testing.assert_allclose(
            o.predictions, by_name[o.model].predictions, rtol=RTOL
        )


def test_stability_message_uses_cached_bound() -> None:
    cfg = _cfg(learning_rate=1e6)
    seed = trial_seed(cfg.seed, 0)
    split = _split(cfg, seed)
    X_all = np.concatenate([split.X_train, split.X_test])
    n_fit = 22
    network = cfg.model("NN1")
    with_cache = stability_message(cfg, network, X_all[:n_fit], seed, X_all)
    without = stability_message(cfg, network, X_all[:n_fit], seed)
    assert with_cache and with_cache == without


def test_stability_bound_bad_input() -> None:
    with pytest.raises(TypeError, match="exactly one"):
        stability_bound()
    with pytest.raises(TypeError, match="exactly one"):
        stability_bound(np.eye(2), eigenvalues=np.ones(2))
    with pytest.raises(ValueError, match="eigenvalues"):
        stability_bound(eigenvalues=np.ones((2, 2)))
    with pytest.raises(ValueError, match="eigenvalues"):
        stability_bound(eigenvalues=np.array([1.0, np.nan]))
    assert stability_bound(eigenvalues=np.array([-1.0, 0.0])) == np.inf
