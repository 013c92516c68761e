"""Tests of ntkeq.data: the simulation's steps, the sampler, the real data set."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import scipy.linalg

from ntkeq.data import (
    Split,
    load_diabetes_split,
    sample_normal,
    simulate,
    split_sizes,
)


def rbf(X1: np.ndarray, X2: np.ndarray | None = None) -> np.ndarray:
    """Gaussian kernel exp(-|x - x'|^2 / 2), positive definite on distinct points."""
    X2 = X1 if X2 is None else X2
    sq = np.sum(X1**2, 1)[:, None] + np.sum(X2**2, 1)[None, :] - 2 * X1 @ X2.T
    return np.exp(-0.5 * np.maximum(sq, 0.0))


def rbf_ridge(X1: np.ndarray, X2: np.ndarray | None = None) -> np.ndarray:
    """RBF plus 0.1 on the diagonal of a square Gram: well conditioned."""
    K = rbf(X1, X2)
    return K + 0.1 * np.eye(len(X1)) if X2 is None else K


def indefinite(X1: np.ndarray, X2: np.ndarray | None = None) -> np.ndarray:
    """A symmetric kernel that is not positive semi-definite: -|x - x'|^2."""
    X2 = X1 if X2 is None else X2
    return -(np.sum(X1**2, 1)[:, None] + np.sum(X2**2, 1)[None, :] - 2 * X1 @ X2.T)


# --------------------------------------------------------------------------
# split sizes


def test_split_sizes_published() -> None:
    assert split_sizes(1000) == (670, 330)
    assert split_sizes(1000, 0.33) == (670, 330)
    assert split_sizes(100) == (67, 33)
    assert split_sizes(10, 0.5) == (5, 5)


@pytest.mark.parametrize(
    ("n_obs", "fraction", "error"),
    [
        (1, 0.3, ValueError),
        (10, 0.0, ValueError),
        (10, 1.0, ValueError),
        (10, 0.001, ValueError),  # rounds to 0 %
        (10, float("nan"), ValueError),
        (10, "0.3", TypeError),
        (2.5, 0.3, TypeError),
    ],
)
def test_split_sizes_bad(n_obs: Any, fraction: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        split_sizes(n_obs, fraction)


# --------------------------------------------------------------------------
# simulate


def test_simulate_default_shapes_and_norms() -> None:
    s = simulate(kernel=rbf_ridge, seed=3)
    assert isinstance(s, Split)
    assert (s.n_train, s.n_test, s.d_in) == (670, 330, 15)
    assert s.X_train.shape == (670, 15) and s.X_test.shape == (330, 15)
    assert s.y_train.shape == (670,) and s.y_test.shape == (330,)
    assert s.X.dtype == np.float64 and s.y.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(s.X, axis=1), 1.0, rtol=0, atol=1e-12)
    # the indices partition the rows and index the full arrays
    both = np.concatenate([s.train_index, s.test_index])
    np.testing.assert_array_equal(np.sort(both), np.arange(1000))
    np.testing.assert_array_equal(s.X[s.train_index], s.X_train)
    np.testing.assert_array_equal(s.y[s.test_index], s.y_test)
    assert s.sampling == "cholesky" and s.n_clipped == 0 and s.jitter == 0.0


def test_simulate_documented_order() -> None:
    """The draws are uniform inputs, normals for y, then the permutation."""
    s = simulate(n_obs=40, d_in=4, low=-1.0, high=2.0, kernel=rbf_ridge, seed=11)
    rng = np.random.default_rng(11)
    X = rng.uniform(-1.0, 2.0, size=(40, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.linalg.cholesky(rbf_ridge(X)) @ rng.standard_normal(40)
    perm = rng.permutation(40)
    np.testing.assert_array_equal(s.X, X)
    np.testing.assert_allclose(s.y, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(s.test_index, np.sort(perm[:13]))


def test_simulate_unnormalized_range() -> None:
    s = simulate(n_obs=50, d_in=3, kernel=rbf_ridge, normalize=False, seed=0)
    assert s.X.min() >= -5.0 and s.X.max() < 7.0
    assert not np.allclose(np.linalg.norm(s.X, axis=1), 1.0)


def test_simulate_reproducible_and_seed_dependent() -> None:
    a = simulate(n_obs=60, d_in=5, kernel=rbf_ridge, seed=7)
    b = simulate(n_obs=60, d_in=5, kernel=rbf_ridge, seed=7)
    c = simulate(n_obs=60, d_in=5, kernel=rbf_ridge, seed=8)
    for field in ("X", "y", "train_index", "test_index"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X, c.X)
    assert not np.array_equal(a.test_index, c.test_index)
    # a SeedSequence gives the same trial as the int seed it wraps
    d = simulate(n_obs=60, d_in=5, kernel=rbf_ridge, seed=np.random.SeedSequence(7))
    np.testing.assert_array_equal(a.y, d.y)
    # spawned children are independent trials
    kids = np.random.SeedSequence(0).spawn(2)
    e, f = (simulate(n_obs=60, d_in=5, kernel=rbf_ridge, seed=k) for k in kids)
    assert not np.array_equal(e.X, f.X)


def test_simulate_indefinite_kernel_reports_clipping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="ntkeq.data"):
        s = simulate(n_obs=30, d_in=3, kernel=indefinite, seed=0)
    assert s.sampling == "eigh"
    assert s.n_clipped > 0
    assert s.min_eigenvalue is not None and s.min_eigenvalue < 0
    assert any("clipped" in r.getMessage() for r in caplog.records)


def test_simulate_jitter_recorded() -> None:
    s = simulate(n_obs=20, d_in=3, kernel=rbf, seed=0, jitter=1e-6)
    assert s.jitter == 1e-6 and s.sampling == "cholesky"


def test_simulate_kernel_by_name_uses_kernels_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    def fake_kernel(name: str, variant: str = "exact", **params: Any) -> Any:
        seen.update(name=name, variant=variant, params=params)
        return rbf_ridge

    monkeypatch.setattr("ntkeq.kernels.kernel", fake_kernel)
    s = simulate(
        n_obs=20, kernel="NTKB2", variant="as-published", kernel_params={"beta": 2.0}
    )
    assert seen == {"name": "NTKB2", "variant": "as-published", "params": {"beta": 2.0}}
    assert s.X.shape == (20, 15)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_obs": 1}, ValueError),
        ({"n_obs": 10.0}, TypeError),
        ({"d_in": 0}, ValueError),
        ({"low": 1.0, "high": 1.0}, ValueError),
        ({"low": float("-inf")}, ValueError),
        ({"variant": "published"}, ValueError),
        ({"test_fraction": 1.5}, ValueError),
        ({"seed": -1}, ValueError),
        ({"seed": "0"}, TypeError),
        ({"normalize": 1}, TypeError),
        ({"kernel": 3}, TypeError),
        ({"kernel_params": {"a": 1}}, ValueError),
        ({"kernel": lambda A, B=None: np.ones((2, 2))}, ValueError),
        ({"jitter": -1.0}, ValueError),
    ],
)
def test_simulate_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    args: dict[str, Any] = {"n_obs": 10, "d_in": 2, "kernel": rbf_ridge}
    args.update(kwargs)
    with pytest.raises(error):
        simulate(**args)


# --------------------------------------------------------------------------
# sample_normal


def _check_covariance(samples: np.ndarray, K: np.ndarray) -> None:
    """Entries of the empirical covariance within 5 Monte Carlo standard errors.

    For zero-mean normal draws the estimate mean(y_i y_j) has variance
    (K_ii K_jj + K_ij^2) / N.
    """
    N = samples.shape[0]
    emp = samples.T @ samples / N
    se = np.sqrt((np.outer(np.diag(K), np.diag(K)) + K**2) / N)
    assert np.all(np.abs(emp - K) <= 5 * se + 1e-12), np.max(np.abs(emp - K) / se)


def test_sample_normal_cholesky_covariance() -> None:
    X = np.random.default_rng(0).normal(size=(5, 3))
    K = rbf_ridge(X)
    samples, info = sample_normal(K, seed=1, size=40_000)
    assert samples.shape == (40_000, 5)
    assert info.method == "cholesky" and info.min_eigenvalue is None
    _check_covariance(samples, K)


def test_sample_normal_eigh_on_singular_covariance() -> None:
    # rank 2 with an exactly zero second Cholesky pivot
    K = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    with pytest.raises(np.linalg.LinAlgError):
        scipy.linalg.cholesky(K, lower=True)
    samples, info = sample_normal(K, seed=2, size=40_000)
    assert info.method == "eigh" and info.n_clipped <= 1
    _check_covariance(samples, K)
    # Along the null direction (1, -1)/sqrt(2) eigh returns an eigenvalue of
    # roundoff size, |lam| <= 10 eps ||K||, so a draw differs there by at most
    # sqrt(2) sqrt(10 eps ||K||) |z| with |z| < 6 over these draws.
    bound = np.sqrt(2.0) * np.sqrt(10 * np.finfo(float).eps * 2.0) * 6.0
    assert np.max(np.abs(samples[:, 0] - samples[:, 1])) <= bound


def test_sample_normal_indefinite_clips() -> None:
    # eigenvalues -1 and 3: the clipped covariance is 1.5 * ones((2, 2))
    K = np.array([[1.0, 2.0], [2.0, 1.0]])
    samples, info = sample_normal(K, seed=0, size=20_000)
    assert info.method == "eigh" and info.n_clipped == 1
    assert info.min_eigenvalue == pytest.approx(-1.0, rel=1e-12)
    np.testing.assert_allclose(samples[:, 0], samples[:, 1], rtol=1e-12, atol=1e-12)
    _check_covariance(samples, np.full((2, 2), 1.5))


def test_sample_normal_same_stream_on_both_paths() -> None:
    """Both paths map the same standard normals, so a PSD draw is reproducible."""
    y_chol, _ = sample_normal(np.diag([4.0, 9.0]), seed=5)
    z = np.random.default_rng(5).standard_normal(2)
    np.testing.assert_allclose(y_chol, [2.0 * z[0], 3.0 * z[1]], rtol=1e-14)


@pytest.mark.parametrize(
    ("cov", "kwargs", "error"),
    [
        (np.ones((2, 3)), {}, ValueError),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), {}, ValueError),
        (np.eye(2), {"size": 0}, ValueError),
        (np.eye(2), {"jitter": float("inf")}, ValueError),
    ],
)
def test_sample_normal_bad(
    cov: np.ndarray, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        sample_normal(cov, seed=0, **kwargs)


# --------------------------------------------------------------------------
# diabetes


def test_diabetes_split() -> None:
    from sklearn.datasets import load_diabetes

    s = load_diabetes_split(seed=4)
    assert (s.n_train, s.n_test, s.d_in) == (296, 146, 10)
    assert s.sampling == "none"
    np.testing.assert_allclose(np.linalg.norm(s.X, axis=1), 1.0, atol=1e-12)
    # targets standardized with the training statistics only
    assert abs(s.y_train.mean()) < 1e-12
    assert s.y_train.std() == pytest.approx(1.0, rel=1e-12)
    assert abs(s.y_test.mean()) > 1e-6

    # independent recomputation of the documented steps
    X_raw, y_raw = load_diabetes(return_X_y=True, scaled=False)
    tr = s.train_index
    Z = (X_raw - X_raw[tr].mean(0)) / X_raw[tr].std(0)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    np.testing.assert_allclose(s.X, Z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        s.y, (y_raw - y_raw[tr].mean()) / y_raw[tr].std(), rtol=1e-12, atol=1e-12
    )
    again = load_diabetes_split(seed=4)
    np.testing.assert_array_equal(again.test_index, s.test_index)
    assert not np.array_equal(load_diabetes_split(seed=5).test_index, s.test_index)


def test_diabetes_bad_arguments() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        load_diabetes_split(test_fraction=0.0)
    with pytest.raises(TypeError, match="seed"):
        load_diabetes_split(seed=1.5)  # type: ignore[arg-type]
