"""Kernel regression and the finite-time kernel gradient-descent predictor.

Notation
--------
n           number of training points
K           (n, n) training Gram matrix K(X, X); Theta when it is an NTK
K_star      (m, n) Gram matrix K(X*, X) between m test and n training points
ridge       lambda >= 0 in (K + lambda I) alpha = y
alpha       (n,) dual coefficients; predictions are K_star @ alpha
lam, V      eigenvalues (ascending) and orthonormal eigenvectors of K
lr          learning rate of the network's (S)GD on L = (1/B) sum (f - y)^2
eta         step of gradient descent in function space, eta = 2 lr / n
t           number of gradient-descent steps (or gradient-flow time in steps)
f0          a network's function at initialization (default 0, its mean)

Kernel regression is the infinite-time limit of the equivalence theorem
(Arora et al., 2019, Theorem 3.2; Jacot et al., 2018, Section 5): a wide
network trained by gradient descent on the squared loss predicts
K_star K^{-1} y. :func:`kernel_gd_predict` gives the prediction after a
finite amount of the same training, Jacot et al. (2018), Section 5, in its
discrete-step form; ``docs/regression.md`` derives it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

__all__ = [
    "CHOLESKY_RCOND_MIN",
    "PINV_RTOL",
    "DualSolveInfo",
    "GDPrediction",
    "KernelRegressor",
    "NumericalWarning",
    "gradient_descent_time",
    "kernel_gd_predict",
    "solve_dual",
    "symmetric_eigh",
]

FloatArray = NDArray[np.float64]
KernelFn = Callable[..., Any]

EPS = float(np.finfo(np.float64).eps)

#: A Cholesky solve is accepted only when LAPACK's estimate of the reciprocal
#: 1-norm condition number of K + ridge I is at least this; below it the
#: solution has no reliable digit and the least-squares path is taken.
CHOLESKY_RCOND_MIN = EPS

#: Eigenvalues with ``|lam| <= PINV_RTOL * n * max|lam|`` count as zero in the
#: least-squares (pseudo-inverse) solve and in the gradient-descent predictor.
PINV_RTOL = EPS

#: Relative size of the ridge suggested when a solve falls back: the
#: suggested ridge makes the condition number at most 1 / SUGGESTED_RCOND.
SUGGESTED_RCOND = 1e-10


class NumericalWarning(UserWarning):
    """A linear-algebra step could not be done as asked and fell back."""


@dataclass(frozen=True)
class DualSolveInfo:
    """How :func:`solve_dual` solved (K + ridge I) alpha = y.

    Attributes
    ----------
    solver : str
        ``"cholesky"`` or ``"lstsq"`` (minimum-norm least squares through a
        symmetric eigendecomposition).
    condition_number : float
        Of K + ridge I: LAPACK's 1-norm estimate on the Cholesky path, the
        exact 2-norm value ``max|lam| / min|lam|`` on the least-squares path
        (``inf`` for a singular matrix).
    rank : int
        Number of eigenvalues kept (``n`` on the Cholesky path).
    ridge : float
        The ridge used.
    """

    solver: str
    condition_number: float
    rank: int
    ridge: float


# --------------------------------------------------------------------------
# argument checks


def _check_nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number >= 0, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite real number >= 0, got {value!r}")
    return value


def _as_matrix(
    name: str, value: ArrayLike, shape: tuple[int | None, int | None]
) -> FloatArray:
    A = np.asarray(value, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {A.shape}")
    for axis, want in enumerate(shape):
        if want is not None and A.shape[axis] != want:
            raise ValueError(
                f"{name} has shape {A.shape}; expected {want} along axis {axis}"
            )
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} must contain only finite values")
    return A


def _as_vector(name: str, value: ArrayLike, length: int) -> FloatArray:
    v = np.asarray(value, dtype=np.float64)
    if v.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must contain only finite values")
    return v


def _square(name: str, value: ArrayLike) -> FloatArray:
    K = _as_matrix(name, value, (None, None))
    if K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got {K.shape}")
    return K


# --------------------------------------------------------------------------
# the dual solve


def _eigh_sym(K: FloatArray) -> tuple[FloatArray, FloatArray]:
    lam, V = scipy.linalg.eigh(0.5 * (K + K.T), check_finite=False)
    return lam, V


def symmetric_eigh(K: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Eigendecomposition of the symmetric part (K + K^T) / 2 of a square matrix.

    The decomposition :func:`kernel_gd_predict` computes, exposed so that a
    caller can compute it once and pass it back as ``eigh=``.

    Parameters
    ----------
    K : array_like of shape (n, n)
        Finite square matrix.

    Returns
    -------
    lam : ndarray of shape (n,)
        Eigenvalues, ascending.
    V : ndarray of shape (n, n)
        Orthonormal eigenvectors, column ``i`` for ``lam[i]``.

    Examples
    --------
    >>> lam, V = symmetric_eigh(np.diag([2.0, 1.0]))
    >>> lam.tolist()
    [1.0, 2.0]
    """
    return _eigh_sym(_square("K", K))


def _check_eigh(eigh: Any, n: int) -> tuple[FloatArray, FloatArray]:
    """Validate a given eigendecomposition (lam (n,), V (n, n)) of an n x n block."""
    if not isinstance(eigh, tuple | list) or len(eigh) != 2:
        raise TypeError(
            f"eigh must be a pair (lam, V) of arrays, got {type(eigh).__name__}"
        )
    lam = _as_vector("eigh[0] (eigenvalues)", eigh[0], n)
    V = _as_matrix("eigh[1] (eigenvectors)", eigh[1], (n, n))
    if np.any(np.diff(lam) < 0):
        raise ValueError("eigh[0] (eigenvalues) must be in ascending order")
    return lam, V


def _cutoff(lam: FloatArray) -> float:
    return PINV_RTOL * lam.shape[0] * float(np.max(np.abs(lam)))


def _solve_dual(
    K: FloatArray, y: FloatArray, ridge: float, stacklevel: int
) -> tuple[FloatArray, DualSolveInfo]:
    n = K.shape[0]
    A = K + ridge * np.eye(n) if ridge > 0.0 else K

    # Cholesky first, accepted only when the matrix is not numerically singular.
    try:
        factor = scipy.linalg.cho_factor(A, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        factor = None
    if factor is not None:
        anorm = float(np.max(np.sum(np.abs(A), axis=0)))
        rcond, info = scipy.linalg.lapack.dpocon(factor[0], anorm, uplo="L")
        if info == 0 and rcond >= CHOLESKY_RCOND_MIN:
            alpha = scipy.linalg.cho_solve(factor, y, check_finite=False)
            cond = 1.0 / rcond if rcond > 0.0 else math.inf
            return alpha, DualSolveInfo("cholesky", cond, n, ridge)

    # Fallback: minimum-norm least squares through the eigendecomposition.
    lam, V = _eigh_sym(A)
    keep = np.abs(lam) > _cutoff(lam)
    coef = np.zeros(n)
    coef[keep] = (V[:, keep].T @ y) / lam[keep]
    alpha = V @ coef
    lam_abs = np.abs(lam)
    cond = float(lam_abs.max() / lam_abs.min()) if lam_abs.min() > 0 else math.inf
    suggested = (
        ridge + max(0.0, -float(lam[0])) + SUGGESTED_RCOND * float(lam_abs.max())
    )
    warnings.warn(
        f"K + ridge*I with ridge={ridge:g} is not numerically positive definite "
        f"(smallest eigenvalue {lam[0]:.3g}, condition number {cond:.3g}); "
        f"used the minimum-norm least-squares solution of rank "
        f"{int(keep.sum())}/{n}. For a unique, stable solve set "
        f"ridge >= {suggested:.3g}.",
        NumericalWarning,
        stacklevel=stacklevel,
    )
    return alpha, DualSolveInfo("lstsq", cond, int(keep.sum()), ridge)


def solve_dual(
    K_train: ArrayLike, y: ArrayLike, ridge: float = 0.0
) -> tuple[FloatArray, DualSolveInfo]:
    """Dual coefficients of kernel ridge regression: (K + ridge I) alpha = y.

    Kernel regression with the NTK is the infinite-width, infinite-time
    prediction of a trained network (Arora et al., 2019, Theorem 3.2); the
    seed paper's kernel predictors are this with ``ridge = 0``.

    The system is solved by a Cholesky factorization
    (``scipy.linalg.cho_factor`` / ``cho_solve``), accepted when LAPACK's
    reciprocal condition estimate is at least :data:`CHOLESKY_RCOND_MIN`.
    Otherwise (the matrix is indefinite or numerically singular) the
    minimum-norm least-squares solution is returned, computed from the
    symmetric eigendecomposition with eigenvalues ``|lam| <= PINV_RTOL * n *
    max|lam|`` dropped, and a :class:`NumericalWarning` gives the condition
    number and a ridge that would make the solve well posed. No jitter is
    added.

    Parameters
    ----------
    K_train : array_like of shape (n, n)
        Symmetric training Gram matrix.
    y : array_like of shape (n,)
        Training targets.
    ridge : float
        Non-negative regularization lambda.

    Returns
    -------
    alpha : ndarray of shape (n,)
    info : DualSolveInfo

    Examples
    --------
    >>> alpha, info = solve_dual(np.array([[2.0, 0.0], [0.0, 4.0]]), [2.0, 2.0])
    >>> alpha.tolist(), info.solver
    ([1.0, 0.5], 'cholesky')
    """
    K = _square("K_train", K_train)
    y_vec = _as_vector("y", y, K.shape[0])
    return _solve_dual(K, y_vec, _check_nonneg("ridge", ridge), stacklevel=3)


# --------------------------------------------------------------------------
# the estimator


def _resolve_kernel(kernel: Any) -> KernelFn:
    if isinstance(kernel, str):
        from ntkeq.kernels import kernel as make_kernel

        resolved: KernelFn = make_kernel(kernel)
        return resolved
    if callable(kernel):
        return cast(KernelFn, kernel)
    raise TypeError(
        "kernel must be a kernel name such as 'NTKB1' or a callable "
        f"k(X1, X2=None) returning a Gram matrix, got {kernel!r}"
    )


class KernelRegressor(RegressorMixin, BaseEstimator):
    """Kernel (ridge) regression with any kernel, as a scikit-learn estimator.

    Predicts ``K(X*, X) alpha`` with ``(K(X, X) + ridge I) alpha = y``
    (:func:`solve_dual`); with ``ridge = 0`` and an NTK this is the
    infinite-time prediction of the equivalence theorem (Arora et al., 2019,
    Theorem 3.2).

    Parameters
    ----------
    kernel : str or callable
        A model name resolved by ``ntkeq.kernels.kernel(name)`` (variant
        ``"exact"``), or a callable ``k(X1, X2=None)`` returning the
        (n1, n2) Gram matrix (for example ``ntkeq.kernels.kernel("NTKB1",
        variant="as-published")``).
    ridge : float
        Non-negative regularization lambda (default 0, ridgeless).

    Attributes
    ----------
    kernel_ : callable
        The resolved kernel (set by :meth:`fit`).
    X_fit_ : ndarray of shape (n, d)
        Training inputs (``None`` after :meth:`fit_gram`).
    dual_coef_ : ndarray of shape (n,)
    solver_ : str
        ``"cholesky"`` or ``"lstsq"``.
    condition_number_ : float
        Of K + ridge I, see :class:`DualSolveInfo`.
    n_features_in_ : int

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> model = KernelRegressor(lambda A, B=None: A @ (A if B is None else B).T,
    ...                         ridge=1.0).fit(X, [1.0, 2.0, 3.0])
    >>> model.predict([[1.0, 1.0]]).round(6).tolist()
    [2.25]
    """

    def __init__(self, kernel: str | KernelFn, ridge: float = 0.0) -> None:
        self.kernel = kernel
        self.ridge = ridge

    def _set_dual(self, K: FloatArray, y: FloatArray) -> None:
        ridge = _check_nonneg("ridge", self.ridge)
        alpha, info = _solve_dual(K, y, ridge, stacklevel=4)
        self.dual_coef_ = alpha
        self.solver_ = info.solver
        self.condition_number_ = info.condition_number

    def fit(self, X: ArrayLike, y: ArrayLike) -> KernelRegressor:
        """Fit on inputs X of shape (n, d) and targets y of shape (n,)."""
        X_arr, y_arr = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        self.kernel_ = _resolve_kernel(self.kernel)
        n = X_arr.shape[0]
        K = _as_matrix("kernel(X)", self.kernel_(X_arr), (n, n))
        self._set_dual(K, np.asarray(y_arr, dtype=np.float64))
        self.X_fit_: FloatArray | None = X_arr
        self.n_features_in_ = X_arr.shape[1]
        return self

    def predict(self, X: ArrayLike) -> FloatArray:
        """Predictions of shape (m,) at inputs X of shape (m, d)."""
        check_is_fitted(self, "dual_coef_")
        if self.X_fit_ is None:
            raise ValueError(
                "this KernelRegressor was fitted with fit_gram; predict from a "
                "Gram matrix with predict_gram(K_test_train)"
            )
        X_arr = check_array(X, dtype=np.float64)
        if X_arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X_arr.shape[1]} features; the model was fitted on "
                f"{self.n_features_in_}"
            )
        n = self.X_fit_.shape[0]
        K_star = _as_matrix(
            "kernel(X, X_fit_)", self.kernel_(X_arr, self.X_fit_), (X_arr.shape[0], n)
        )
        return K_star @ self.dual_coef_

    def fit_gram(self, K_train: ArrayLike, y: ArrayLike) -> KernelRegressor:
        """Fit from a precomputed training Gram matrix of shape (n, n).

        The ``kernel`` parameter is not evaluated; use :meth:`predict_gram`.
        """
        K = _square("K_train", K_train)
        y_vec = _as_vector("y", y, K.shape[0])
        self._set_dual(K, y_vec)
        self.X_fit_ = None
        return self

    def predict_gram(self, K_test_train: ArrayLike) -> FloatArray:
        """Predictions of shape (m,) from the (m, n) Gram matrix K(X*, X)."""
        check_is_fitted(self, "dual_coef_")
        K_star = _as_matrix(
            "K_test_train", K_test_train, (None, self.dual_coef_.shape[0])
        )
        return K_star @ self.dual_coef_


# --------------------------------------------------------------------------
# finite-time predictor


def gradient_descent_time(
    learning_rate: float, epochs: int, n_train: int, batch_size: int | None = None
) -> tuple[float, int]:
    """Kernel gradient-descent step and step count equivalent to (S)GD training.

    A network trained on L = (1/B) sum_batch (f - y)^2 with learning rate
    ``lr`` moves, in the linearized (NTK) regime, by
    ``f <- f - lr (2/B) Theta(., S) (f(S) - y(S))`` per step on a batch S of
    size B. Averaged over a uniformly drawn batch this is the full-batch step
    ``f <- f - eta Theta(., X) (f(X) - y)`` with ``eta = 2 lr / n``, whatever
    B is (a final, smaller batch included). One epoch has ``ceil(n / B)``
    steps. See ``docs/regression.md`` for the derivation and the sense in
    which the mean of SGD follows gradient descent.

    Parameters
    ----------
    learning_rate : float
        The network's learning rate, > 0.
    epochs : int
        Passes over the training data, >= 0.
    n_train : int
        Number of points the network was fit on, >= 1.
    batch_size : int or None
        Batch size B, >= 1; ``None`` means full batch (B = n).

    Returns
    -------
    eta : float
        ``2 * learning_rate / n_train``.
    steps : int
        ``epochs * ceil(n_train / batch_size)``.

    Examples
    --------
    >>> gradient_descent_time(0.002, 3000, 469, 8)
    (8.528784648187633e-06, 177000)
    """
    lr = _check_nonneg("learning_rate", learning_rate)
    if lr == 0.0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    for name, value, low in (("epochs", epochs, 0), ("n_train", n_train, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if batch_size is None:
        batch_size = int(n_train)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    steps_per_epoch = -(-int(n_train) // int(batch_size))
    return 2.0 * lr / int(n_train), int(epochs) * steps_per_epoch


@dataclass(frozen=True, eq=False)
class GDPrediction:
    """Predictions of kernel gradient descent at several times.

    Attributes
    ----------
    steps : ndarray of shape (n_times,)
        The times: gradient-descent steps, or gradient-flow time in units of
        steps when ``flow`` is true; ``inf`` is the limit.
    test : ndarray of shape (n_times, n_test)
        f_t(X*).
    train : ndarray of shape (n_times, n_train)
        f_t(X).
    train_loss : ndarray of shape (n_times,)
        mean((f_t(X) - y)^2), the training loss without a factor 1/2.
    eta : float
        The function-space step 2 lr / n.
    flow : bool
        Continuous-time gradient flow instead of discrete steps.
    """

    steps: FloatArray
    test: FloatArray
    train: FloatArray
    train_loss: FloatArray
    eta: float
    flow: bool


def _time_grid(name: str, values: Any, integral: bool) -> FloatArray:
    t = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"{name} must be a number or a 1-D sequence, got {values!r}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError(f"{name} must be >= 0 (inf allowed), got {values!r}")
    finite = t[np.isfinite(t)]
    if integral and np.any(finite != np.round(finite)):
        raise ValueError(f"{name} must be whole numbers (or inf), got {values!r}")
    return t


def _gd_factors(
    lam: FloatArray, null: NDArray[np.bool_], eta: float, t: float, flow: bool
) -> tuple[FloatArray, FloatArray]:
    """Residual factor g = (1 - eta lam)^t and test factor h = (1 - g) / lam."""
    n = lam.shape[0]
    g = np.ones(n)
    h = np.zeros(n)
    live = ~null
    if math.isinf(t):
        g[live] = 0.0
        h[live] = 1.0 / lam[live]
        return g, h
    h[null] = t * eta
    x = eta * lam[live]
    with np.errstate(over="ignore", invalid="ignore"):
        if flow:
            expo = -x * t
        else:
            # log1p form while 1 - x > 0; beyond, the sign alternates.
            expo = t * np.log1p(-np.where(x < 1.0, x, 0.0))
        gl = np.exp(expo)
        hl = -np.expm1(expo) / lam[live]
        if not flow:
            big = x >= 1.0
            gl[big] = np.power(1.0 - x[big], t)
            hl[big] = (1.0 - gl[big]) / lam[live][big]
    g[live] = gl
    h[live] = hl
    return g, h


def kernel_gd_predict(
    K_train: ArrayLike,
    K_test_train: ArrayLike,
    y_train: ArrayLike,
    *,
    learning_rate: float,
    steps: float | Sequence[float] | None = None,
    epochs: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    times: float | Sequence[float] | None = None,
    n_train_fit: int | None = None,
    f0_train: ArrayLike | None = None,
    f0_test: ArrayLike | None = None,
    eigh: tuple[ArrayLike, ArrayLike] | None = None,
) -> GDPrediction:
    """Prediction of a network after finite training, under a fixed kernel.

    Gradient descent on L = (1/n) sum (f(x_i) - y_i)^2 with learning rate lr
    moves a network in its linearized (NTK) regime as

        f_{t+1}(X)  = f_t(X)  - eta Theta(X, X)  (f_t(X) - y)
        f_{t+1}(x*) = f_t(x*) - eta Theta(x*, X) (f_t(X) - y),  eta = 2 lr / n

    (Jacot et al., 2018, Section 5; Lee et al., 2019, equation (9), discrete
    in time). With one eigendecomposition Theta(X, X) = V diag(lam) V^T,
    reused at every time,

        f_t(X)  = y - V diag(g_t) V^T (y - f_0(X)),   g_t = (1 - eta lam)^t
        f_t(x*) = f_0(x*) + Theta(x*, X) V diag(h_t) V^T (y - f_0(X)),
                  h_t = (1 - g_t) / lam,

    and ``times`` uses the gradient-flow factor g_t = exp(-eta lam t)
    instead. Eigenvalues with ``|lam| <= PINV_RTOL * n * max|lam|`` count as
    zero: there g_t = 1 and h_t = t eta, the limit of h_t as lam -> 0. At
    ``t = inf``, h = 1/lam on the other eigenvalues and 0 on those, which is
    the ridgeless :func:`solve_dual` prediction. Negative eigenvalues (an
    indefinite kernel) make the residual grow and ``eta lam_max > 2`` makes
    discrete steps diverge; both raise a :class:`NumericalWarning`.

    Parameters
    ----------
    K_train : array_like of shape (n, n)
        Theta(X, X) on the training points.
    K_test_train : array_like of shape (m, n)
        Theta(X*, X).
    y_train : array_like of shape (n,)
    learning_rate : float
        The network's learning rate lr, > 0.
    steps : float or sequence, optional
        Gradient-descent steps t (whole numbers or inf).
    epochs : int or sequence, optional
        Epochs of (S)GD with ``batch_size``, mapped to steps by
        :func:`gradient_descent_time`.
    batch_size : int, optional
        Batch size B of the network's SGD (default n); only with ``epochs``.
    times : float or sequence, optional
        Gradient-flow times, in units of steps (any reals >= 0 or inf).
    n_train_fit : int, optional
        Use only the first ``n_train_fit`` training points (rows and columns
        of K_train, columns of K_test_train, entries of y_train and
        f0_train): the points a network with a held-out validation tail was
        actually fit on. The step then uses n = n_train_fit.
    f0_train : array_like of shape (n,), optional
        The network's initial function on the training points (default 0,
        its mean over initializations).
    f0_test : array_like of shape (m,), optional
        The network's initial function on the test points (default 0).
    eigh : (lam, V), optional
        A precomputed eigendecomposition of the fitting block (the first
        ``n_train_fit`` rows and columns of K_train, or all of it): ``lam``
        of shape (n,) ascending, ``V`` of shape (n, n) with orthonormal
        columns, as ``scipy.linalg.eigh`` of (K + K^T) / 2 returns them. It
        replaces the O(n^3) decomposition, e.g. when several predictors
        share one kernel; it is trusted to belong to K_train (only its
        shapes and finiteness are checked).

    At most one of ``steps``, ``epochs`` and ``times`` may be given; with none,
    the prediction is the infinite-time limit.

    Returns
    -------
    GDPrediction
        ``test`` of shape (n_times, m), ``train`` of shape (n_times, n) and
        ``train_loss`` of shape (n_times,).

    Examples
    --------
    >>> K = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> out = kernel_gd_predict(K, K, [1.0, 1.0], learning_rate=0.5,
    ...                         steps=[0, 1, np.inf])
    >>> out.test.tolist()
    [[0.0, 0.0], [0.5, 1.0], [1.0, 1.0]]
    >>> out.train_loss.tolist()
    [1.0, 0.125, 0.0]
    """
    # prepare: validate, slice, choose the time grid
    lr = _check_nonneg("learning_rate", learning_rate)
    if lr == 0.0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    K = _square("K_train", K_train)
    n_all = K.shape[0]
    K_star = _as_matrix("K_test_train", K_test_train, (None, n_all))
    y = _as_vector("y_train", y_train, n_all)
    m = K_star.shape[0]
    f0_tr = (
        np.zeros(n_all) if f0_train is None else _as_vector("f0_train", f0_train, n_all)
    )
    f0_te = np.zeros(m) if f0_test is None else _as_vector("f0_test", f0_test, m)
    n = n_all
    if n_train_fit is not None:
        if isinstance(n_train_fit, bool) or not isinstance(
            n_train_fit, numbers.Integral
        ):
            raise TypeError(f"n_train_fit must be an integer, got {n_train_fit!r}")
        if not 1 <= n_train_fit <= n_all:
            raise ValueError(
                f"n_train_fit must be between 1 and {n_all}, got {n_train_fit!r}"
            )
        n = int(n_train_fit)
        K, K_star, y, f0_tr = K[:n, :n], K_star[:, :n], y[:n], f0_tr[:n]

    given = [
        name
        for name, v in (("steps", steps), ("epochs", epochs), ("times", times))
        if v is not None
    ]
    if len(given) > 1:
        raise ValueError(f"give at most one of steps, epochs, times; got {given}")
    if batch_size is not None and epochs is None:
        raise ValueError(
            f"batch_size={batch_size!r} applies only with epochs; steps and "
            "times are already in gradient-descent units"
        )
    flow = times is not None
    eta = 2.0 * lr / n
    if epochs is not None:
        ep = _time_grid("epochs", epochs, integral=True)
        if np.any(np.isinf(ep)):
            raise ValueError(f"epochs must be finite, got {epochs!r}")
        t_grid = np.array(
            [gradient_descent_time(lr, int(e), n, batch_size)[1] for e in ep],
            dtype=np.float64,
        )
    elif steps is not None:
        t_grid = _time_grid("steps", steps, integral=True)
    elif times is not None:
        t_grid = _time_grid("times", times, integral=False)
    else:
        t_grid = np.array([math.inf])

    # one eigendecomposition of the training Gram matrix
    lam, V = _eigh_sym(K) if eigh is None else _check_eigh(eigh, n)
    null = np.abs(lam) <= _cutoff(lam)
    if np.any(lam < -_cutoff(lam)):
        warnings.warn(
            f"K_train is indefinite (smallest eigenvalue {lam[0]:.3g}): gradient "
            "descent grows the residual along its negative eigenvectors, and the "
            "infinite-time prediction is the least-squares solve, which gradient "
            "descent does not reach. Use a positive semi-definite kernel (variant "
            "'exact') for a convergent predictor.",
            NumericalWarning,
            stacklevel=2,
        )
    if not flow and eta * float(lam[-1]) > 2.0 and np.any(np.isfinite(t_grid)):
        warnings.warn(
            f"2 * learning_rate / n * max eigenvalue = {eta * lam[-1]:.3g} > 2: "
            "discrete gradient descent diverges. Use learning_rate < "
            f"{n / float(lam[-1]):.3g}.",
            NumericalWarning,
            stacklevel=2,
        )
    c = V.T @ (y - f0_tr)
    B = K_star @ V

    # every time from the same eigenbasis: the factors row by row, then two
    # matrix products for all times at once
    n_times = t_grid.shape[0]
    gc = np.empty((n_times, n))
    hc = np.empty((n_times, n))
    with np.errstate(over="ignore", invalid="ignore"):
        for i, t in enumerate(t_grid):
            g, h = _gd_factors(lam, null, eta, float(t), flow)
            np.multiply(g, c, out=gc[i])
            np.multiply(h, c, out=hc[i])
        train = y - gc @ V.T
        test = f0_te + hc @ B.T
        loss = np.sum(gc**2, axis=1) / n
    return GDPrediction(t_grid, test, train, loss, eta, flow)
