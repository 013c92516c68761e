"""Data sets: the paper's simulation from a kernel, and a bundled real set.

Notation
--------
n_obs       number of observations, split into n_train + n_test
d_in        input dimension d
X           (n_obs, d_in) inputs; with ``normalize`` every row has unit norm
K           (n_obs, n_obs) Gram matrix of the generating kernel on all of X
y           (n_obs,) one draw from N(0, K), no added noise
lam         eigenvalues of K (ascending)

The simulation is Section 4.1 of the seed paper ("Generating Simulated
Data"), with the split of its published script: 1000 observations in 15
dimensions, uniform on [-5, 7], rows scaled to unit norm, y ~ N(0, K) with K
the NTKB1 Gram matrix, and a random 67 / 33 train / test split.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

__all__ = [
    "SamplingInfo",
    "Split",
    "load_diabetes_split",
    "sample_normal",
    "simulate",
    "split_sizes",
]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
SeedLike = int | np.random.SeedSequence | np.random.Generator | None
KernelFn = Callable[..., Any]


@dataclass(frozen=True)
class SamplingInfo:
    """How a draw from N(0, K) was made.

    Attributes
    ----------
    method : str
        ``"cholesky"`` when K + jitter I has a Cholesky factor, otherwise
        ``"eigh"``: a symmetric eigendecomposition with negative eigenvalues
        clipped to zero.
    min_eigenvalue : float or None
        Smallest eigenvalue of K + jitter I; computed only on the ``"eigh"``
        path (``None`` after a successful Cholesky factorization).
    n_clipped : int
        Number of negative eigenvalues set to zero (0 for ``"cholesky"``).
    jitter : float
        The multiple of the identity added to K before factoring it.
    """

    method: str
    min_eigenvalue: float | None
    n_clipped: int
    jitter: float


@dataclass(frozen=True, eq=False)
class Split:
    """A train / test split of one data set.

    Attributes
    ----------
    X_train, X_test : ndarray of shape (n_train, d_in), (n_test, d_in)
    y_train, y_test : ndarray of shape (n_train,), (n_test,)
    train_index, test_index : ndarray of int, shape (n_train,), (n_test,)
        Rows of the full ``X`` (sorted ascending), so ``X[train_index]`` is
        ``X_train``; a Gram matrix of all of ``X`` can be sliced with them.
    X : ndarray of shape (n_obs, d_in)
        All inputs, in the order the rows were generated.
    y : ndarray of shape (n_obs,)
        All targets.
    sampling : str
        ``"cholesky"`` or ``"eigh"`` for simulated targets (see
        :class:`SamplingInfo`), ``"none"`` for real data.
    min_eigenvalue : float or None
        Smallest eigenvalue of the sampled covariance, when computed.
    n_clipped : int
        Negative eigenvalues clipped to zero before sampling.
    jitter : float
        Multiple of the identity added to the covariance before sampling.
    """

    X_train: FloatArray
    y_train: FloatArray
    X_test: FloatArray
    y_test: FloatArray
    train_index: IntArray
    test_index: IntArray
    X: FloatArray
    y: FloatArray
    sampling: str = "none"
    min_eigenvalue: float | None = None
    n_clipped: int = 0
    jitter: float = 0.0

    @property
    def n_train(self) -> int:
        """Number of training observations."""
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test observations."""
        return int(self.X_test.shape[0])

    @property
    def d_in(self) -> int:
        """Input dimension."""
        return int(self.X.shape[1])


# --------------------------------------------------------------------------
# argument checks


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            "seed must be a non-negative int, a numpy SeedSequence or a numpy "
            f"Generator, got {seed!r}"
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng(int(seed))


def split_sizes(n_obs: int, test_fraction: float = 1 / 3) -> tuple[int, int]:
    """Number of training and test observations for a split.

    The test fraction is first rounded to a whole percent, half up (1/3
    becomes 33 %), and the test size is ``n_obs`` times that percentage,
    rounded half up. This is the published script's 67 / 33 split: 1000
    observations give 670 training and 330 test points.

    Parameters
    ----------
    n_obs : int
        Total number of observations, at least 2.
    test_fraction : float
        Share of observations held out for testing, in (0, 1).

    Returns
    -------
    (n_train, n_test) : tuple of int
        Both at least 1 and summing to ``n_obs``.

    Examples
    --------
    >>> split_sizes(1000)
    (670, 330)
    >>> split_sizes(442, 0.25)
    (331, 111)
    """
    n_obs = _check_int("n_obs", n_obs, 2)
    test_fraction = _check_real("test_fraction", test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}"
        )
    percent = math.floor(100.0 * test_fraction + 0.5)
    n_test = math.floor(n_obs * percent / 100.0 + 0.5)
    if not 1 <= n_test <= n_obs - 1:
        raise ValueError(
            f"test_fraction={test_fraction!r} (rounded to {percent} %) leaves "
            f"{n_test} of n_obs={n_obs} observations for testing; choose a "
            "fraction that leaves at least one observation on each side"
        )
    return n_obs - n_test, n_test


def _split_indices(
    rng: np.random.Generator, n_obs: int, n_test: int
) -> tuple[IntArray, IntArray]:
    perm = rng.permutation(n_obs)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


# --------------------------------------------------------------------------
# sampling from N(0, K)


def sample_normal(
    cov: Any,
    seed: SeedLike = None,
    *,
    size: int | None = None,
    jitter: float = 0.0,
) -> tuple[FloatArray, SamplingInfo]:
    """Draw from the zero-mean normal distribution N(0, cov).

    The covariance is factored by Cholesky, ``cov + jitter I = L L^T``, and a
    draw is ``L z`` with z standard normal. Gram matrices of the NTK and NNGP
    kernels are ill-conditioned, and those of the ``as-published`` variant
    can be indefinite; when the Cholesky factorization fails the covariance
    is decomposed as ``V diag(lam) V^T`` (symmetric eigendecomposition),
    negative eigenvalues are set to zero, and a draw is
    ``V diag(sqrt(max(lam, 0))) z``. This is the analogue of numpy's
    SVD-based ``multivariate_normal`` (which uses ``|lam|`` instead of
    ``max(lam, 0)``; the two agree when cov is positive semi-definite). The
    fallback is logged and recorded in the returned :class:`SamplingInfo`.
    No jitter is added unless asked for.

    Parameters
    ----------
    cov : array_like of shape (n, n)
        Symmetric covariance matrix; only finite values are allowed. The
        Cholesky path reads its lower triangle, the eigh path its symmetric
        part ``(cov + cov^T) / 2``.
    seed : int, SeedSequence, Generator or None
        Source of the standard normal draws, via
        ``numpy.random.default_rng(seed)`` (a Generator is used as is).
    size : int or None
        Number of independent draws; ``None`` gives a single draw.
    jitter : float
        Non-negative multiple of the identity added to ``cov`` (default 0).

    Returns
    -------
    samples : ndarray of shape (n,) or (size, n)
    info : SamplingInfo

    Examples
    --------
    >>> y, info = sample_normal(np.eye(3), seed=0)
    >>> y.shape, info.method
    ((3,), 'cholesky')
    >>> y, info = sample_normal(np.diag([1.0, -1e-12]), seed=0, size=2)
    >>> y.shape, info.method, info.n_clipped
    ((2, 2), 'eigh', 1)
    """
    K = np.asarray(cov, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"cov must be a non-empty square matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("cov must contain only finite values")
    jitter = _check_real("jitter", jitter)
    if jitter < 0.0:
        raise ValueError(f"jitter must be >= 0, got {jitter!r}")
    if size is not None:
        size = _check_int("size", size, 1)
    rng = _rng(seed)
    n = K.shape[0]
    if jitter > 0.0:
        K = K + jitter * np.eye(n)

    # Draw the standard normals first, so both paths consume the same stream.
    z = rng.standard_normal(n if size is None else (size, n))

    try:
        L = scipy.linalg.cholesky(K, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        L = None
    if L is not None:
        logger.debug("sampled N(0, K) of size %d by Cholesky", n)
        info = SamplingInfo("cholesky", None, 0, jitter)
        return z @ L.T, info

    # Cholesky failed: clip the negative eigenvalues of the symmetric part.
    lam, V = scipy.linalg.eigh(0.5 * (K + K.T), check_finite=False)
    n_clipped = int(np.count_nonzero(lam < 0.0))
    factor = V * np.sqrt(np.clip(lam, 0.0, None))
    info = SamplingInfo("eigh", float(lam[0]), n_clipped, jitter)
    logger.info(
        "Cholesky factorization of the %d x %d covariance failed; sampled by "
        "eigendecomposition (smallest eigenvalue %.3g, %d negative eigenvalues "
        "clipped to 0)",
        n,
        n,
        lam[0],
        n_clipped,
    )
    return z @ factor.T, info


# --------------------------------------------------------------------------
# the paper's simulation


def _resolve_kernel(
    kernel: str | KernelFn, variant: str, kernel_params: dict[str, Any] | None
) -> KernelFn:
    if isinstance(kernel, str):
        from ntkeq.kernels import kernel as make_kernel

        resolved: KernelFn = make_kernel(
            kernel, variant=variant, **(kernel_params or {})
        )
        return resolved
    if callable(kernel):
        if kernel_params:
            raise ValueError(
                "kernel_params applies only to a kernel given by name; got "
                f"kernel_params={kernel_params!r} with a callable kernel"
            )
        return kernel
    raise TypeError(
        "kernel must be a kernel name such as 'NTKB1' or a callable "
        f"k(X1, X2=None), got {kernel!r}"
    )


def simulate(
    n_obs: int = 1000,
    d_in: int = 15,
    low: float = -5.0,
    high: float = 7.0,
    kernel: str | KernelFn = "NTKB1",
    variant: str = "exact",
    test_fraction: float = 1 / 3,
    seed: SeedLike = 0,
    normalize: bool = True,
    kernel_params: dict[str, Any] | None = None,
    jitter: float = 0.0,
) -> Split:
    """Simulate one trial's data: the seed paper's Section 4.1.

    Steps, in this order, all drawing from one
    ``numpy.random.default_rng(seed)`` so that a trial is a pure function of
    its seed:

    1. ``X = rng.uniform(low, high, size=(n_obs, d_in))``; with ``normalize``
       every row (observation) is divided by its Euclidean norm.
    2. ``K = k(X)``, the Gram matrix of the kernel on all ``n_obs`` points.
    3. ``y = rng.standard_normal(n_obs)`` mapped through a factor of K, so y
       is one draw from N(0, K) (see :func:`sample_normal` for the Cholesky
       factorization and its eigendecomposition fallback).
    4. ``perm = rng.permutation(n_obs)``; its first ``n_test`` entries are
       the test rows, the rest the training rows (each set sorted). The sizes
       come from :func:`split_sizes`: the default gives 670 / 330 for 1000
       observations, as in the published script.

    Parameters
    ----------
    n_obs : int
        Number of observations (at least 2).
    d_in : int
        Input dimension (at least 1).
    low, high : float
        Bounds of the uniform distribution of the inputs, ``low < high``.
    kernel : str or callable
        The generating kernel: a model name for :func:`ntkeq.kernels.kernel`
        (default ``"NTKB1"``, as in the paper) or a callable ``k(X1, X2=None)``
        returning the (n1, n2) Gram matrix.
    variant : str
        ``"exact"`` or ``"as-published"``; used only with a kernel name.
    test_fraction : float
        Share held out for testing, in (0, 1); see :func:`split_sizes`.
    seed : int, SeedSequence or Generator
        Source of all randomness (a Generator is consumed as is).
    normalize : bool
        Scale every row of X to unit Euclidean norm (the paper does).
    kernel_params : dict or None
        Extra keyword arguments for :func:`ntkeq.kernels.kernel`.
    jitter : float
        Non-negative multiple of the identity added to K before sampling
        (default 0, recorded in the result).

    Returns
    -------
    Split
        With ``X`` of shape (n_obs, d_in), ``y`` of shape (n_obs,) and the
        sampling record.

    Examples
    --------
    >>> linear = lambda A, B=None: A @ (A if B is None else B).T
    >>> s = simulate(n_obs=100, d_in=3, kernel=linear, seed=1)
    >>> s.n_train, s.n_test, s.X_train.shape
    (67, 33, (67, 3))
    >>> bool(np.allclose(np.linalg.norm(s.X, axis=1), 1.0))
    True
    """
    n_obs = _check_int("n_obs", n_obs, 2)
    d_in = _check_int("d_in", d_in, 1)
    low = _check_real("low", low)
    high = _check_real("high", high)
    if not low < high:
        raise ValueError(f"low must be smaller than high, got low={low}, high={high}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {normalize!r}")
    if variant not in ("exact", "as-published"):
        raise ValueError(f"variant must be 'exact' or 'as-published', got {variant!r}")
    _, n_test = split_sizes(n_obs, test_fraction)
    k = _resolve_kernel(kernel, variant, kernel_params)
    rng = _rng(seed)

    # 1. inputs
    X = rng.uniform(low, high, size=(n_obs, d_in))
    if normalize:
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        if np.any(norms == 0.0):
            raise ValueError("an input row is exactly zero and cannot be normalized")
        X = X / norms

    # 2. Gram matrix of all points
    K = np.asarray(k(X), dtype=np.float64)
    if K.shape != (n_obs, n_obs):
        raise ValueError(
            f"kernel returned a Gram matrix of shape {K.shape} for {n_obs} "
            f"inputs; expected ({n_obs}, {n_obs})"
        )

    # 3. targets, 4. split
    y, info = sample_normal(K, rng, jitter=jitter)
    train_index, test_index = _split_indices(rng, n_obs, n_test)
    return Split(
        X_train=X[train_index],
        y_train=y[train_index],
        X_test=X[test_index],
        y_test=y[test_index],
        train_index=train_index,
        test_index=test_index,
        X=X,
        y=y,
        sampling=info.method,
        min_eigenvalue=info.min_eigenvalue,
        n_clipped=info.n_clipped,
        jitter=info.jitter,
    )


# --------------------------------------------------------------------------
# real data


def load_diabetes_split(test_fraction: float = 1 / 3, seed: SeedLike = 0) -> Split:
    """scikit-learn's bundled diabetes regression set, ready for the kernels.

    442 patients, 10 baseline variables, and a disease-progression target
    (Efron et al., 2004), read from scikit-learn's copy (no download). The
    split comes first, ``rng.permutation`` from
    ``numpy.random.default_rng(seed)`` with the sizes of
    :func:`split_sizes`; then, using training rows only for every statistic:

    1. each input column is centered by its training mean and divided by its
       training standard deviation (ddof 0), on train and test alike;
    2. each row is then divided by its Euclidean norm, so every input lies on
       the unit sphere, as the equivalence theorem assumes;
    3. the target is centered and scaled by the training mean and standard
       deviation (ddof 0), so ``y_train`` has mean 0 and standard deviation 1.

    Parameters
    ----------
    test_fraction : float
        Share held out for testing, in (0, 1); see :func:`split_sizes`.
    seed : int, SeedSequence or Generator
        Source of the random split.

    Returns
    -------
    Split
        ``X`` of shape (442, 10) (processed as above), ``y`` of shape (442,)
        (standardized with the training statistics), ``sampling="none"``.

    Examples
    --------
    >>> s = load_diabetes_split(seed=0)
    >>> s.n_train, s.n_test, s.d_in
    (296, 146, 10)
    """
    from sklearn.datasets import load_diabetes

    raw_X, raw_y = load_diabetes(return_X_y=True, scaled=False)
    X_raw = np.asarray(raw_X, dtype=np.float64)
    y_raw = np.asarray(raw_y, dtype=np.float64)
    n_obs = X_raw.shape[0]
    _, n_test = split_sizes(n_obs, test_fraction)
    rng = _rng(seed)
    train_index, test_index = _split_indices(rng, n_obs, n_test)

    # Standardize columns with training statistics, then project rows.
    mean = X_raw[train_index].mean(axis=0)
    std = X_raw[train_index].std(axis=0)
    X = (X_raw - mean) / std
    X = X / np.linalg.norm(X, axis=1, keepdims=True)

    y_mean = y_raw[train_index].mean()
    y_std = y_raw[train_index].std()
    y = (y_raw - y_mean) / y_std
    return Split(
        X_train=X[train_index],
        y_train=y[train_index],
        X_test=X[test_index],
        y_test=y[test_index],
        train_index=train_index,
        test_index=test_index,
        X=X,
        y=y,
    )
