"""Tests of ntkeq.regression: the dual solve, the estimator, the GD predictor."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
import scipy.linalg
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score

from ntkeq.regression import (
    KernelRegressor,
    NumericalWarning,
    gradient_descent_time,
    kernel_gd_predict,
    solve_dual,
    symmetric_eigh,
)


def linear(X1: np.ndarray, X2: np.ndarray | None = None) -> np.ndarray:
    return X1 @ (X1 if X2 is None else X2).T


def rbf(X1: np.ndarray, X2: np.ndarray | None = None) -> np.ndarray:
    X2 = X1 if X2 is None else X2
    sq = np.sum(X1**2, 1)[:, None] + np.sum(X2**2, 1)[None, :] - 2 * X1 @ X2.T
    return np.exp(-0.5 * np.maximum(sq, 0.0))


def data(n: int, d: int, m: int = 7, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sin(X @ rng.normal(size=d)) + 0.1 * rng.normal(size=n)
    return X, y, rng.normal(size=(m, d))


# --------------------------------------------------------------------------
# kernel regression


@pytest.mark.parametrize("ridge", [1e-3, 0.1, 1.0, 10.0])
@pytest.mark.parametrize(("n", "d"), [(30, 5), (8, 20)])
def test_linear_kernel_equals_ridge(ridge: float, n: int, d: int) -> None:
    X, y, X_test = data(n, d)
    ours = KernelRegressor(linear, ridge=ridge).fit(X, y)
    ref = Ridge(alpha=ridge, fit_intercept=False, solver="svd").fit(X, y)
    assert ours.solver_ == "cholesky"
    np.testing.assert_allclose(
        ours.predict(X_test), ref.predict(X_test), rtol=1e-9, atol=1e-10
    )


def test_ridgeless_full_rank_is_min_norm_interpolant() -> None:
    # n < d: K = X X^T is invertible and K* K^-1 y = X* pinv(X) y
    X, y, X_test = data(8, 20)
    model = KernelRegressor(linear).fit(X, y)
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(model.predict(X_test), X_test @ w, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(model.predict(X), y, rtol=1e-9, atol=1e-10)
    assert model.condition_number_ > 1.0


def test_singular_gram_falls_back_to_least_squares() -> None:
    # n > d: K = X X^T has rank d; the fit is the least-squares linear model
    X, y, X_test = data(30, 3)
    with pytest.warns(NumericalWarning, match=r"ridge >= "):
        model = KernelRegressor(linear).fit(X, y)
    assert model.solver_ == "lstsq"
    assert model.condition_number_ > 1e12
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(model.predict(X_test), X_test @ w, rtol=1e-8, atol=1e-9)


def test_indefinite_gram_warns_and_solves() -> None:
    K = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.warns(NumericalWarning, match="smallest eigenvalue -1"):
        alpha, info = solve_dual(K, [1.0, 0.0])
    assert info.solver == "lstsq" and info.rank == 2
    assert info.condition_number == pytest.approx(3.0, rel=1e-12)
    np.testing.assert_allclose(K @ alpha, [1.0, 0.0], atol=1e-12)


def test_ridge_cures_the_fallback() -> None:
    X, y, _ = data(30, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = KernelRegressor(linear, ridge=1e-6).fit(X, y)
    assert model.solver_ == "cholesky"


def test_gram_methods_match_fit_predict() -> None:
    X, y, X_test = data(25, 4)
    a = KernelRegressor(rbf, ridge=1e-3).fit(X, y)
    b = KernelRegressor(rbf, ridge=1e-3).fit_gram(rbf(X), y)
    np.testing.assert_allclose(b.dual_coef_, a.dual_coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        b.predict_gram(rbf(X_test, X)), a.predict(X_test), rtol=1e-12, atol=1e-12
    )
    alpha, info = solve_dual(rbf(X), y, ridge=1e-3)
    np.testing.assert_allclose(alpha, a.dual_coef_, rtol=1e-12, atol=1e-12)
    assert info.solver == "cholesky" and info.rank == 25
    with pytest.raises(ValueError, match="predict_gram"):
        b.predict(X_test)


def test_sklearn_api() -> None:
    X, y, _ = data(40, 3)
    model = KernelRegressor(rbf, ridge=0.1)
    assert model.get_params() == {"kernel": rbf, "ridge": 0.1}
    assert model.set_params(ridge=0.5) is model and model.ridge == 0.5
    copy = clone(model)
    assert copy is not model and copy.get_params()["ridge"] == 0.5
    assert not hasattr(copy, "dual_coef_")
    scores = cross_val_score(KernelRegressor(rbf, ridge=0.1), X, y, cv=4)
    assert scores.shape == (4,) and np.all(np.isfinite(scores))
    fitted = KernelRegressor(rbf, ridge=0.1).fit(X, y)
    assert fitted.score(X, y) > 0.9
    assert fitted.n_features_in_ == 3
    assert fitted.X_fit_ is not None and fitted.X_fit_.shape == (40, 3)


def test_kernel_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []

    def fake_kernel(name: str, variant: str = "exact", **params: Any) -> Any:
        names.append(f"{name}/{variant}")
        return rbf

    monkeypatch.setattr("ntkeq.kernels.kernel", fake_kernel)
    X, y, X_test = data(20, 3)
    model = KernelRegressor("NTKB1").fit(X, y)
    assert names == ["NTKB1/exact"] and model.kernel_ is rbf
    np.testing.assert_allclose(
        model.predict(X_test), KernelRegressor(rbf).fit(X, y).predict(X_test)
    )


@pytest.mark.parametrize(
    ("kernel", "ridge", "X", "y", "error"),
    [
        (linear, -1.0, np.ones((3, 2)), np.ones(3), ValueError),
        (linear, float("nan"), np.ones((3, 2)), np.ones(3), ValueError),
        (linear, "1", np.ones((3, 2)), np.ones(3), TypeError),
        (3, 0.0, np.ones((3, 2)), np.ones(3), TypeError),
        (linear, 0.0, np.ones(3), np.ones(3), ValueError),
        (linear, 0.0, np.full((3, 2), np.nan), np.ones(3), ValueError),
        (linear, 0.0, np.ones((3, 2)), np.ones(4), ValueError),
        (
            lambda A, B=None: np.ones((2, 2)),
            0.0,
            np.ones((3, 2)),
            np.ones(3),
            ValueError,
        ),
    ],
)
def test_fit_bad_inputs(
    kernel: Any, ridge: Any, X: np.ndarray, y: np.ndarray, error: type[Exception]
) -> None:
    with pytest.raises(error):
        KernelRegressor(kernel, ridge=ridge).fit(X, y)


def test_predict_bad_inputs() -> None:
    X, y, _ = data(10, 3)
    with pytest.raises(NotFittedError):
        KernelRegressor(linear).predict(X)
    model = KernelRegressor(linear, ridge=1.0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match="K_test_train"):
        model.predict_gram(np.ones((2, 9)))
    with pytest.raises(ValueError, match="K_train"):
        solve_dual(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="y"):
        solve_dual(np.eye(2), np.ones(3))


# --------------------------------------------------------------------------
# gradient-descent time


def test_gradient_descent_time() -> None:
    assert gradient_descent_time(0.002, 3000, 469, 8) == (0.004 / 469, 3000 * 59)
    assert gradient_descent_time(0.1, 5, 10) == (0.02, 5)
    assert gradient_descent_time(0.1, 2, 10, 3) == (0.02, 8)
    assert gradient_descent_time(0.1, 0, 10, 3)[1] == 0
    for kwargs, error in [
        ({"learning_rate": 0.0}, ValueError),
        ({"epochs": -1}, ValueError),
        ({"epochs": 1.5}, TypeError),
        ({"n_train": 0}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"batch_size": True}, TypeError),
    ]:
        args: dict[str, Any] = {"learning_rate": 0.1, "epochs": 1, "n_train": 10}
        args.update(kwargs)
        with pytest.raises(error):
            gradient_descent_time(**args)


def test_sgd_step_mean_is_gradient_descent_step() -> None:
    """Averaging a batch-B SGD step over all batches gives eta = 2 lr / n."""
    n, B, lr = 6, 2, 0.05
    X, y, _ = data(n, 3)
    w = np.random.default_rng(1).normal(size=3)
    mean_step = np.zeros(3)
    batches = list(itertools.combinations(range(n), B))
    for S in batches:
        Xs = X[list(S)]
        mean_step += lr * (2.0 / B) * Xs.T @ (Xs @ w - y[list(S)])
    mean_step /= len(batches)
    full_step = lr * (2.0 / n) * X.T @ (X @ w - y)
    np.testing.assert_allclose(mean_step, full_step, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------
# the finite-time predictor


def test_gd_predictor_equals_linear_model_gradient_descent() -> None:
    """A linear model is its own linearization: its GD is kernel GD exactly."""
    X, y, X_test = data(12, 5)
    lr = 0.05
    w0 = np.random.default_rng(3).normal(size=5)
    record = [0, 1, 7, 50]
    out = kernel_gd_predict(
        linear(X),
        linear(X_test, X),
        y,
        learning_rate=lr,
        steps=record,
        f0_train=X @ w0,
        f0_test=X_test @ w0,
    )
    w = w0.copy()
    for t in range(max(record) + 1):
        if t in record:
            i = record.index(t)
            np.testing.assert_allclose(out.test[i], X_test @ w, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(out.train[i], X @ w, rtol=1e-10, atol=1e-12)
            assert out.train_loss[i] == pytest.approx(np.mean((X @ w - y) ** 2), 1e-10)
        w = w - lr * (2.0 / len(y)) * X.T @ (X @ w - y)
    assert out.test.shape == (4, 7) and out.train.shape == (4, 12)
    assert out.eta == pytest.approx(2 * lr / 12) and not out.flow


def test_gd_predictor_infinite_time_is_ridgeless_regression() -> None:
    X, y, X_test = data(30, 3)
    out = kernel_gd_predict(rbf(X), rbf(X_test, X), y, learning_rate=0.1)
    ref = KernelRegressor(rbf).fit(X, y)
    assert ref.solver_ == "cholesky"
    np.testing.assert_allclose(out.test[0], ref.predict(X_test), rtol=1e-7, atol=1e-8)
    assert out.train_loss[0] == 0.0
    # and from a non-zero start: f0(x*) + K* K^-1 (y - f0(X))
    f0, f0_test = np.cos(X[:, 0]), np.cos(X_test[:, 0])
    out = kernel_gd_predict(
        rbf(X),
        rbf(X_test, X),
        y,
        learning_rate=0.1,
        steps=np.inf,
        f0_train=f0,
        f0_test=f0_test,
    )
    expect = f0_test + KernelRegressor(rbf).fit(X, y - f0).predict(X_test)
    np.testing.assert_allclose(out.test[0], expect, rtol=1e-7, atol=1e-8)


def test_gd_predictor_flow_matches_matrix_exponential() -> None:
    X, y, X_test = data(10, 3)
    K, K_star = rbf(X), rbf(X_test, X)
    lr, times = 0.3, [0.0, 2.5, 40.0]
    out = kernel_gd_predict(K, K_star, y, learning_rate=lr, times=times)
    eta = 2 * lr / 10
    for i, t in enumerate(times):
        decay = scipy.linalg.expm(-eta * t * K)
        expect = K_star @ np.linalg.solve(K, (np.eye(10) - decay) @ y)
        np.testing.assert_allclose(out.test[i], expect, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(out.train[i], y - decay @ y, rtol=1e-9, atol=1e-12)
    assert out.flow
    assert np.all(np.diff(out.train_loss) < 0)


def test_gd_predictor_zero_eigenvalue_limit() -> None:
    """Along a null direction the test prediction grows linearly, t eta."""
    K = np.diag([2.0, 0.0])
    K_star = np.array([[0.0, 1.0]])
    y = np.array([1.0, 1.0])
    lr, steps = 0.1, [0, 3, 10]
    out = kernel_gd_predict(K, K_star, y, learning_rate=lr, steps=steps)
    eta = 2 * lr / 2
    f, f_star = np.zeros(2), 0.0
    for t in range(11):
        if t in steps:
            assert out.test[steps.index(t), 0] == pytest.approx(f_star, rel=1e-12)
            np.testing.assert_allclose(out.train[steps.index(t)], f, rtol=1e-12)
        r = f - y
        f, f_star = f - eta * K @ r, f_star - eta * float((K_star @ r)[0])


def test_gd_predictor_epochs_and_n_train_fit() -> None:
    X, y, X_test = data(10, 3)
    K, K_star = rbf(X), rbf(X_test, X)
    a = kernel_gd_predict(K, K_star, y, learning_rate=0.2, epochs=[1, 2], batch_size=3)
    b = kernel_gd_predict(K, K_star, y, learning_rate=0.2, steps=[4, 8])
    np.testing.assert_array_equal(a.steps, [4.0, 8.0])
    np.testing.assert_allclose(a.test, b.test, rtol=1e-14)
    c = kernel_gd_predict(K, K_star, y, learning_rate=0.2, steps=5, n_train_fit=7)
    d = kernel_gd_predict(K[:7, :7], K_star[:, :7], y[:7], learning_rate=0.2, steps=5)
    np.testing.assert_allclose(c.test, d.test, rtol=1e-14)
    assert c.eta == pytest.approx(2 * 0.2 / 7)


def test_gd_predictor_warnings() -> None:
    X, y, X_test = data(10, 3)
    with pytest.warns(NumericalWarning, match="diverges"):
        kernel_gd_predict(rbf(X), rbf(X_test, X), y, learning_rate=100.0, steps=3)
    K = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.warns(NumericalWarning, match="indefinite"):
        out = kernel_gd_predict(K, K, [1.0, 0.0], learning_rate=0.1, steps=[1, np.inf])
    np.testing.assert_allclose(out.test[1], [1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"learning_rate": 0.0}, ValueError),
        ({"learning_rate": -0.1}, ValueError),
        ({"steps": 1, "times": 1.0}, ValueError),
        ({"steps": 1.5}, ValueError),
        ({"steps": -1}, ValueError),
        ({"times": float("nan")}, ValueError),
        ({"batch_size": 2}, ValueError),
        ({"epochs": np.inf}, ValueError),
        ({"n_train_fit": 0}, ValueError),
        ({"n_train_fit": 2.0}, TypeError),
        ({"f0_train": np.ones(3)}, ValueError),
        ({"f0_test": np.ones(3)}, ValueError),
        ({"K_test_train": np.ones((2, 3))}, ValueError),
        ({"K_train": np.ones((4, 3))}, ValueError),
        ({"y_train": np.ones(3)}, ValueError),
    ],
)
def test_gd_predictor_bad_inputs(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    args: dict[str, Any] = {
        "K_train": np.eye(4),
        "K_test_train": np.ones((2, 4)),
        "y_train": np.ones(4),
        "learning_rate": 0.1,
    }
    args.update(kwargs)
    K, K_star, y = args.pop("K_train"), args.pop("K_test_train"), args.pop("y_train")
    with pytest.raises(error):
        kernel_gd_predict(K, K_star, y, **args)


# --------------------------------------------------------------------------
# a precomputed eigendecomposition


def _psd(n: int, seed: int) -> np.ndarray:
    A = np.random.default_rng(seed).normal(size=(n, n + 2))
    return A @ A.T / n


@pytest.mark.parametrize("n_fit", [None, 7])
def test_kernel_gd_predict_with_eigh_equals_plain_call(n_fit: int | None) -> None:
    K_all = _psd(13, 0)
    K, K_star = K_all[:10, :10], K_all[10:, :10]
    rng = np.random.default_rng(1)
    y, f0_tr, f0_te = rng.normal(size=10), rng.normal(size=10), rng.normal(size=3)
    n = 10 if n_fit is None else n_fit
    kw: dict[str, Any] = {
        "learning_rate": 0.3,
        "steps": [0, 1, 5, 40, np.inf],
        "n_train_fit": n_fit,
        "f0_train": f0_tr,
        "f0_test": f0_te,
    }
    plain = kernel_gd_predict(K, K_star, y, **kw)
    given = kernel_gd_predict(K, K_star, y, eigh=symmetric_eigh(K[:n, :n]), **kw)
    # the same decomposition either way: equal to rounding (rtol 1e-12)
    np.testing.assert_allclose(given.test, plain.test, rtol=1e-12)
    np.testing.assert_allclose(given.train, plain.train, rtol=1e-12)
    np.testing.assert_allclose(given.train_loss, plain.train_loss, rtol=1e-12)


def test_kernel_gd_predict_rejects_bad_eigh() -> None:
    K = _psd(4, 2)
    lam, V = symmetric_eigh(K)
    kw: dict[str, Any] = {"learning_rate": 0.1, "steps": 3}
    with pytest.raises(TypeError, match="eigh must be a pair"):
        kernel_gd_predict(K, K, np.ones(4), eigh=lam, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eigenvalues"):
        kernel_gd_predict(K, K, np.ones(4), eigh=(lam[:3], V), **kw)
    with pytest.raises(ValueError, match="eigenvectors"):
        kernel_gd_predict(K, K, np.ones(4), eigh=(lam, V[:, :3]), **kw)
    with pytest.raises(ValueError, match="ascending"):
        kernel_gd_predict(K, K, np.ones(4), eigh=(lam[::-1], V), **kw)
    with pytest.raises(ValueError, match="eigenvalues"):
        kernel_gd_predict(
            K, K, np.ones(4), eigh=(lam, V), n_train_fit=3, **kw
        )  # the block is 3 x 3


def test_symmetric_eigh_decomposes_the_symmetric_part() -> None:
    A = np.random.default_rng(3).normal(size=(6, 6))
    lam, V = symmetric_eigh(A)
    np.testing.assert_allclose((V * lam) @ V.T, 0.5 * (A + A.T), rtol=0, atol=1e-12)
    np.testing.assert_allclose(V.T @ V, np.eye(6), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="square"):
        symmetric_eigh(np.ones((2, 3)))
